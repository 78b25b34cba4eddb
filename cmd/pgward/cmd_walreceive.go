package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/pgward/pgward/wal/archive"
	"github.com/pgward/pgward/wal/receive"
	"github.com/spf13/cobra"
)

func newWalReceiveCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "wal-receive",
		Short: "Stream WAL from a server into the archive (zero data loss with --synchronous)",
		Long: `Follow the server at --conn over the physical replication protocol and archive
its WAL as it is written. The segment in progress is kept (fsynced) in the spool
and uploaded as a partial segment every --partial-interval and on shutdown;
completed segments are archived exactly like archive-push does. Runs until
SIGTERM or SIGINT, then finishes cleanly.

With --synchronous the receiver confirms each write as soon as it is fsynced:
list it in the primary's synchronous_standby_names (its application_name is
--application-name, default pgward) and a commit acknowledged to a client is
already durable on this host.

Use a replication slot (--slot, created with --create-slot) so the server keeps
WAL the receiver has not received yet. It is safe to run alongside an
archive_command into the same repository.`,
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
			if conn == "" {
				return fmt.Errorf("wal-receive needs --conn (a libpq connection string of the server to follow)")
			}
			repos, err := openRepos(ctx, cmd)
			if err != nil {
				return err
			}
			base := spoolBase(cmd)
			if base == "" {
				return fmt.Errorf("wal-receive needs a spool directory for the segment in progress; do not use --spool-path off")
			}
			sp := archive.OpenSpool(base, cluster, repos)
			if sp == nil {
				return fmt.Errorf("the spool directory %s is not usable: it must be a directory owned by this user and not writable by others", base)
			}
			o := receive.Options{Cluster: cluster, Conn: conn, Codec: codec, Dir: sp.ReceiveDir(), Log: slog.Default()}
			o.Slot, _ = f.GetString("slot")
			o.CreateSlot, _ = f.GetBool("create-slot")
			o.Synchronous, _ = f.GetBool("synchronous")
			o.AppName, _ = f.GetString("application-name")
			o.PartialInterval, _ = f.GetDuration("partial-interval")
			o.StatusInterval, _ = f.GetDuration("status-interval")
			if o.CreateSlot && o.Slot == "" {
				return fmt.Errorf("--create-slot needs --slot NAME")
			}
			return receive.Run(ctx, repos, o)
		},
	}
	f := cmd.Flags()
	f.String("conn", "", "libpq connection string or URI of the server to stream from")
	f.String("slot", "", "physical replication slot to use")
	f.Bool("create-slot", false, "create the slot when it does not exist")
	f.Bool("synchronous", false, "confirm every write at once after fsync (for synchronous_standby_names)")
	f.String("application-name", "pgward", "application_name the server sees (the name for synchronous_standby_names)")
	f.String("compress", "zstd:1", "compression for WAL: zstd, zstd:N, lz4 or none")
	f.Duration("partial-interval", 10*time.Second, "how often the segment in progress is uploaded")
	f.Duration("status-interval", 10*time.Second, "how often the receiver reports its position without being asked")
	addSpoolFlag(cmd)
	return cmd
}
