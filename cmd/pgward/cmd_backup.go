package main

import (
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/pgward/pgward/engine"
	"github.com/spf13/cobra"
)

func newBackupCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Take a full (deduplicated) backup over the replication protocol",
		Long: `Take a base backup of the server at --conn with BASE_BACKUP, split it into
chunks, store the chunks the repository does not have yet, and commit the backup.
Every backup is logically full; unchanged data is not stored again.

--conn takes a libpq connection string or URI; PGHOST, PGPORT, PGUSER,
PGPASSWORD, PGSSLMODE and the other libpq variables apply. The role needs the
REPLICATION attribute.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cluster, err := clusterName(cmd)
			if err != nil {
				return err
			}
			f := cmd.Flags()
			codec, err := codecFlag(cmd)
			if err != nil {
				return err
			}
			conn, _ := f.GetString("conn")
			jobs, err := jobsFlag(cmd)
			if err != nil {
				return err
			}
			checkpoint, _ := f.GetString("checkpoint")
			if checkpoint != "fast" && checkpoint != "spread" {
				return fmt.Errorf("--checkpoint %q: use fast or spread", checkpoint)
			}
			maxRate, _ := f.GetInt("max-rate")
			if maxRate < 0 || (maxRate > 0 && maxRate < 32) {
				return fmt.Errorf("--max-rate %d kB/s: give 0 (unlimited) or at least 32 kB/s, PostgreSQL's minimum", maxRate)
			}
			label, _ := f.GetString("label")
			repos, err := openRepos(ctx, cmd)
			if err != nil {
				return err
			}
			o := engine.BackupOptions{Cluster: cluster, Conn: conn, Codec: codec, Jobs: jobs, FastCheckpoint: checkpoint == "fast", MaxRate: maxRate, Label: label, Log: slog.Default()}
			bar := newProgress("backup", 0)
			o.Progress = bar.set
			res, err := engine.Backup(ctx, repos, o)
			bar.finish()
			if err != nil {
				return err
			}
			m := res.Manifests[0]
			secs := res.Duration.Seconds()
			dedup := 0.0
			if res.Received > 0 {
				dedup = 100 * (1 - float64(res.Stored)/float64(res.Received))
			}
			fmt.Fprintln(cmd.OutOrStdout(), m.ID)
			fmt.Fprintf(cmd.OutOrStdout(), "backup %s of cluster %s: read %s, stored %s new (%.1f%% saved by dedup and compression), %s, %s/s\n",
				m.ID, cluster, humanBytes(res.Received), humanBytes(res.Stored), dedup, res.Duration.Round(10*time.Millisecond), humanBytes(int64(float64(res.Received)/max(secs, 0.001))))
			return nil
		},
	}
	f := cmd.Flags()
	f.String("conn", "", "libpq connection string or URI of the server to back up")
	f.String("compress", "zstd:3", "compression: zstd, zstd:N (1-19), lz4 or none")
	f.Int("jobs", runtime.NumCPU(), "parallel chunk workers")
	f.String("checkpoint", "spread", "checkpoint at backup start: fast (immediate I/O burst) or spread (waits for checkpoint_completion_target)")
	f.Int("max-rate", 0, "limit the server's send rate in kB/s (0: unlimited)")
	f.String("label", "", "backup label (default: pgward <ID>)")
	return cmd
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
