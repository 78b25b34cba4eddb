package main

import (
	"fmt"
	"os"

	"github.com/pgward/pgward/internal/config"
	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

func newManCmd(_ *config.Options) *cobra.Command {
	return &cobra.Command{
		Use:     "man DIR",
		Short:   "Write the man pages (section 1) of every command into DIR",
		Long:    "Write a man page per command, generated from the command tree (the same text as --help), into DIR; 'make install' installs them.",
		Example: "  pgward man /usr/local/share/man/man1",
		Args:    exactArgs("DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			root := cmd.Root()
			root.DisableAutoGenTag = true
			hdr := &doc.GenManHeader{Title: "PGWARD", Section: "1", Source: "pgward " + version, Manual: "pgward manual"}
			if err := doc.GenManTree(root, hdr, args[0]); err != nil {
				return fmt.Errorf("writing man pages to %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "man pages written to %s\n", args[0])
			return nil
		},
	}
}
