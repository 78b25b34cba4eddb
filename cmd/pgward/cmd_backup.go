package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/pgward/pgward/engine"
	"github.com/pgward/pgward/engine/expire"
	"github.com/pgward/pgward/internal/config"
	"github.com/pgward/pgward/internal/units"
	"github.com/pgward/pgward/repo"
	"github.com/spf13/cobra"
)

func newBackupCmd(o *config.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use: "backup",
		Example: `  pgward backup --repo /var/lib/pgward --conn "host=/var/run/postgresql user=postgres"
  pgward backup --config /etc/pgward/pgward.toml --checkpoint fast --json
  pgward backup -c /etc/pgward/pgward.toml -C db2 --conn "host=db2 user=backup" --keep-last 7`,
		Short: "Take a full (deduplicated) backup over the replication protocol",
		Long: `Take a base backup of the server at --conn with BASE_BACKUP, split it into
chunks, store the chunks the repository does not have yet, and commit the backup.
Every backup is logically full; unchanged data is not stored again.

--conn takes a libpq connection string or URI; PGHOST, PGPORT, PGUSER,
PGPASSWORD, PGSSLMODE and the other libpq variables apply. The role needs the
REPLICATION attribute.

--conn may point at a hot standby: the backup is then taken from it, and recovery
past its end reads the primary's archive. With --backup-standby on and
--primary-conn, the standby is first checked against its primary (same system
identifier and timeline); --backup-standby prefer backs up the primary instead
when the standby cannot be used.`,
		Args: noArgs,
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
			backupOpts := engine.BackupOptionsFrom(o)
			bar := newProgress("backup", 0)
			backupOpts.Progress, backupOpts.Total = bar.set, bar.setTotal
			// The server's estimate is a pass over every file before the data; by
			// default only a bar drawn on a terminal, whose percentage and ETA
			// someone watches, asks for it.
			if o.Origin("estimate") == config.FromDefault && bar.tty {
				backupOpts.NoEstimate = false
			}
			res, err := engine.Backup(ctx, repos, backupOpts)
			bar.finish()
			if err != nil {
				return err
			}
			m := res.Manifests[0]
			if o.JSON {
				if err := printJSON(cmd.OutOrStdout(), backupResultJSON(res, cluster, repos)); err != nil {
					return err
				}
				return expireAfterBackup(cmd, o, repos, cluster, m.ID)
			}
			secs := res.Duration.Seconds()
			dedup := 0.0
			if res.Received > 0 {
				dedup = 100 * (1 - float64(res.Stored)/float64(res.Received))
			}
			fmt.Fprintln(cmd.OutOrStdout(), m.ID)
			fmt.Fprintf(cmd.OutOrStdout(), "backup %s of cluster %s: read %s, stored %s new (%.1f%% saved by dedup and compression), %s, %s/s\n",
				m.ID, cluster, humanBytes(res.Received), humanBytes(res.Stored), dedup, res.Duration.Round(10*time.Millisecond), humanBytes(int64(float64(res.Received)/max(secs, 0.001))))
			return expireAfterBackup(cmd, o, repos, cluster, m.ID)
		},
	}
	return cmd
}

// backupJSONResult is 'backup --json'.
type backupJSONResult struct {
	Backup          string   `json:"backup"`
	Cluster         string   `json:"cluster"`
	StartLSN        string   `json:"start_lsn"`
	StopLSN         string   `json:"stop_lsn"`
	Timeline        uint32   `json:"timeline"`
	ReadBytes       int64    `json:"read_bytes"`
	StoredBytes     int64    `json:"stored_bytes"`
	DurationSeconds float64  `json:"duration_seconds"`
	Repos           []string `json:"repos"`
}

func backupResultJSON(res *engine.BackupResult, cluster string, repos []*repo.Repo) backupJSONResult {
	m := res.Manifests[0]
	out := backupJSONResult{Backup: m.ID, Cluster: cluster, StartLSN: m.StartLSN, StopLSN: m.StopLSN, Timeline: m.Timeline,
		ReadBytes: res.Received, StoredBytes: res.Stored, DurationSeconds: res.Duration.Seconds(), Repos: []string{}}
	for _, r := range repos {
		out.Repos = append(out.Repos, r.String())
	}
	return out
}

// expireAfterBackup applies the configured retention policy, if any, once the backup is
// committed: a policy in the config runs after every backup of its cluster.
func expireAfterBackup(cmd *cobra.Command, o *config.Options, repos []*repo.Repo, cluster, id string) error {
	policy := retentionPolicy(o)
	if policy.Empty() {
		return nil
	}
	results, err := expire.All(cmd.Context(), repos, cluster, policy, false, slog.Default())
	for _, res := range results {
		slog.Info("retention applied after the backup", "repo", res.Repository, "policy", res.Policy, "expired", len(res.Expired),
			"wal_files_removed", res.WAL.RemovedFiles, "freed_bytes", res.FreedBytes, "sweep_skipped", res.Sweep.Skipped != "")
	}
	if err != nil {
		return fmt.Errorf("backup %s is committed, but applying the retention policy after it failed: %w", id, err)
	}
	return nil
}

func humanBytes(n int64) string { return units.Bytes(n) }
