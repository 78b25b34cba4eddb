package receive

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

	"github.com/pgward/pgward/internal/config"
	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/location"
	"github.com/pgward/pgward/wal/archive"
)

// FromConfig maps resolved options to a receiver's options for cluster: the one mapping
// the CLI's wal-receive and the daemon's supervised receivers share. It checks what a
// receiver cannot run without and makes its spool directory.
func FromConfig(o *config.Options, cluster string) (Options, error) {
	ro := o.Receive
	if o.Conn == "" && !ro.FlushOnly {
		return Options{}, errors.New("wal-receive needs --conn (a libpq connection string of the server to follow)")
	}
	if ro.CreateSlot && ro.Slot == "" {
		return Options{}, errors.New("--create-slot needs --slot NAME")
	}
	specs, err := location.Specs(o)
	if err != nil {
		return Options{}, err
	}
	base := archive.SpoolBase(o.SpoolPath)
	if base == "" {
		return Options{}, errors.New("wal-receive needs a spool directory for the WAL it receives; do not use --spool-path off")
	}
	dir, err := SpoolFor(base, cluster, specs)
	if err != nil {
		return Options{}, err
	}
	ropts := Options{Cluster: cluster, Conn: o.Conn, Codec: o.WALCompress, Dir: dir, MaxSpool: ro.MaxSpool,
		Slot: ro.Slot, CreateSlot: ro.CreateSlot, Synchronous: ro.Synchronous, AppName: ro.ApplicationName,
		PartialInterval: ro.PartialInterval, StatusInterval: ro.StatusInterval, Log: slog.Default()}
	ropts.OpenRepos = func(ctx context.Context) ([]*repo.Repo, error) {
		repos, err := location.OpenConfigured(ctx, o)
		if err == nil {
			adoptLegacySpool(base, cluster, repos, dir)
		}
		return repos, err
	}
	return ropts, nil
}

// SpoolFor is the receiver's own spool directory under base: one per cluster
// and set of repository locations, so that it can be found before any repository
// answers.
func SpoolFor(base, cluster string, specs []string) (string, error) {
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
