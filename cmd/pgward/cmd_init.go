package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pgward/pgward/repo"
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
			// Refuse before creating anything, so a repeated --repo list with one
			// existing repository changes nothing.
			for _, s := range specs {
				if st, err := storageFor(s, false); err == nil {
					if _, err := st.Stat(cmd.Context(), "config"); err == nil {
						return fmt.Errorf("init %s: a repository already exists there; use it, or choose an empty location", st)
					}
				}
			}
			// All or nothing: a failure at the second repository removes what
			// the first one got, so a rerun does not find "already exists".
			var done []repo.Storage
			var madeDirs []string
			undo := func() {
				for _, st := range done {
					_ = st.Delete(context.WithoutCancel(cmd.Context()), "config")
				}
				for _, d := range madeDirs {
					_ = os.RemoveAll(d)
				}
			}
			var lines []string
			for _, s := range specs {
				if !strings.Contains(s, "://") {
					if _, err := os.Stat(s); errors.Is(err, fs.ErrNotExist) {
						abs, _ := filepath.Abs(s)
						madeDirs = append(madeDirs, abs)
					}
				}
				st, err := storageFor(s, true)
				if err != nil {
					undo()
					return err
				}
				r, err := repo.Init(cmd.Context(), st, o)
				if err != nil {
					undo()
					return err
				}
				done = append(done, st)
				lines = append(lines, fmt.Sprintf("created repository %s (format %d, encryption %s, chunk size %d KiB)", r, repo.FormatVersion, r.Config().Encryption, r.Config().ChunkSize>>10))
			}
			for _, l := range lines {
				fmt.Fprintln(cmd.OutOrStdout(), l)
			}
			return nil
		},
	}
	cmd.Flags().Bool("encrypt", false, "encrypt the repository (AES-256-GCM) with a passphrase")
	cmd.Flags().Int("chunk-size-kib", repo.DefaultChunkSize>>10, "size of the chunks file data is split into, in KiB (64 to 65536)")
	return cmd
}
