package main

import (
	"fmt"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/location"
	"github.com/spf13/cobra"
)

func newInitCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a repository",
		Long: `Create a new, empty repository at every --repo location.

With --encrypt every object is encrypted with AES-256-GCM under a random master
key, which is stored wrapped with the passphrase (from PGWARD_PASSPHRASE,
--passphrase-file or --passphrase-command). Losing the passphrase loses the data.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			specs, err := repoSpecs(cmd)
			if err != nil {
				return err
			}
			encrypt, _ := cmd.Flags().GetBool("encrypt")
			chunk, _ := cmd.Flags().GetInt("chunk-size-kib")
			if chunk < 64 || chunk > 65536 {
				return fmt.Errorf("--chunk-size-kib %d is outside 64 to 65536 (KiB)", chunk)
			}
			o := repo.InitOptions{ChunkSize: chunk << 10}
			if encrypt {
				src := passphraseSource(cmd)
				if src == nil {
					return fmt.Errorf("init --encrypt needs a passphrase: set PGWARD_PASSPHRASE, --passphrase-file or --passphrase-command")
				}
				if o.Passphrase, err = src(); err != nil {
					return err
				}
				if len(o.Passphrase) == 0 {
					return fmt.Errorf("init --encrypt: the passphrase is empty")
				}
			}
			repos, err := location.Init(cmd.Context(), specs, locationOptions(cmd), o)
			if err != nil {
				return err
			}
			for _, r := range repos {
				fmt.Fprintf(cmd.OutOrStdout(), "created repository %s (format %d, encryption %s, chunk size %d KiB)\n", r, repo.FormatVersion, r.Config().Encryption, r.Config().ChunkSize>>10)
			}
			return nil
		},
	}
	cmd.Flags().Bool("encrypt", false, "encrypt the repository (AES-256-GCM) with a passphrase")
	cmd.Flags().Int("chunk-size-kib", repo.DefaultChunkSize>>10, "size of the chunks file data is split into, in KiB (64 to 65536)")
	return cmd
}
