package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/pgward/pgward/compress"
	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/wal"
	"github.com/pgward/pgward/wal/inventory"
)

// PushOptions configure archive-push.
type PushOptions struct {
	Cluster string
	Codec   compress.Codec
	// Spool enables push-ahead (nil: push only the file asked for).
	Spool *Spool
	// Ahead is how many further ready segments to push in parallel.
	Ahead int
	Log   *slog.Logger
}

// Push archives the WAL file at path into every repository.
func Push(ctx context.Context, repos []*repo.Repo, path string, o PushOptions) error {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	name := filepath.Base(path)
	n, err := wal.ParseName(name)
	if err != nil {
		return fmt.Errorf("archive-push %s: %w; only WAL segments, .partial segments, timeline history and backup history files are archived", path, err)
	}
	var ahead []string
	if o.Spool != nil && n.Kind == wal.Segment {
		o.Spool.pruneMarkers(name)
		// Already pushed ahead by an earlier call: return at once. The next
		// batch starts only when PostgreSQL asks for a segment nobody pushed
		// yet, so a call either costs one hash or pushes a batch in parallel.
		if o.Spool.hasMarker(name) {
			if _, err := pushFile(ctx, repos, path, o, false); err == nil {
				return nil
			}
		}
		if o.Ahead > 0 {
			ahead = readySegments(filepath.Dir(path), name, o.Ahead)
		}
	}
	// At most two pushes ahead at a time: each holds a segment, its
	// compressed copy and its sealed object in memory.
	sem := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for _, a := range ahead {
		if o.Spool.hasMarker(a) {
			continue // an earlier call pushed it already
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			p := filepath.Join(filepath.Dir(path), a)
			sum, err := pushFile(ctx, repos, p, o, true)
			if err != nil {
				// PostgreSQL will ask for it itself and get the error then.
				o.Log.Debug("push-ahead failed", "file", a, "error", err)
				return
			}
			if err := o.Spool.writeMarker(a, sum); err != nil {
				o.Log.Debug("push-ahead marker", "file", a, "error", err)
			}
		}()
	}
	_, err = pushFile(ctx, repos, path, o, false)
	wg.Wait()
	if err != nil {
		return fmt.Errorf("archive-push %s: %w", name, err)
	}
	return nil
}

// pushFile validates and stores one file, or finds it already pushed ahead.
// ahead says the caller will record a marker, so the SHA-256 is needed.
func pushFile(ctx context.Context, repos []*repo.Repo, path string, o PushOptions, ahead bool) ([32]byte, error) {
	name := filepath.Base(path)
	data, err := readLimited(path, repo.MaxWALObject)
	if err != nil {
		return [32]byte{}, err
	}
	// The SHA-256 is only needed to match or write a push-ahead marker.
	var sum [32]byte
	if o.Spool != nil && (ahead || o.Spool.hasMarker(name)) {
		sum = sha256.Sum256(data)
		if o.Spool.takeMarker(name, sum) {
			o.Log.Debug("already pushed ahead", "file", name)
			return sum, nil
		}
	}
	return sum, PushData(ctx, repos, name, data, o)
}

// PushData validates WAL file content and stores it under name in every
// repository: the one path by which WAL enters a repository, whether it comes
// from archive_command or from the streaming receiver.
func PushData(ctx context.Context, repos []*repo.Repo, name string, data []byte, o PushOptions) error {
	n, err := wal.ParseName(name)
	if err != nil {
		return err
	}
	if err := validate(ctx, repos, o.Cluster, n, data); err != nil {
		return err
	}
	// The summary is computed while the segment is stored (reading its
	// records costs a few ms of one core) and written after it: a summary
	// never describes a segment that is not durable.
	var sum repo.WALSummary
	var sumErr error
	summed := make(chan struct{})
	go func() {
		defer close(summed)
		if n.Kind == wal.Segment {
			sum, sumErr = inventory.Summarize(data)
		}
	}()
	err = repo.Set(repos).All(func(r *repo.Repo) error {
		stored, err := r.PutWAL(ctx, o.Cluster, name, data, o.Codec)
		if err == nil && o.Log != nil {
			o.Log.Debug("archived", "file", name, "repo", r.String(), "new", stored)
		}
		return err
	})
	<-summed
	if err != nil {
		return err
	}
	if n.Kind != wal.Segment || sumErr != nil {
		return nil // validate accepted the header, so ScanSegment does not fail
	}
	for _, r := range repos {
		// Derived data: readers recompute a missing summary from the segment,
		// so failing to store one does not fail the archiving.
		if err := r.PutWALSummary(ctx, o.Cluster, name, sum); err != nil && o.Log != nil {
			o.Log.Warn("WAL summary not stored", "file", name, "error", err)
		}
	}
	return nil
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s is %d bytes, larger than any WAL file can be", path, fi.Size())
	}
	// Exactly the file's size, read once: a growing buffer would copy and
	// clear 16 MiB segments several times over.
	buf := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, buf); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return buf, nil
}

// validate refuses what is not a WAL file of this cluster.
func validate(ctx context.Context, repos []*repo.Repo, cluster string, n wal.Name, data []byte) error {
	switch n.Kind {
	case wal.Segment, wal.Partial:
		hdr, err := wal.ParseSegmentHeader(data)
		if err != nil {
			return err
		}
		id, err := clusterIdentity(ctx, repos, cluster, hdr)
		if err != nil {
			return err
		}
		sysid, err := strconv.ParseUint(id.SystemIdentifier, 10, 64)
		if err != nil {
			return fmt.Errorf("cluster %q has a malformed system identifier %q in the repository", cluster, id.SystemIdentifier)
		}
		_, err = wal.ValidateSegment(n, data, int64(len(data)), sysid, id.PGMajor)
		if errors.Is(err, wal.ErrWrongSystem) || errors.Is(err, wal.ErrWrongVersion) {
			return fmt.Errorf("%w; the repository's cluster %q is system %s (PostgreSQL %d): check --cluster and the archive_command", err, cluster, id.SystemIdentifier, id.PGMajor)
		}
		return err
	case wal.History:
		entries, err := wal.ParseHistory(data)
		if err != nil {
			return err
		}
		return wal.CheckHistoryOwner(n.Timeline, entries)
	case wal.BackupHistory:
		if !bytes.Contains(data, []byte("START WAL LOCATION:")) {
			return fmt.Errorf("%s is not a backup history file (no START WAL LOCATION line)", n.Raw)
		}
		return nil
	}
	return fmt.Errorf("%s: unsupported WAL file kind", n.Raw)
}

// clusterIdentity returns the cluster's recorded identity, recording it from
// the segment header when archiving starts before the first backup.
func clusterIdentity(ctx context.Context, repos []*repo.Repo, cluster string, hdr wal.SegmentHeader) (*repo.Identity, error) {
	id, err := repos[0].Identity(ctx, cluster)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, repo.ErrNotFound) {
		return nil, fmt.Errorf("reading the identity of cluster %q: %w", cluster, err)
	}
	want := repo.Identity{Cluster: cluster, SystemIdentifier: strconv.FormatUint(hdr.SystemID, 10), PGMajor: hdr.Major(), WALSegSize: uint64(hdr.SegSize)}
	if want.PGMajor == 0 {
		return nil, fmt.Errorf("unknown WAL page magic %#x", hdr.Magic)
	}
	for _, r := range repos {
		if err := r.EnsureIdentity(ctx, want); err != nil {
			return nil, err
		}
	}
	return &want, nil
}

// readySegments lists up to max segments after name that PostgreSQL has marked
// ready for archiving.
func readySegments(walDir, name string, max int) []string {
	entries, err := os.ReadDir(filepath.Join(walDir, "archive_status"))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		seg, ok := strings.CutSuffix(e.Name(), ".ready")
		if !ok || seg <= name {
			continue
		}
		if n, err := wal.ParseName(seg); err != nil || n.Kind != wal.Segment {
			continue
		}
		out = append(out, seg)
	}
	sort.Strings(out)
	if len(out) > max {
		out = out[:max]
	}
	return out
}
