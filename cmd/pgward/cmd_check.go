package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/pgward/pgward/engine"
	"github.com/pgward/pgward/internal/config"
	"github.com/pgward/pgward/repo"
	"github.com/spf13/cobra"
)

// Nagios plugin exit statuses (check --nagios).
const (
	nagiosOK       = 0
	nagiosWarning  = 1
	nagiosCritical = 2
	nagiosUnknown  = 3
)

func newCheckCmd(o *config.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check the whole setup, one line per check: repositories, server access, archiving, backups",
		Long: `Check everything pgward needs, each on its own line with OK, WARNING, FAILED or
SKIPPED and, when something is wrong, what to do:

  repository              every --repo opens and takes a write
  connection              --conn answers (a normal connection)
  replication connection  the role may stream backups and WAL (REPLICATION, pg_hba)
  server is a primary     archiving can be tested only on the primary
  wal_level               replica or logical
  archive_mode            on (or always)
  archive_command         runs pgward archive-push with %p into these repositories
                          and this cluster (archive_library empty on 15+)
  system identifier       the repositories' cluster is this server
  archive round trip      a restore point named 'pgward check', a WAL switch, and the
                          segment arriving in every repository within --timeout
  WAL continuity          the newest backup reaches the newest WAL without a gap
  backups                 the cluster has a backup younger than a week
  free space              local repositories have at least 10% free

A check whose prerequisite failed is SKIPPED, with the reason. When the test
segment does not arrive, check says why: the archiver failing (with the
archive_command's error when the server log is readable), permission denied on a
local repository, WAL going to another repository or cluster, or a slow archiver.

--json prints {"ok", "checks": [{"name", "status", "detail", "hint"}], "segment",
"system_identifier", "repos": [{"repo", "seconds"}]}. --nagios prints one status
line and exits 0 (OK), 1 (WARNING), 2 (CRITICAL: something failed) or 3 (UNKNOWN:
check could not run), as a Nagios or Icinga plugin does.

--conn takes a libpq connection string or URI; PGHOST, PGPORT, PGUSER and the
other libpq variables apply. A superuser can run every step; another role needs
REPLICATION and:

  GRANT pg_monitor TO role;
  GRANT EXECUTE ON FUNCTION pg_create_restore_point(text), pg_switch_wal() TO role;`,
		Example: `  pgward check --conn "host=/var/run/postgresql user=postgres"
  pgward check --config /etc/pgward/pgward.toml --nagios
  pgward check --json | jq '.checks[] | select(.status != "OK")'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cluster, err := clusterName(o)
			if err != nil {
				return err
			}
			checkOpts := engine.CheckOptions{Cluster: cluster, Conn: o.Conn, Timeout: o.Timeout, Program: selfPath(), Log: slog.Default(),
				Open: func(ctx context.Context) ([]*repo.Repo, error) { return openRepos(ctx, o) }}
			if o.Config != "" {
				checkOpts.Config, _ = filepath.Abs(o.Config)
			}
			res, err := engine.Check(ctx, checkOpts)
			switch {
			case o.Nagios:
				return nagios(cmd.OutOrStdout(), res, err)
			case err != nil:
				return err
			case o.JSON:
				if err := printJSON(cmd.OutOrStdout(), struct {
					OK bool `json:"ok"`
					*engine.CheckResult
				}{!res.Failed(), res}); err != nil {
					return err
				}
			default:
				printChecklist(cmd.OutOrStdout(), res)
			}
			return res.Err()
		},
	}
	return cmd
}

// printChecklist writes one line per check, and the hint under a failed one.
func printChecklist(w io.Writer, res *engine.CheckResult) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, it := range res.Items {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", it.Status, it.Name, it.Detail)
		if it.Hint != "" {
			fmt.Fprintf(tw, "\t\t→ %s\n", it.Hint)
		}
	}
	tw.Flush()
}

// nagios prints one plugin status line and exits with the plugin's status.
func nagios(w io.Writer, res *engine.CheckResult, err error) error {
	status, code := "OK", nagiosOK
	line := ""
	switch {
	case err != nil:
		status, code, line = "UNKNOWN", nagiosUnknown, err.Error()
	case res.Failed():
		status, code, line = "CRITICAL", nagiosCritical, res.Summary()
	case res.Warned():
		status, code, line = "WARNING", nagiosWarning, res.Summary()
	default:
		line = res.Summary()
	}
	fmt.Fprintf(w, "PGWARD %s - %s\n", status, strings.ReplaceAll(line, "\n", " "))
	return &exitError{code: code}
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
