package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pgward/pgward/internal/cmdline"
	"github.com/pgward/pgward/internal/config"
	"github.com/pgward/pgward/restore"
	"github.com/spf13/cobra"
)

func newRestoreCmd(o *config.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use: "restore",
		Example: `  pgward restore --repo /var/lib/pgward --pgdata /srv/pg/restored
  pgward restore -c /etc/pgward/pgward.toml -D /srv/pg/restored --target-time "2026-12-01 13:05:00+01"
  pgward restore -c /etc/pgward/pgward.toml -D /var/lib/postgresql/15/main --delta
  pgward restore -c /etc/pgward/pgward.toml -D /srv/standby --standby --primary-conninfo "host=pg1 user=replicator"`,
		Short: "Restore a backup into an empty data directory (or, with --delta, over the same cluster)",
		Long: `Restore a backup into --pgdata (which must be empty or absent), with its
tablespaces (moved with --tablespace-map OID=DIR), and write recovery.signal and
a restore_command that calls this pgward binary, so that 'pg_ctl start' replays
WAL to the target (default: all archived WAL) and promotes.

--delta rewrites a data directory that holds the backup's cluster (same system
identifier, server stopped): only the chunks whose content differs are written,
and what the backup does not have is removed. --standby --primary-conninfo STRING
restores a streaming standby (standby.signal) that also reads the archive.
--db-include NAME restores only the named databases besides the system ones; the
others are left as empty shells to DROP.

Before writing anything it checks that the archive reaches the target: a time or
LSN after the last archived WAL, a gap in the archive before the target (or, with
no target, before the newest WAL: --stop-at-gap accepts it), or a timeline that
does not descend from the backup is refused. It then runs the restore_command once,
as the server's user, to prove the server will be able to fetch WAL.

The restored cluster gets archive_mode = off, so that it cannot archive its new
timeline into the source's repository; --archive-mode preserve keeps the source's
setting (a disaster recovery that becomes the new primary). A --standby keeps
them by default: once promoted, it archives where its primary did.

Run as root, the restored files are given to the owner of the data directory's
parent (with --delta, of its pg_control), or to --owner.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cluster, err := clusterName(o)
			if err != nil {
				return err
			}
			ro := o.Restore
			pgdata := ro.PGData
			if pgdata == "" {
				return fmt.Errorf("restore needs --pgdata DIR (the directory to restore into)")
			}
			tsMap, err := parseTablespaceMap(ro.TablespaceMap)
			if err != nil {
				return err
			}
			uid, gid := -1, -1
			if os.Geteuid() == 0 {
				if uid, gid, err = restoreOwner(pgdata, ro.Owner, ro.Delta); err != nil {
					return err
				}
			}
			target := restore.Target{Time: ro.TargetTime, LSN: ro.TargetLSN, XID: ro.TargetXID, Name: ro.TargetName,
				Immediate: ro.TargetImmediate, Exclusive: ro.TargetExclusive, Action: ro.TargetAction, Timeline: ro.TargetTimeline}
			if err := target.Validate(); err != nil {
				return err
			}
			if err := checkStandbyOptions(ro); err != nil {
				return err
			}
			repos, err := openReadRepos(ctx, o)
			if err != nil {
				return err
			}
			rc, err := restoreCommand(o)
			if err != nil {
				return err
			}
			// Everything that can refuse the restore runs before the first write.
			plan, err := restore.Prepare(ctx, repos, restore.Request{Cluster: cluster, BackupID: ro.Backup, Target: target, StopAtGap: ro.StopAtGap, Standby: ro.Standby})
			if err != nil {
				return err
			}
			for _, w := range plan.Warnings {
				slog.Warn(w)
			}
			// A standby belongs to the source cluster: when promoted it is the
			// new primary and archives where the old one did.
			preserve := ro.ArchiveMode == "preserve" || (ro.Standby && o.Origin("archive-mode") == config.FromDefault)
			settings := plan.Settings(rc, target, preserve)
			if ro.Standby {
				settings = restore.StandbySettings(rc, ro.PrimaryConnInfo, ro.PrimarySlotName)
				if !preserve {
					settings = append(settings, restore.Setting{Name: "archive_mode", Value: "off"})
				}
			}
			restoreOpts := restore.Options{Cluster: cluster, BackupID: plan.Backup.ID, PGData: pgdata, TablespaceMap: tsMap, Jobs: o.Jobs, UID: uid, GID: gid,
				Recovery: settings, Standby: ro.Standby, Delta: ro.Delta, DeltaCheck: ro.DeltaCheck, DBInclude: ro.DBInclude, Log: slog.Default()}
			if !ro.SkipRestoreCommandCheck {
				probe, archived := plan.Probe()
				abs, _ := filepath.Abs(pgdata)
				check := restore.CommandCheck{Command: rc, Probe: probe, Archived: archived, UID: uid, GID: gid, Dir: filepath.Dir(abs)}
				restoreOpts.BeforeWrite = func(ctx context.Context) error {
					if err := check.Run(ctx); err != nil {
						return fmt.Errorf("restore refused, nothing written: %w; give the server's user a passphrase file it can read (--passphrase-file) or a --passphrase-command, and read access to the repository, or --skip-restore-command-check when the server's own environment provides what is missing", err)
					}
					return nil
				}
			}
			bar := newProgress("restore", plan.Backup.DBBytes)
			restoreOpts.Progress = bar.set
			res, err := restore.Run(ctx, repos, restoreOpts)
			bar.finish()
			if err != nil {
				return err
			}
			stderr := cmd.ErrOrStderr()
			if plan.Zone != "" {
				fmt.Fprintf(stderr, "--target-time has no time zone: it was read in %s, the restored server's timezone setting\n", plan.Zone)
			}
			for _, n := range plan.Notes {
				fmt.Fprintln(stderr, "restore: "+n)
			}
			out := cmd.OutOrStdout()
			if o.JSON {
				return printJSON(out, restoreJSONResult{Backup: res.Manifest.ID, Cluster: cluster, PGData: pgdata, Target: target.Time + target.LSN + target.XID + target.Name,
					Delta: res.Delta, WrittenBytes: res.Written, KeptBytes: res.Kept, Removed: res.Removed, DurationSeconds: res.Duration.Seconds(),
					ArchiveMode: map[bool]string{true: "preserve", false: "off"}[preserve], Standby: ro.Standby})
			}
			printRestoreResult(out, res, cluster, pgdata)
			if !preserve {
				fmt.Fprintf(out, "archiving is off in the restored cluster (archive_mode = off in postgresql.auto.conf), so it cannot write into this repository; to make it a primary that archives, remove that line (and give it its own --cluster) before starting it, or restore with --archive-mode preserve\n")
			}
			if ro.Standby {
				fmt.Fprintf(out, "it starts as a standby (standby.signal) streaming from %s and reading the archive when streaming breaks\n", ro.PrimaryConnInfo)
			}
			fmt.Fprintf(out, "start it with: pg_ctl -D %s start\n", pgdata)
			return nil
		},
	}
	return cmd
}

// checkStandbyOptions refuses standby options that do not go together.
func checkStandbyOptions(ro config.Restore) error {
	switch {
	case ro.Standby && ro.PrimaryConnInfo == "":
		return fmt.Errorf("--standby needs --primary-conninfo STRING, the connection the standby streams from (e.g. 'host=pg1 user=replicator')")
	case !ro.Standby && (ro.PrimaryConnInfo != "" || ro.PrimarySlotName != ""):
		return fmt.Errorf("--primary-conninfo and --primary-slot-name are for a standby restore; add --standby")
	case ro.Standby && ro.StopAtGap:
		return fmt.Errorf("--stop-at-gap does not apply to --standby: a standby streams past a gap in the archive from the primary")
	}
	return nil
}

// printRestoreResult says what the restore wrote (and, for a delta restore,
// what it kept and removed).
// restoreJSONResult is 'restore --json'.
type restoreJSONResult struct {
	Backup          string  `json:"backup"`
	Cluster         string  `json:"cluster"`
	PGData          string  `json:"pgdata"`
	Target          string  `json:"target"`
	Delta           bool    `json:"delta"`
	WrittenBytes    int64   `json:"written_bytes"`
	KeptBytes       int64   `json:"kept_bytes"`
	Removed         int64   `json:"removed"`
	DurationSeconds float64 `json:"duration_seconds"`
	ArchiveMode     string  `json:"archive_mode"`
	Standby         bool    `json:"standby"`
}

func printRestoreResult(out io.Writer, res *restore.Result, cluster, pgdata string) {
	m := res.Manifest
	switch {
	case res.Delta:
		fmt.Fprintf(out, "delta restore of backup %s of cluster %s into %s: %s rewritten (%s of it the WAL the backup carries), %s already equal, %d entries removed, in %s\n",
			m.ID, cluster, pgdata, humanBytes(res.Written), humanBytes(res.WALWritten), humanBytes(res.Kept), res.Removed, res.Duration.Round(1e7))
	default:
		fmt.Fprintf(out, "restored backup %s of cluster %s into %s: %s written in %s\n",
			m.ID, cluster, pgdata, humanBytes(res.Written), res.Duration.Round(1e7))
	}
	if res.Zeroed > 0 {
		fmt.Fprintf(out, "the databases not in --db-include are empty shells (%s of their files written empty): drop them with DROP DATABASE once the server is up\n", humanBytes(res.Zeroed))
	}
}

func parseTablespaceMap(items []string) (map[uint32]string, error) {
	m := map[uint32]string{}
	for _, it := range items {
		k, v, ok := strings.Cut(it, "=")
		oid, err := strconv.ParseUint(k, 10, 32)
		if !ok || err != nil || v == "" {
			return nil, fmt.Errorf("--tablespace-map %q: use OID=DIR, e.g. 16385=/srv/pg/ts1", it)
		}
		m[uint32(oid)] = v
	}
	return m, nil
}

// restoreOwner picks who owns the restored files when running as root: --owner,
// else for a delta restore the owner of the cluster's own pg_control, else the
// owner of the data directory's parent.
func restoreOwner(pgdata, owner string, delta bool) (int, int, error) {
	if owner != "" {
		u, err := user.Lookup(owner)
		if err != nil {
			return -1, -1, fmt.Errorf("--owner %s: %w", owner, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return uid, gid, nil
	}
	abs, err := filepath.Abs(pgdata)
	if err != nil {
		return -1, -1, err
	}
	if delta {
		for _, f := range []string{"global/pg_control", "global/pg_control.pgward-delta"} {
			if uid, gid, err := restore.OwnerOf(filepath.Join(abs, f)); err == nil {
				return uid, gid, nil
			}
		}
	}
	uid, gid, err := restore.OwnerOf(filepath.Dir(abs))
	if err != nil {
		return -1, -1, fmt.Errorf("finding the owner for the restored files: %w; create the parent directory or give --owner", err)
	}
	return uid, gid, nil
}

// restoreCommand is the restore_command of the restored cluster (cmdline.RestoreCommand).
func restoreCommand(o *config.Options) (string, error) { return cmdline.RestoreCommand(o) }

// archiveGetCommand is the restore_command of program under o.
func archiveGetCommand(program string, o *config.Options) string {
	return cmdline.ArchiveGet(program, o)
}
