package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/pgward/pgward/internal/cmdline"
	"github.com/pgward/pgward/restore"
	"github.com/spf13/cobra"
)

func newRestoreCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "restore",
		Short: "Restore a backup into an empty data directory",
		Long: `Restore a backup into --pgdata (which must be empty or absent), with its
tablespaces (moved with --tablespace-map OID=DIR), and write recovery.signal and
a restore_command that calls this pgward binary, so that 'pg_ctl start' replays
WAL to the target (default: all archived WAL) and promotes.

Before writing anything it checks that the archive reaches the target: a time or
LSN after the last archived WAL, a gap in the archive before the target (or, with
no target, before the newest WAL: --stop-at-gap accepts it), or a timeline that
does not descend from the backup is refused. It then runs the restore_command once,
as the server's user, to prove the server will be able to fetch WAL.

The restored cluster gets archive_mode = off, so that it cannot archive its new
timeline into the source's repository; --archive-mode preserve keeps the source's
setting (a disaster recovery that becomes the new primary).

Run as root, the restored files are given to the owner of the data directory's
parent (or --owner).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cluster, err := clusterName(cmd)
			if err != nil {
				return err
			}
			f := cmd.Flags()
			pgdata, _ := f.GetString("pgdata")
			if pgdata == "" {
				return fmt.Errorf("restore needs --pgdata DIR (the directory to restore into)")
			}
			backupID, _ := f.GetString("backup")
			jobs, err := jobsFlag(cmd)
			if err != nil {
				return err
			}
			tsMap, err := parseTablespaceMap(f.Lookup("tablespace-map").Value.(interface{ GetSlice() []string }).GetSlice())
			if err != nil {
				return err
			}
			archiveMode, _ := f.GetString("archive-mode")
			if archiveMode != "off" && archiveMode != "preserve" {
				return fmt.Errorf("--archive-mode %q: use off (the default: the restored copy does not archive) or preserve (keep the source's archive settings)", archiveMode)
			}
			uid, gid := -1, -1
			if os.Geteuid() == 0 {
				owner, _ := f.GetString("owner")
				if uid, gid, err = restoreOwner(pgdata, owner); err != nil {
					return err
				}
			}
			target := restore.Target{}
			target.Time, _ = f.GetString("target-time")
			target.LSN, _ = f.GetString("target-lsn")
			target.XID, _ = f.GetString("target-xid")
			target.Name, _ = f.GetString("target-name")
			target.Immediate, _ = f.GetBool("target-immediate")
			target.Exclusive, _ = f.GetBool("target-exclusive")
			target.Action, _ = f.GetString("target-action")
			target.Timeline, _ = f.GetString("target-timeline")
			if err := target.Validate(); err != nil {
				return err
			}
			stopAtGap, _ := f.GetBool("stop-at-gap")
			repos, err := openRepos(ctx, cmd)
			if err != nil {
				return err
			}
			rc, err := restoreCommand(cmd)
			if err != nil {
				return err
			}
			// Everything that can refuse the restore runs before the first write.
			plan, err := restore.Prepare(ctx, repos, restore.Request{Cluster: cluster, BackupID: backupID, Target: target, StopAtGap: stopAtGap})
			if err != nil {
				return err
			}
			for _, w := range plan.Warnings {
				slog.Warn(w)
			}
			o := restore.Options{Cluster: cluster, BackupID: plan.Backup.ID, PGData: pgdata, TablespaceMap: tsMap, Jobs: jobs, UID: uid, GID: gid,
				Recovery: plan.Settings(rc, target, archiveMode == "preserve"), Log: slog.Default()}
			if skip, _ := f.GetBool("skip-restore-command-check"); !skip {
				probe, archived := plan.Probe()
				abs, _ := filepath.Abs(pgdata)
				check := restore.CommandCheck{Command: rc, Probe: probe, Archived: archived, UID: uid, GID: gid, Dir: filepath.Dir(abs)}
				o.BeforeWrite = func(ctx context.Context) error {
					if err := check.Run(ctx); err != nil {
						return fmt.Errorf("restore refused, nothing written: %w; give the server's user a passphrase file it can read (--passphrase-file) or a --passphrase-command, and read access to the repository, or --skip-restore-command-check when the server's own environment provides what is missing", err)
					}
					return nil
				}
			}
			bar := newProgress("restore", 0)
			o.Progress = bar.set
			res, err := restore.Run(ctx, repos, o)
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
			fmt.Fprintf(out, "restored backup %s of cluster %s into %s: %s written in %s\n",
				res.Manifest.ID, cluster, pgdata, humanBytes(res.Written), res.Duration.Round(1e7))
			if archiveMode == "off" {
				fmt.Fprintf(out, "archiving is off in the restored cluster (archive_mode = off in postgresql.auto.conf), so it cannot write into this repository; to make it a primary that archives, remove that line (and give it its own --cluster) before starting it, or restore with --archive-mode preserve\n")
			}
			fmt.Fprintf(out, "start it with: pg_ctl -D %s start\n", pgdata)
			return nil
		},
	}
	f := cmd.Flags()
	f.String("pgdata", "", "directory to restore into (must be empty or absent)")
	f.String("backup", "latest", "backup ID to restore, or latest")
	f.Int("jobs", runtime.NumCPU(), "parallel chunk readers and writers")
	f.StringSlice("tablespace-map", nil, "move a tablespace: OID=DIR (repeatable)")
	f.String("target-time", "", "recover to this time (PostgreSQL timestamp syntax, zone optional)")
	f.String("target-lsn", "", "recover to this WAL position (e.g. 0/3000060)")
	f.String("target-xid", "", "recover to this transaction ID")
	f.String("target-name", "", "recover to this restore point (pg_create_restore_point)")
	f.Bool("target-immediate", false, "stop as soon as the backup is consistent")
	f.Bool("target-exclusive", false, "stop just before the target instead of just after it")
	f.String("target-action", "", "after reaching the target: promote (default), pause or shutdown")
	f.String("target-timeline", "latest", "timeline to recover along: latest (the newest that descends from the backup), current or a number")
	f.Bool("stop-at-gap", false, "with a gap in the archive, recover up to the gap instead of refusing")
	f.String("archive-mode", "off", "off: the restored cluster does not archive; preserve: keep the source's archive settings")
	f.Bool("skip-restore-command-check", false, "do not try the restore_command before restoring (when only the server's environment can run it)")
	f.String("owner", "", "when run as root, the user to own the restored files (default: owner of the --pgdata parent directory)")
	return cmd
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

// restoreOwner picks who owns the restored files when running as root.
func restoreOwner(pgdata, owner string) (int, int, error) {
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
	uid, gid, err := restore.OwnerOf(filepath.Dir(abs))
	if err != nil {
		return -1, -1, fmt.Errorf("finding the owner for the restored files: %w; create the parent directory or give --owner", err)
	}
	return uid, gid, nil
}

// restoreCommand builds the restore_command: this binary by its absolute path,
// with the same repository options, so the restored server fetches WAL from
// where the backup came from.
func restoreCommand(cmd *cobra.Command) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("finding the pgward binary for restore_command: %w", err)
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return "", err
	}
	f := cmd.Flags()
	inv := cmdline.Invocation{Program: exe, Command: "archive-get", Args: []string{"%f", "%p"}}
	c, _ := f.GetString("config")
	if c == "" {
		c = os.Getenv(envName("config")) // the server does not have this environment
	}
	if c != "" {
		inv.Config, _ = filepath.Abs(c)
	}
	specs, _ := f.GetStringArray("repo")
	for _, s := range specs {
		if !strings.Contains(s, "://") {
			s, _ = filepath.Abs(s)
		}
		inv.Repos = append(inv.Repos, s)
	}
	inv.Cluster, _ = f.GetString("cluster")
	if p, _ := f.GetString("passphrase-file"); p != "" {
		inv.PassphraseFile, _ = filepath.Abs(p)
	}
	inv.PassphraseCommand, _ = f.GetString("passphrase-command")
	// The S3 options too (set here, in the environment or in the file: the server has
	// neither this environment nor, perhaps, --config). Credentials are not options: the
	// server gets them from its own environment or AWS shared config.
	for _, n := range s3FlagNames {
		if fl := f.Lookup(n); fl != nil && fl.Changed {
			inv.Options = append(inv.Options, cmdline.Option{Name: n, Value: fl.Value.String()})
		}
	}
	return inv.Build(), nil
}
