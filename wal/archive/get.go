package archive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/wal"
)

// GetOptions configure archive-get.
type GetOptions struct {
	Cluster string
	// Spool enables serving prefetched files (nil: always fetch).
	Spool *Spool
	Log   *slog.Logger
}

// Fetched describes a file archive-get delivered.
type Fetched struct {
	// FromSpool is true when a prefetched copy was used.
	FromSpool bool
	// SegSize is the segment size read from a segment's header (0 otherwise):
	// the prefetcher needs it to name the following segments.
	SegSize uint64
	// Partial is true when a streamed partial copy was served.
	Partial bool
}

// Get writes the archived WAL file name to dest. found is false, with a nil
// error, when no repository has it.
func Get(ctx context.Context, repos []*repo.Repo, name, dest string, o GetOptions) (f Fetched, found bool, err error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	n, err := wal.ParseName(name)
	if err != nil {
		return f, false, fmt.Errorf("archive-get %s: %w", name, err)
	}
	if o.Spool != nil {
		o.Spool.checkBoot()
		if n.Kind == wal.Segment {
			o.Spool.setWant(name)
		}
		o.Spool.pruneGet(name)
		p := filepath.Join(o.Spool.getDir(), name)
		o.Spool.waitInflight(name, 10*time.Second)
		if _, err := os.Stat(p); err == nil {
			if err := moveFile(p, dest); err == nil {
				f.FromSpool = true
				f.SegSize = segSizeOf(dest, n)
				return f, true, nil
			}
		}
	}
	data, found, err := fetch(ctx, repos, o.Cluster, name)
	if err == nil && !found && n.Kind == wal.Segment {
		// Not archived whole: the streaming receiver's newest partial copy, if
		// any, carries the last received commits (zero-padded after them, which
		// PostgreSQL reads as the end of WAL).
		data, found, err = fetchPartial(ctx, repos, o.Cluster, name)
		f.Partial = found
	}
	if err != nil || !found {
		if err != nil {
			err = fmt.Errorf("archive-get %s: %w", name, err)
		}
		return f, found, err
	}
	if err := writeAtomic(dest, data, false); err != nil {
		return f, false, fmt.Errorf("archive-get %s: writing %s: %w", name, dest, err)
	}
	if n.Kind == wal.Segment {
		if h, err := wal.ParseSegmentHeader(data); err == nil {
			f.SegSize = uint64(h.SegSize)
		}
	}
	return f, true, nil
}

// fetch reads a WAL file from the first repository that has a good copy. It
// falls back to the next repository when one is missing the file, unreachable,
// or holds a bad copy; the errors are reported only when no repository had it.
// A segment's header must match its name (position and size): an object that
// verifies but holds another segment would otherwise reach PostgreSQL, which
// reads an unexpected page address as the end of WAL.
func fetch(ctx context.Context, repos []*repo.Repo, cluster, name string) ([]byte, bool, error) {
	n, err := wal.ParseName(name)
	if err != nil {
		return nil, false, err
	}
	var data []byte
	_, err = repo.Set(repos).First(func(r *repo.Repo) error {
		d, err := r.GetWAL(ctx, cluster, name)
		if err == nil && n.Kind == wal.Segment {
			if _, verr := wal.ValidateSegment(n, d, int64(len(d)), 0, 0); verr != nil {
				return fmt.Errorf("WAL file %s in %s: %w: %w", repo.WALObjectName(cluster, name), r, repo.ErrCorrupt, verr)
			}
		}
		data = d
		return err
	})
	return data, data != nil && err == nil, err
}

// fetchPartial reads the newest streamed partial of a segment from any repository.
func fetchPartial(ctx context.Context, repos []*repo.Repo, cluster, name string) ([]byte, bool, error) {
	var best []byte
	var bestEnd uint64
	var errs []error
	for _, r := range repos {
		data, end, err := r.GetWALPartial(ctx, cluster, name)
		if err != nil {
			if !errors.Is(err, repo.ErrNotFound) {
				errs = append(errs, err)
			}
			continue
		}
		if n, err := wal.ParseName(name); err == nil && end <= n.StartLSN(uint64(len(data))) {
			continue // claims no WAL: zeros a receiver uploaded on a segment boundary
		}
		if best == nil || end > bestEnd {
			best, bestEnd = data, end
		}
	}
	if best != nil {
		return best, true, nil
	}
	return nil, false, errors.Join(errs...)
}

func segSizeOf(path string, n wal.Name) uint64 {
	if n.Kind != wal.Segment {
		return 0
	}
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	buf := make([]byte, 64)
	if _, err := f.ReadAt(buf, 0); err != nil {
		return 0
	}
	h, err := wal.ParseSegmentHeader(buf)
	if err != nil {
		return 0
	}
	return uint64(h.SegSize)
}

// moveFile renames, or copies across file systems.
func moveFile(from, to string) error {
	err := os.Rename(from, to)
	if err == nil {
		return nil
	}
	var le *os.LinkError
	if !errors.As(err, &le) || !errors.Is(le.Err, syscall.EXDEV) {
		return err
	}
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if err := writeAtomic(to, data, false); err != nil {
		return err
	}
	return os.Remove(from)
}
