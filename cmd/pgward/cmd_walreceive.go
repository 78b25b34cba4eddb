package main

import (
	"errors"
	"time"

	"github.com/pgward/pgward/internal/config"

	"github.com/pgward/pgward/wal/receive"
	"github.com/spf13/cobra"
)

func newWalReceiveCmd(o *config.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use: "wal-receive",
		Example: `  pgward wal-receive --config /etc/pgward/pgward.toml --conn "host=pg1 user=backup" --slot pgward --create-slot
  pgward wal-receive --config /etc/pgward/pgward.toml --conn "host=pg1 user=backup" --slot pgward --synchronous
  pgward wal-receive --config /etc/pgward/pgward.toml --flush-only`,
		Short: "Stream WAL from a server into the archive (zero data loss with --synchronous)",
		Long: `Follow the server at --conn over the physical replication protocol and archive
its WAL as it is written. Receiving and uploading are separate: WAL is written
into the local spool and fsynced before the server is told, and an uploader
beside it archives completed segments exactly like archive-push does and uploads
the segment in progress as a partial segment (every --partial-interval while
connected, at once when the connection is lost, and on shutdown). While the
repository is unreachable (or down at start) WAL waits in the spool, up to
--max-spool; receiving never waits for an upload. Runs until SIGTERM or SIGINT,
then finishes cleanly.

With --synchronous the receiver confirms each write as soon as it is fsynced:
list it in the primary's synchronous_standby_names (its application_name is
--application-name, default pgward) and a commit acknowledged to a client is
already durable on this host.

Use a replication slot (--slot, created with --create-slot) so the server keeps
WAL the receiver has not received yet. It is safe to run alongside an
archive_command into the same repository. One receiver uses a spool at a time.

--flush-only uploads what the spool holds (completed segments and the partial
segment up to its last complete record) and exits, without any server: for the
host that outlived its primary.

It stops (exit status 4) on errors a restart cannot fix: WAL already removed on
the server, a missing slot, refused credentials, another cluster at the address
or in the repository. Other failures are retried with backoff (1 s to 30 s).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cluster, err := clusterName(o)
			if err != nil {
				return err
			}
			ro := o.Receive
			receiveOpts, err := receive.FromConfig(o, cluster)
			if err != nil {
				return err
			}
			if ro.FlushOnly {
				return receive.Flush(ctx, receiveOpts, 10*time.Minute)
			}
			err = receive.Run(ctx, receiveOpts)
			var fe *receive.FatalError
			if errors.As(err, &fe) {
				return &exitError{code: exitReceiveFatal, err: err}
			}
			return err
		},
	}
	return cmd
}
