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
	// Hash and compress a segment at once, on two cores: archive-push latency
	// is what a busy primary's archiver waits on.
	var compressed []byte
	var cerr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		if codec != nil && codec.ID() != compress.None {
			compressed, cerr = codec.Compress(make([]byte, 0, len(data)/2), data)
		}
	}()
	h := r.ContentHash(data)
	<-done
	if cerr != nil {
		return false, fmt.Errorf("archiving %s: compress: %w", name, cerr)
	}
	sealed, err := r.sealCompressed(data, compressed, h, codec)
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
	return r.st.List(ctx, prefix, func(o ObjectInfo) error {
		rest := strings.TrimPrefix(o.Name, prefix)
		if i := strings.LastIndexByte(rest, '/'); i >= 0 {
			rest = rest[i+1:]
		}
		return fn(rest, o.Size)
	})
}

// Streamed partial segments (docs/repository-format.md, "WAL archive"): the
// receiver uploads the segment it is still writing, zero-padded, under
//
//	clusters/<cluster>/wal-partial/<segment>/<end LSN, 16 hex digits>
//
// one object per upload (objects are never rewritten); older ones are deleted
// once a newer one is durable. archive-get serves the newest when the segment
// itself is not archived, so recovery replays up to the last streamed commit.

func walPartialPrefix(cluster, segment string) string {
	return "clusters/" + cluster + "/wal-partial/" + segment + "/"
}

// PutWALPartial stores a streamed partial segment valid up to end and removes
// the older partials of the same segment.
func (r *Repo) PutWALPartial(ctx context.Context, cluster, segment string, end uint64, data []byte, codec compress.Codec) error {
	name := fmt.Sprintf("%s%016X", walPartialPrefix(cluster, segment), end)
	sealed, _, err := r.Seal(nil, data, r.ContentHash(data), codec, nil)
	if err != nil {
		return err
	}
	if err := r.st.Put(ctx, name, bytes.NewReader(sealed), int64(len(sealed))); err != nil && !errors.Is(err, ErrExists) {
		return fmt.Errorf("storing partial segment %s in %s: %w", segment, r.st, err)
	}
	return r.pruneWALPartials(ctx, cluster, segment, name)
}

// pruneWALPartials deletes the partials of segment other than keep.
func (r *Repo) pruneWALPartials(ctx context.Context, cluster, segment, keep string) error {
	var old []string
	err := r.st.List(ctx, walPartialPrefix(cluster, segment), func(o ObjectInfo) error {
		if o.Name != keep {
			old = append(old, o.Name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, o := range old {
		if err := r.st.Delete(ctx, o); err != nil {
			return err
		}
	}
	return nil
}

// DropWALPartials removes the streamed partials of a segment that is now
// archived whole.
func (r *Repo) DropWALPartials(ctx context.Context, cluster, segment string) error {
	return r.pruneWALPartials(ctx, cluster, segment, "")
}

// GetWALPartial returns the newest streamed partial of a segment and the LSN
// it is valid up to, or an error wrapping ErrNotFound.
func (r *Repo) GetWALPartial(ctx context.Context, cluster, segment string) ([]byte, uint64, error) {
	var newest string
	err := r.st.List(ctx, walPartialPrefix(cluster, segment), func(o ObjectInfo) error {
		newest = o.Name // lexical order: the fixed-width hex LSN sorts by position
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	if newest == "" {
		return nil, 0, fmt.Errorf("partial of %s: %w", segment, ErrNotFound)
	}
	var end uint64
	if _, err := fmt.Sscanf(newest[strings.LastIndexByte(newest, '/')+1:], "%016X", &end); err != nil {
		return nil, 0, fmt.Errorf("%s: %w: malformed partial name", newest, ErrCorrupt)
	}
	raw, err := r.getRaw(ctx, newest, MaxWALObject+MaxWALObject/64)
	if err != nil {
		return nil, 0, err
	}
	plain, _, _, err := r.Open(nil, raw, MaxWALObject, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("partial segment %s in %s: %w", newest, r.st, err)
	}
	return plain, end, nil
}

// WAL summaries (docs/repository-format.md, "WAL summaries"): what the records of
// one archived segment say about recovery, stored beside it by whoever archived it
//
//	clusters/<cluster>/wal-summary/<TTTTTTTTLLLLLLLL>/<segment>
//
// as a sealed JSON object, so that finding the last commit in the archive costs
// one small read instead of reading and decoding segments. A summary is derived
// data: a missing one (a segment archived by an older pgward, or a crash between
// the two writes) is recomputed from the segment by the reader.

// WALSummary is the content of a summary object.
type WALSummary struct {
	// End is the end LSN of the last complete valid record beginning in the
	// segment (0: none).
	End uint64 `json:"end"`
	// LastRecord is the start LSN of that record.
	LastRecord uint64 `json:"last_record"`
	// Xacts counts commit and abort records beginning in the segment.
	Xacts int `json:"xacts"`
	// LastXactTime is the latest commit or abort time among them, LastXactEnd
	// the end LSN of the last such record.
	LastXactTime time.Time `json:"last_xact_time,omitzero"`
	LastXactEnd  uint64    `json:"last_xact_end,omitempty"`
}

func walSummaryObject(cluster, segment string) string {
	return "clusters/" + cluster + "/wal-summary/" + segment[:16] + "/" + segment
}

// PutWALSummary stores the summary of an archived segment. An existing summary
// is kept: it was computed from the same bytes (the segment is never replaced).
func (r *Repo) PutWALSummary(ctx context.Context, cluster, segment string, s WALSummary) error {
	if _, err := r.putJSON(ctx, walSummaryObject(cluster, segment), s); err != nil && !errors.Is(err, ErrExists) {
		return fmt.Errorf("storing the summary of %s in %s: %w", segment, r.st, err)
	}
	return nil
}

// GetWALSummary reads the summary of an archived segment; a missing one gives an
// error wrapping ErrNotFound.
func (r *Repo) GetWALSummary(ctx context.Context, cluster, segment string) (WALSummary, error) {
	var s WALSummary
	err := r.getJSON(ctx, walSummaryObject(cluster, segment), &s)
	return s, err
}

// ListWALPartials calls fn, in segment order, with every segment that has a
// streamed partial and the end LSN of its newest one.
func (r *Repo) ListWALPartials(ctx context.Context, cluster string, fn func(segment string, end uint64) error) error {
	prefix := "clusters/" + cluster + "/wal-partial/"
	var seg string
	var end uint64
	flush := func() error {
		if seg == "" {
			return nil
		}
		return fn(seg, end)
	}
	err := r.st.List(ctx, prefix, func(o ObjectInfo) error {
		s, e, ok := strings.Cut(strings.TrimPrefix(o.Name, prefix), "/")
		var lsn uint64
		if !ok || len(e) != 16 {
			return nil // not a partial (a stray temp file of a crashed writer)
		}
		if _, err := fmt.Sscanf(e, "%016X", &lsn); err != nil {
			return nil
		}
		if s != seg {
			if err := flush(); err != nil {
				return err
			}
			seg, end = s, 0
		}
		end = max(end, lsn)
		return nil
	})
	if err != nil {
		return fmt.Errorf("listing partial segments of %s in %s: %w", cluster, r.st, err)
	}
	return flush()
}

// WALArea says which part of a cluster's WAL an object belongs to.
type WALArea int

const (
	// WALFile is an archived WAL file: a segment, .partial segment, .backup or .history file.
	WALFile WALArea = iota
	// WALSummaryArea is the summary of an archived segment.
	WALSummaryArea
	// WALStreamed is a streamed partial segment of wal-receive.
	WALStreamed
)

// WALObject is one object of a cluster's WAL, for tools that remove or check them.
type WALObject struct {
	Area WALArea
	// Name is the object's name; File the PostgreSQL file name (for summaries and streamed
	// partials: the segment's).
	Name, File string
	Size       int64
	// End is a streamed partial's end LSN.
	End uint64
}

// ListWALObjects calls fn with every object of the cluster's WAL archive, summaries and
// streamed partials, each area in name order.
func (r *Repo) ListWALObjects(ctx context.Context, cluster string, fn func(WALObject) error) error {
	base := "clusters/" + cluster + "/"
	areas := []struct {
		area   WALArea
		prefix string
	}{{WALFile, base + "wal/"}, {WALSummaryArea, base + "wal-summary/"}, {WALStreamed, base + "wal-partial/"}}
	for _, a := range areas {
		err := r.st.List(ctx, a.prefix, func(o ObjectInfo) error {
			dir, last, ok := strings.Cut(strings.TrimPrefix(o.Name, a.prefix), "/")
			w := WALObject{Area: a.area, Name: o.Name, Size: o.Size}
			switch {
			case a.area == WALFile && !ok:
				w.File = dir // a history file
			case a.area == WALStreamed:
				if !ok || len(last) != 16 {
					return nil
				}
				if _, err := fmt.Sscanf(last, "%016X", &w.End); err != nil {
					return nil
				}
				w.File = dir
			case ok:
				w.File = last
			default:
				return nil
			}
			return fn(w)
		})
		if err != nil {
			return fmt.Errorf("listing the WAL of %s in %s: %w", cluster, r.st, err)
		}
	}
	return nil
}
