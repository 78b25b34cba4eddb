package repo

import (
	"bytes"
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pgward/pgward/compress"
)

// The WAL archive of a cluster (docs/repository-format.md, "WAL archive"):
//
//	clusters/<cluster>/wal/<TTTTTTTT>.history                 timeline history files
//	clusters/<cluster>/wal/<TTTTTTTTLLLLLLLL>/<file name>     segments, .partial segments, .backup files
//
// A file is one object under its own PostgreSQL name, so archive-get finds it
// with one request and create-only Put makes "never overwrite a segment"
// atomic, with no read-then-write race between two pushers.

// MaxWALObject bounds a WAL file held in memory (the largest segment size
// initdb allows).
const MaxWALObject = 1 << 30

// ErrWALConflict is wrapped when different bytes are already archived under a
// WAL file's name.
var ErrWALConflict = errors.New("a different file is already archived under this name")

// WALObjectName returns where a WAL file of the cluster lives. name must have
// been checked by the wal package (ParseName): it is used as is.
func WALObjectName(cluster, name string) string {
	prefix := "clusters/" + cluster + "/wal/"
	if strings.HasSuffix(name, ".history") {
		return prefix + name
	}
	return prefix + name[:16] + "/" + name
}

// WALPrefix is the prefix of all WAL objects of a cluster.
func WALPrefix(cluster string) string { return "clusters/" + cluster + "/wal/" }

// PutWAL archives a WAL file. It returns stored=false when the identical file
// was already archived (a retried archive_command, or the streaming receiver and
// archive_command both delivering it), and an error wrapping ErrWALConflict when
// different bytes hold the name: the stored file is never replaced.
func (r *Repo) PutWAL(ctx context.Context, cluster, name string, data []byte, codec compress.Codec) (stored bool, err error) {
	obj := WALObjectName(cluster, name)
	h := r.ContentHash(data)
	sealed, _, err := r.Seal(nil, data, h, codec, nil)
	if err != nil {
		return false, fmt.Errorf("archiving %s: %w", name, err)
	}
	err = r.st.Put(ctx, obj, bytes.NewReader(sealed), int64(len(sealed)))
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, ErrExists) {
		return false, fmt.Errorf("archiving %s to %s: %w", name, r.st, err)
	}
	// Already there: identical is success, anything else is loud. The stored
	// copy is verified completely before its hash is trusted.
	have, err := r.GetWAL(ctx, cluster, name)
	if err != nil {
		return false, fmt.Errorf("archiving %s to %s: an object exists under this name but cannot be read back: %w", name, r.st, err)
	}
	if hh := r.ContentHash(have); !hmac.Equal(hh[:], h[:]) {
		return false, fmt.Errorf("archiving %s to %s: %w; the archived copy is kept (is another cluster, or a split-brain primary, archiving under cluster name %q?)", name, r.st, ErrWALConflict, cluster)
	}
	return false, nil
}

// GetWAL reads and verifies an archived WAL file. A file that is not archived
// gives an error wrapping ErrNotFound.
func (r *Repo) GetWAL(ctx context.Context, cluster, name string) ([]byte, error) {
	obj := WALObjectName(cluster, name)
	raw, err := r.getRaw(ctx, obj, MaxWALObject+MaxWALObject/64)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, err
		}
		return nil, fmt.Errorf("WAL file %s in %s: %w", obj, r.st, err)
	}
	plain, _, _, err := r.Open(nil, raw, MaxWALObject, nil)
	if err != nil {
		return nil, fmt.Errorf("WAL file %s in %s: %w", obj, r.st, err)
	}
	return plain, nil
}

// HasWAL reports whether a WAL file is archived.
func (r *Repo) HasWAL(ctx context.Context, cluster, name string) (bool, error) {
	_, err := r.st.Stat(ctx, WALObjectName(cluster, name))
	if err == nil {
		return true, nil
	}
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return false, err
}

// ListWAL calls fn with the file name of every archived WAL file of the
// cluster, in name order (timeline, then position).
func (r *Repo) ListWAL(ctx context.Context, cluster string, fn func(name string, size int64) error) error {
	prefix := WALPrefix(cluster)
	return r.st.List(ctx, prefix, func(obj string, size int64) error {
		rest := strings.TrimPrefix(obj, prefix)
		if i := strings.LastIndexByte(rest, '/'); i >= 0 {
			rest = rest[i+1:]
		}
		return fn(rest, size)
	})
}

// modTimer is implemented by storages that know when an object was written.
type modTimer interface {
	ModTime(ctx context.Context, name string) (time.Time, error)
}

// WALTime returns when an archived WAL file was stored, or the zero time when
// the storage cannot tell.
func (r *Repo) WALTime(ctx context.Context, cluster, name string) (time.Time, error) {
	mt, ok := r.st.(modTimer)
	if !ok {
		return time.Time{}, nil
	}
	return mt.ModTime(ctx, WALObjectName(cluster, name))
}
