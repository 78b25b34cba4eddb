package main

import (
	"context"
	"fmt"
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
				if uid, gid, err = restoreOwner(pgdata, ro.Owner); err != nil {
					return err
				}
			}
			target := restore.Target{Time: ro.TargetTime, LSN: ro.TargetLSN, XID: ro.TargetXID, Name: ro.TargetName,
				Immediate: ro.TargetImmediate, Exclusive: ro.TargetExclusive, Action: ro.TargetAction, Timeline: ro.TargetTimeline}
			if err := target.Validate(); err != nil {
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
			plan, err := restore.Prepare(ctx, repos, restore.Request{Cluster: cluster, BackupID: ro.Backup, Target: target, StopAtGap: ro.StopAtGap})
			if err != nil {
				return err
			}
			for _, w := range plan.Warnings {
				slog.Warn(w)
			}
			restoreOpts := restore.Options{Cluster: cluster, BackupID: plan.Backup.ID, PGData: pgdata, TablespaceMap: tsMap, Jobs: o.Jobs, UID: uid, GID: gid,
				Recovery: plan.Settings(rc, target, ro.ArchiveMode == "preserve"), Log: slog.Default()}
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
			bar := newProgress("restore", 0)
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
			fmt.Fprintf(out, "restored backup %s of cluster %s into %s: %s written in %s\n",
				res.Manifest.ID, cluster, pgdata, humanBytes(res.Written), res.Duration.Round(1e7))
			if ro.ArchiveMode == "off" {
				fmt.Fprintf(out, "archiving is off in the restored cluster (archive_mode = off in postgresql.auto.conf), so it cannot write into this repository; to make it a primary that archives, remove that line (and give it its own --cluster) before starting it, or restore with --archive-mode preserve\n")
			}
			fmt.Fprintf(out, "start it with: pg_ctl -D %s start\n", pgdata)
			return nil
		},
	}
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
// where the backup came from. It carries what was set on the command line, in
// the environment or in the file: the server has neither this environment nor,
// perhaps, the file.
func restoreCommand(o *config.Options) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("finding the pgward binary for restore_command: %w", err)
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return "", err
	}
	return archiveGetCommand(exe, o), nil
}

// archiveGetCommand is the restore_command of program under o.
func archiveGetCommand(program string, o *config.Options) string {
	inv := cmdline.Invocation{Program: program, Command: "archive-get", Args: []string{"%f", "%p"},
		Cluster: o.Cluster, PassphraseCommand: o.Passphrase.Command}
	if o.Config != "" {
		inv.Config, _ = filepath.Abs(o.Config)
	}
	for _, s := range o.Repos {
		if !strings.Contains(s, "://") {
			s, _ = filepath.Abs(s)
		}
		inv.Repos = append(inv.Repos, s)
	}
	// Even when PGWARD_PASSPHRASE won here, the server needs the file.
	if p := o.Passphrase.File; p != "" {
		inv.PassphraseFile, _ = filepath.Abs(p)
	}
	// Credentials are not options: the server gets them from its own
	// environment, AWS shared config, ssh agent or key files.
	for _, k := range config.Keys() {
		if k.Group != "" && o.Origin(k.Name) != config.FromDefault {
			v := o.Text(k.Name)
			if k.IsPath && v != "" {
				v, _ = filepath.Abs(v)
			}
			inv.Options = append(inv.Options, cmdline.Option{Name: k.Flag(), Value: v})
		}
	}
	return inv.Build()
}
