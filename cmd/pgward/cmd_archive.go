package main

import (
	"github.com/spf13/cobra"
)

// archive-get is PostgreSQL's restore_command. Until the WAL archive exists in
// this build, every segment is "not in the archive": exit 1 quietly, which makes
// PostgreSQL fall back to the WAL the backup carries in pg_wal.
func newArchiveGetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "archive-get NAME DEST",
		Short: "Fetch a WAL file from the archive (PostgreSQL's restore_command)",
		Long: `Fetch the WAL file NAME from the repository's archive into DEST. Exit 1,
quietly, when the archive does not have it (PostgreSQL probes for files that do
not exist).`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return &exitError{code: 1}
		},
	}
}
