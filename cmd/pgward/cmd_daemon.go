package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/pgward/pgward/engine/daemon"
	"github.com/pgward/pgward/internal/config"
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
				Version: version, Log: slog.Default()})
		},
	}
}
