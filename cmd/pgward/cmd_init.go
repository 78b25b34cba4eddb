package main

import (
	"fmt"

	"github.com/pgward/pgward/internal/config"
	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/location"
	"github.com/spf13/cobra"
)

func newInitCmd(o *config.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use: "init",
		Example: `  pgward init --repo /var/lib/pgward
  pgward init --repo s3://backups/pg --encrypt --passphrase-file /etc/pgward/passphrase`,
		Short: "Create a repository",
		Long: `Create a new, empty repository at every --repo location.

With --encrypt every object is encrypted with AES-256-GCM under a random master
key, which is stored wrapped with the passphrase (from PGWARD_PASSPHRASE,
--passphrase-file or --passphrase-command). Losing the passphrase loses the data;
'pgward key add' adds more passphrases, 'pgward key passwd' changes it.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			specs, err := repoSpecs(o)
			if err != nil {
				return err
			}
			initOpts := repo.InitOptions{ChunkSize: o.ChunkSizeKiB << 10, Format: o.Format}
			if o.Encrypt {
				src := o.Passphrase.Func()
				if src == nil {
					return fmt.Errorf("init --encrypt needs a passphrase: set PGWARD_PASSPHRASE, --passphrase-file or --passphrase-command")
				}
				if initOpts.Passphrase, err = src(); err != nil {
					return err
				}
				if len(initOpts.Passphrase) == 0 {
					return fmt.Errorf("init --encrypt: the passphrase is empty")
				}
			}
			repos, err := location.Init(cmd.Context(), specs, locationOptions(o), initOpts)
			if err != nil {
				return err
			}
			for _, r := range repos {
				fmt.Fprintf(cmd.OutOrStdout(), "created repository %s (format %d, encryption %s, chunk size %d KiB)\n", r, r.Config().Format, r.Config().Encryption, r.Config().ChunkSize>>10)
			}
			return nil
		},
	}
	return cmd
}
