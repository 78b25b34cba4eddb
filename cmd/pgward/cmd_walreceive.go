package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/pgward/pgward/repo"

	"github.com/pgward/pgward/wal/archive"
	"github.com/pgward/pgward/wal/receive"
	"github.com/spf13/cobra"
)

func newWalReceiveCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "wal-receive",
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

It stops (exit status 3) on errors a restart cannot fix: WAL already removed on
the server, a missing slot, refused credentials, another cluster at the address
or in the repository. Other failures are retried with backoff (1 s to 30 s).`,
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
			flushOnly, _ := f.GetBool("flush-only")
			if conn == "" && !flushOnly {
				return fmt.Errorf("wal-receive needs --conn (a libpq connection string of the server to follow)")
			}
			specs, err := repoSpecs(cmd)
			if err != nil {
				return err
			}
			base := spoolBase(cmd)
			if base == "" {
				return fmt.Errorf("wal-receive needs a spool directory for the WAL it receives; do not use --spool-path off")
			}
			dir, err := receiveSpool(base, cluster, specs)
			if err != nil {
				return err
			}
			maxSpool, err := sizeFlag(cmd, "max-spool")
			if err != nil {
				return err
			}
			o := receive.Options{Cluster: cluster, Conn: conn, Codec: codec, Dir: dir, MaxSpool: maxSpool, Log: slog.Default()}
			o.OpenRepos = func(ctx context.Context) ([]*repo.Repo, error) {
				repos, err := openRepos(ctx, cmd)
				if err == nil {
					adoptLegacySpool(base, cluster, repos, dir)
				}
				return repos, err
			}
			o.Slot, _ = f.GetString("slot")
			o.CreateSlot, _ = f.GetBool("create-slot")
			o.Synchronous, _ = f.GetBool("synchronous")
			o.AppName, _ = f.GetString("application-name")
			o.PartialInterval, _ = f.GetDuration("partial-interval")
			o.StatusInterval, _ = f.GetDuration("status-interval")
			if o.CreateSlot && o.Slot == "" {
				return fmt.Errorf("--create-slot needs --slot NAME")
			}
			if o.PartialInterval <= 0 || o.StatusInterval <= 0 {
				return fmt.Errorf("--partial-interval and --status-interval must be positive durations such as 10s")
			}
			if flushOnly {
				return receive.Flush(ctx, o, 10*time.Minute)
			}
			err = receive.Run(ctx, o)
			var fe *receive.FatalError
			if errors.As(err, &fe) {
				return &exitError{code: exitReceiveFatal, err: err}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.String("conn", "", "libpq connection string or URI of the server to stream from")
	f.String("slot", "", "physical replication slot to use")
	f.Bool("create-slot", false, "create the slot when it does not exist")
	f.Bool("synchronous", false, "confirm every write at once after fsync (for synchronous_standby_names)")
	f.String("application-name", "pgward", "application_name the server sees (the name for synchronous_standby_names)")
	f.String("compress", "zstd:1", "compression for WAL: zstd, zstd:N, lz4 or none")
	f.Duration("partial-interval", 10*time.Second, "how often the segment in progress is uploaded while connected")
	f.Duration("status-interval", 10*time.Second, "how often the receiver reports its position without being asked")
	f.String("max-spool", "8GiB", "most the spool may hold while uploads cannot keep up (e.g. 500MiB, 20GB; 0: no limit); receiving pauses when it is full")
	f.Bool("flush-only", false, "upload what the spool holds and exit, without a server")
	addSpoolFlag(cmd)
	return cmd
}

// receiveSpool is the receiver's own spool directory under base: one per cluster
// and set of repository locations, so that it can be found before any repository
// answers.
func receiveSpool(base, cluster string, specs []string) (string, error) {
	locs := make([]string, len(specs))
	for i, s := range specs {
		if !strings.Contains(s, "://") {
			if abs, err := filepath.Abs(s); err == nil {
				s = abs
			}
		}
		locs[i] = s
	}
	sort.Strings(locs)
	sum := sha256.Sum256([]byte(strings.Join(locs, "\n")))
	dir := filepath.Join(base, "receive-"+cluster+"-"+hex.EncodeToString(sum[:6]))
	for _, d := range []string{base, dir} {
		if err := archive.PrivateDir(d); err != nil {
			return "", fmt.Errorf("the spool directory is not usable: %w", err)
		}
	}
	return dir, nil
}

// adoptLegacySpool moves what an older pgward's receiver left in its spool
// (<base>/<cluster>-<repository ids>/receive) into dir, so that no received WAL is
// forgotten across the upgrade.
func adoptLegacySpool(base, cluster string, repos []*repo.Repo, dir string) {
	sp := archive.OpenSpool(base, cluster, repos)
	if sp == nil {
		return
	}
	old := sp.ReceiveDir()
	entries, err := os.ReadDir(old)
	if err != nil {
		return
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") || !e.Type().IsRegular() {
			continue
		}
		to := filepath.Join(dir, e.Name())
		if _, err := os.Stat(to); err == nil {
			continue
		}
		if err := os.Rename(filepath.Join(old, e.Name()), to); err == nil {
			slog.Info("moved a file of the previous spool layout", "file", e.Name(), "from", old, "to", dir)
		}
	}
}
