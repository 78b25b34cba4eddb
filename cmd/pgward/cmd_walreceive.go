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

	"github.com/pgward/pgward/internal/config"
	"github.com/pgward/pgward/repo"

	"github.com/pgward/pgward/wal/archive"
	"github.com/pgward/pgward/wal/receive"
	"github.com/spf13/cobra"
)

func newWalReceiveCmd(o *config.Options) *cobra.Command {
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
			cluster, err := clusterName(o)
			if err != nil {
				return err
			}
			ro := o.Receive
			if o.Conn == "" && !ro.FlushOnly {
				return fmt.Errorf("wal-receive needs --conn (a libpq connection string of the server to follow)")
			}
			if ro.CreateSlot && ro.Slot == "" {
				return fmt.Errorf("--create-slot needs --slot NAME")
			}
			specs, err := repoSpecs(o)
			if err != nil {
				return err
			}
			base := spoolBase(o)
			if base == "" {
				return fmt.Errorf("wal-receive needs a spool directory for the WAL it receives; do not use --spool-path off")
			}
			dir, err := receiveSpool(base, cluster, specs)
			if err != nil {
				return err
			}
			receiveOpts := receive.Options{Cluster: cluster, Conn: o.Conn, Codec: o.WALCompress, Dir: dir, MaxSpool: ro.MaxSpool,
				Slot: ro.Slot, CreateSlot: ro.CreateSlot, Synchronous: ro.Synchronous, AppName: ro.ApplicationName,
				PartialInterval: ro.PartialInterval, StatusInterval: ro.StatusInterval, Log: slog.Default()}
			receiveOpts.OpenRepos = func(ctx context.Context) ([]*repo.Repo, error) {
				repos, err := openRepos(ctx, o)
				if err == nil {
					adoptLegacySpool(base, cluster, repos, dir)
				}
				return repos, err
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
