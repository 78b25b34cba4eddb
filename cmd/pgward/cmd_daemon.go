package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pgward/pgward/engine/daemon"
	"github.com/pgward/pgward/engine/verify"
	"github.com/pgward/pgward/internal/config"
	"github.com/pgward/pgward/repo"
	"github.com/spf13/cobra"
)

func newDaemonCmd(o *config.Options) *cobra.Command {
	return &cobra.Command{
		Use:   "daemon",
		Short: "Run backups, retention, verifies, drills and WAL streaming for many clusters on schedules",
		Long: `Run as a service for every [cluster.NAME] table of the config file (--config,
required): scheduled backups (backup-schedule, cron syntax or @every 6h) with the
cluster's retention after each, incremental verifies (verify-schedule), restore
drills (drill-schedule) that measure the recovery time, and a supervised
wal-receive (wal-stream = true). One job runs at a time per cluster; a schedule
missed while the daemon was down runs once at start.

Objectives (rpo-target, rto-target, the backup schedule's age, failed verifies and
drills) turn /healthz unhealthy when breached and run the on-failure hooks; their
recovery runs the on-success hooks. The HTTP server (listen in [daemon], default
127.0.0.1:9187) serves /metrics (Prometheus), /healthz, /status (JSON) and a status
page at /.

SIGHUP reloads the config (a config that does not load is refused and the running
one kept). SIGTERM or SIGINT stop scheduling, give a running job 20 s to finish and
then cancel it (a canceled backup commits nothing), let the receivers upload their
partial segments, and exit 0. docs/daemon.md has the config keys, metrics and
hooks; deploy/ has a systemd unit and an example config.`,
		Example: `  pgward daemon --config /etc/pgward/pgward.toml`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Config == "" {
				if _, err := os.Stat(config.DefaultFile); err != nil {
					return fmt.Errorf("the daemon needs a config file with a [cluster.NAME] table per cluster: give --config FILE (see deploy/pgward.toml)")
				}
				o.Config = config.DefaultFile
			}
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			reload := make(chan struct{}, 1)
			go func() {
				for range hup {
					select {
					case reload <- struct{}{}:
					default:
					}
				}
			}()
			return daemon.Run(cmd.Context(), daemon.Options{ConfigPath: o.Config, Env: os.LookupEnv, Reload: reload,
				Verify: scheduledVerify, LastVerify: lastVerify, Version: version, Log: slog.Default()})
		},
	}
}

// scheduledDefaultSubset is the share a scheduled verify reads when the cluster's config
// sets no read-data option: with the ledger, new objects are read the day they appear and
// every object within verify-period.
const scheduledDefaultSubset = 5

// scheduledVerify is the daemon's verify: verify.All with the cluster's options, incremental
// by default.
func scheduledVerify(ctx context.Context, repos []*repo.Repo, o *config.Options) (string, error) {
	opts, err := verify.OptionsFrom(o)
	if err != nil {
		return "", err
	}
	if opts.Mode == verify.Structure {
		opts.Mode, opts.Subset = verify.ReadSubset, scheduledDefaultSubset
	}
	results, err := verify.All(ctx, repos, opts)
	read, problems := 0, 0
	for _, r := range results {
		read += r.Counts.ObjectsRead
		problems += r.Counts.Problems
	}
	summary := fmt.Sprintf("%d objects read, %d problems (%s)", read, problems, opts.Mode)
	if err == nil && problems > 0 {
		err = fmt.Errorf("verify found %d problems; 'pgward verify' names them", problems)
	}
	return summary, err
}

// lastVerify is when the first repository was last verified.
func lastVerify(ctx context.Context, repos []*repo.Repo) time.Time {
	if len(repos) == 0 {
		return time.Time{}
	}
	run, err := repos[0].LastVerifyRun(ctx)
	if err != nil || run == nil {
		return time.Time{}
	}
	return run.Time
}
