package receive

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgward/pgward/internal/durable"
	"github.com/pgward/pgward/wal"
	"github.com/pgward/pgward/wal/archive"
)

// openSegment makes the spool file for the segment holding start the current
// one. A file that is already current is kept (a reconnect resumes in it).
func (r *Receiver) openSegment(tli uint32, start uint64) error {
	segNo := start / r.segSize
	if r.file != nil && r.tli == tli && r.segNo == segNo {
		return nil
	}
	r.closeSegment(false)
	name := wal.SegmentName(tli, segNo, r.segSize)
	f, err := os.OpenFile(filepath.Join(r.o.Dir, name+".partial"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("wal-receive: %w", err)
	}
	// Zero-padded to the segment size, as PostgreSQL expects of a segment;
	// zeros after the last record read as the end of WAL.
	if err := f.Truncate(int64(r.segSize)); err != nil {
		f.Close()
		return fmt.Errorf("wal-receive: %w", err)
	}
	r.file, r.tli, r.segNo = f, tli, segNo
	r.written, r.flushed, r.uploaded = start, start, start
	return nil
}

// closeSegment closes the current file; remove deletes it.
func (r *Receiver) closeSegment(remove bool) {
	if r.file == nil {
		return
	}
	r.file.Close()
	if remove {
		os.Remove(r.file.Name())
	}
	r.file = nil
}

// write stores WAL data received at lsn, completing and rotating segments.
func (r *Receiver) write(ctx context.Context, tli uint32, lsn uint64, data []byte) error {
	if lsn != r.written {
		return fmt.Errorf("wal-receive: the server sent WAL at %s, expected %s", wal.FormatLSN(lsn), wal.FormatLSN(r.written))
	}
	for len(data) > 0 {
		if err := r.openSegment(tli, lsn); err != nil {
			return err
		}
		off := lsn % r.segSize
		n := min(uint64(len(data)), r.segSize-off)
		if _, err := r.file.WriteAt(data[:n], int64(off)); err != nil {
			return &fatalError{fmt.Errorf("wal-receive: writing %s: %w", r.file.Name(), err)}
		}
		r.dirty = true
		lsn += n
		r.written = lsn
		data = data[n:]
		if off+n == r.segSize {
			if err := r.completeSegment(); err != nil {
				return err
			}
		}
	}
	return nil
}

// completeSegment makes a full segment durable under its own name and queues it
// for archiving. The flush position moves to its end.
func (r *Receiver) completeSegment() error {
	if err := r.file.Sync(); err != nil {
		return &fatalError{fmt.Errorf("wal-receive: fsync %s: %w", r.file.Name(), err)}
	}
	partial := r.file.Name()
	full := strings.TrimSuffix(partial, ".partial")
	r.file.Close()
	r.file = nil
	if err := os.Rename(partial, full); err != nil {
		return &fatalError{fmt.Errorf("wal-receive: %w", err)}
	}
	if err := durable.SyncDir(r.o.Dir); err != nil {
		return &fatalError{err}
	}
	r.flushed = r.written
	r.dirty = false
	r.pushq <- full
	return nil
}

// flushAndReport fsyncs what was written and tells the server.
func (r *Receiver) flushAndReport(ctx context.Context, conn *pgconn.PgConn) error {
	if r.dirty && r.file != nil {
		if err := r.file.Sync(); err != nil {
			return &fatalError{fmt.Errorf("wal-receive: fsync %s: %w", r.file.Name(), err)}
		}
	}
	r.dirty = false
	r.flushed = r.written
	pos := pglogrepl.LSN(r.flushed)
	return pglogrepl.SendStandbyStatusUpdate(ctx, conn, pglogrepl.StandbyStatusUpdate{WALWritePosition: pos, WALFlushPosition: pos, WALApplyPosition: pos})
}

// uploadPartial stores the segment in progress, up to the flushed position, as
// a streamed partial. Failures are logged: the spool still has the data.
func (r *Receiver) uploadPartial(ctx context.Context) {
	if r.file == nil || r.flushed <= r.uploaded {
		return
	}
	data, err := os.ReadFile(r.file.Name())
	if err != nil {
		r.o.Log.Warn("reading the partial segment", "error", err)
		return
	}
	// Only what is flushed: anything later is zeroed so the object never
	// claims more than was durable when it was cut.
	valid := r.flushed - r.segNo*r.segSize
	clear(data[valid:])
	seg := wal.SegmentName(r.tli, r.segNo, r.segSize)
	for _, rp := range r.repos {
		if err := rp.PutWALPartial(ctx, r.o.Cluster, seg, r.flushed, data, r.o.Codec); err != nil {
			r.o.Log.Warn("uploading the partial segment", "segment", seg, "repo", rp.String(), "error", err)
			return
		}
	}
	r.uploaded = r.flushed
	r.o.Log.Debug("partial segment uploaded", "segment", seg, "up_to", wal.FormatLSN(r.flushed))
}

// pusher archives completed segments in the order they were completed,
// retrying until it succeeds (the spool holds them meanwhile).
func (r *Receiver) pusher(ctx context.Context) {
	defer close(r.pushd)
	for path := range r.pushq {
		name := filepath.Base(path)
		for wait := time.Second; ; wait = min(2*wait, time.Minute) {
			err := r.pushOne(ctx, path)
			if err == nil {
				break
			}
			if errors.Is(err, context.Canceled) {
				return
			}
			r.o.Log.Error("archiving a received segment failed; retrying", "segment", name, "error", err, "in", wait)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}
}

func (r *Receiver) pushOne(ctx context.Context, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	name := filepath.Base(path)
	if err := archive.PushData(ctx, r.repos, name, data, archive.PushOptions{Cluster: r.o.Cluster, Codec: r.o.Codec, Log: r.o.Log}); err != nil {
		return err
	}
	for _, rp := range r.repos {
		_ = rp.DropWALPartials(ctx, r.o.Cluster, name)
	}
	r.o.Log.Info("segment archived", "segment", name)
	return os.Remove(path)
}

// queueCompleted queues segments a previous run completed but did not archive.
func (r *Receiver) queueCompleted() error {
	entries, err := os.ReadDir(r.o.Dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if n, err := wal.ParseName(e.Name()); err == nil && n.Kind == wal.Segment {
			r.pushq <- filepath.Join(r.o.Dir, e.Name())
		}
	}
	return nil
}

// shutdown makes everything received durable and uploads the partial segment.
func (r *Receiver) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if r.file != nil {
		if r.dirty {
			if err := r.file.Sync(); err != nil {
				return err
			}
			r.dirty = false
			r.flushed = r.written
		}
		r.uploadPartial(ctx)
	}
	r.o.Log.Info("wal-receive stopped", "flushed", wal.FormatLSN(r.flushed))
	return nil
}
