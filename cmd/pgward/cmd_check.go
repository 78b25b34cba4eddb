package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/pgward/pgward/engine"
	"github.com/pgward/pgward/internal/config"
	"github.com/spf13/cobra"
)

func newCheckCmd(o *config.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Verify that the server archives its WAL into the repository",
		Long: `Check that the server at --conn archives its WAL into every repository under
--cluster, end to end. It verifies, in this order:

  - wal_level is replica or logical, archive_mode is on (or always), the
    server is not a standby, and (PostgreSQL 15+) archive_library is empty;
  - archive_command is set, runs pgward archive-push with %p, names each
    repository (or a --config file) and this cluster name;
  - the repository's record of the cluster belongs to this server (same
    system identifier and major version);
  - a real round trip: it writes a restore point named 'pgward check', forces
    a WAL switch, and waits up to --timeout until the segment is in every
    repository.

When the segment does not arrive it says why: the archiver failing (and the
archive_command's error when the server log is readable), permission denied
on a local repository, WAL going to another repository or cluster name, or a
slow or stuck archiver.

--conn takes a libpq connection string or URI; PGHOST, PGPORT, PGUSER and the
other libpq variables apply. This is a normal connection, not a replication
one. A superuser can run every step; another role needs:

  GRANT pg_monitor TO role;
  GRANT EXECUTE ON FUNCTION pg_create_restore_point(text), pg_switch_wal() TO role;`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cluster, err := clusterName(o)
			if err != nil {
				return err
			}
			repos, err := openRepos(ctx, o)
			if err != nil {
				return err
			}
			checkOpts := engine.CheckOptions{Cluster: cluster, Conn: o.Conn, Timeout: o.Timeout, Program: selfPath(), Log: slog.Default()}
			res, err := engine.Check(ctx, repos, checkOpts)
			if err != nil {
				return err
			}
			for _, r := range res.Repos {
				fmt.Fprintf(cmd.OutOrStdout(), "archiving to %s works: segment %s archived in %s\n", r.Repo, res.Segment, r.Elapsed.Round(10*time.Millisecond))
			}
			return nil
		},
	}
	return cmd
}

// selfPath is this binary's absolute path, for the archive_command check
// suggests.
func selfPath() string {
	exe, err := os.Executable()
	if err != nil {
		return "pgward"
	}
	if p, err := filepath.EvalSymlinks(exe); err == nil {
		return p
	}
	return exe
}
