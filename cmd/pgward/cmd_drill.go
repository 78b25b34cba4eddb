package main

import (
	"fmt"
	"time"

	"github.com/pgward/pgward/engine/drill"
	"github.com/pgward/pgward/internal/config"
	"github.com/pgward/pgward/repo"
	"github.com/spf13/cobra"
)

func newDrillCmd(o *config.Options) *cobra.Command {
	return &cobra.Command{
		Use:   "drill",
		Short: "Prove a backup restores: restore it, start it, read it, measure the recovery time",
		Long: `Restore a backup of --cluster (--backup, default latest) into a scratch directory
(--scratch-dir), start a throwaway PostgreSQL of the backup's major version
(--pg-bin) on a free loopback port with archiving off, wait until recovery reaches
the target (--target-time, "random" for a random point in the window after the
backup, default the end of the archived WAL) and promotes, and check it: every
database answers, every table is read to the end by a sequential scan (with data
checksums on, that verifies every page), and with the amcheck extension available
every B-tree index and heap is checked. The server is stopped and the scratch
directory removed whatever the outcome.

The result is recorded in the repository (info shows the last drill) with the
measured recovery time (RTO) split into restore, WAL replay until promotion, and
the first read-write transaction; the parts add up to the total. Run as root, the
server runs as the postgres OS user.

--json prints the record: cluster, time, requested, backup, target, pg_version, ok,
error, rto_seconds, restore_seconds, replay_seconds, accept_seconds,
wal_bytes_replayed, restored_bytes, check_seconds, checks (databases, tables, rows,
amcheck, indexes_checked, heaps_checked).`,
		Example: `  pgward drill
  pgward drill --target-time random --pg-bin /usr/lib/postgresql/17/bin --json`,
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
			do, err := drill.OptionsFrom(o)
			if err != nil {
				return err
			}
			do.Backup, do.Target = o.Restore.Backup, o.Restore.TargetTime
			rec, err := drill.Run(ctx, repos, do)
			if o.JSON {
				if jerr := printJSON(cmd.OutOrStdout(), rec); jerr != nil {
					return jerr
				}
			} else {
				printDrill(cmd, rec)
			}
			if err != nil {
				return fmt.Errorf("drill of cluster %s failed: %w", cluster, err)
			}
			return nil
		},
	}
}

func printDrill(cmd *cobra.Command, rec *repo.DrillRecord) {
	w := cmd.OutOrStdout()
	target := rec.Target
	if target == "" {
		target = "the end of the archived WAL"
	}
	outcome := "PASSED"
	if !rec.OK {
		outcome = "FAILED"
	}
	fmt.Fprintf(w, "drill %s: backup %s of cluster %s, recovered to %s\n", outcome, rec.Backup, rec.Cluster, target)
	if !rec.OK {
		return
	}
	sec := func(f float64) time.Duration { return time.Duration(f * float64(time.Second)).Round(time.Millisecond) }
	fmt.Fprintf(w, "  RTO %s = restore %s (%s) + WAL replay %s (%s) + first write %s\n", sec(rec.RTOSeconds), sec(rec.RestoreSeconds),
		humanBytes(rec.RestoredBytes), sec(rec.ReplaySeconds), humanBytes(rec.WALBytesReplayed), sec(rec.AcceptSeconds))
	c := rec.Checks
	amcheck := "amcheck not available"
	if c.Amcheck {
		amcheck = fmt.Sprintf("amcheck: %d indexes, %d heaps", c.IndexesChecked, c.HeapsChecked)
	}
	fmt.Fprintf(w, "  checked in %s: %d databases, %d tables read to the end (%d rows), %s\n", sec(rec.CheckSeconds), c.Databases, c.Tables, c.Rows, amcheck)
}
