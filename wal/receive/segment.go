package receive

import (
	"context"
	"fmt"
	"os"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgward/pgward/internal/durable"
	"github.com/pgward/pgward/wal"
)

// The receive path: write at the received position, fsync, confirm, rotate. It
// touches only the local spool; the uploader does everything remote.

func (r *Receiver) segmentName() string { return wal.SegmentName(r.tli, r.segNo, r.segSize) }

// openSegment makes the spool file for the segment holding start the current
// one. A file that is already current is kept (a reconnect resumes in it). A new
// segment is opened only when it fits in the spool.
func (r *Receiver) openSegment(tli uint32, start uint64) error {
	segNo := start / r.segSize
	if r.file != nil && r.tli == tli && r.segNo == segNo {
		return nil
	}
	r.closeSegment()
	name := wal.SegmentName(tli, segNo, r.segSize)
	if _, err := os.Stat(r.sp.path(name + partialSuffix)); err != nil && !r.spoolFits() {
		return errSpoolFull
	}
	f, err := os.OpenFile(r.sp.path(name+partialSuffix), os.O_RDWR|os.O_CREATE, 0o600)
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
	r.written, r.flushed = start, start
	r.st.setCurrent(name, start)
	return nil
}

// closeSegment closes the current file.
func (r *Receiver) closeSegment() {
	if r.file == nil {
		return
	}
	r.file.Close()
	r.file = nil
}

// write stores WAL data received at lsn, completing and rotating segments.
func (r *Receiver) write(tli uint32, lsn uint64, data []byte) error {
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
			return &FatalError{fmt.Errorf("wal-receive stopped: writing %s: %w", r.file.Name(), err)}
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

// completeSegment makes a full segment durable under its own name, for the
// uploader. The flush position moves to its end.
func (r *Receiver) completeSegment() error {
	if err := r.file.Sync(); err != nil {
		return &FatalError{fmt.Errorf("wal-receive stopped: fsync %s: %w", r.file.Name(), err)}
	}
	name := r.segmentName()
	r.closeSegment()
	if err := os.Rename(r.sp.path(name+partialSuffix), r.sp.path(name)); err != nil {
		return &FatalError{fmt.Errorf("wal-receive stopped: %w", err)}
	}
	if err := durable.SyncDir(r.sp.dir); err != nil {
		return &FatalError{fmt.Errorf("wal-receive stopped: %w", err)}
	}
	r.flushed = r.written
	r.dirty = false
	r.st.setCurrent("", r.flushed)
	r.up.poke()
	return nil
}

// flushAndReport fsyncs what was written and tells the server.
func (r *Receiver) flushAndReport(ctx context.Context, conn *pgconn.PgConn) error {
	if r.dirty && r.file != nil {
		if err := r.file.Sync(); err != nil {
			return &FatalError{fmt.Errorf("wal-receive stopped: fsync %s: %w", r.file.Name(), err)}
		}
	}
	r.dirty = false
	r.flushed = r.written
	if r.file != nil {
		r.st.setCurrent(r.segmentName(), r.flushed)
	}
	pos := pglogrepl.LSN(r.flushed)
	return pglogrepl.SendStandbyStatusUpdate(ctx, conn, pglogrepl.StandbyStatusUpdate{WALWritePosition: pos, WALFlushPosition: pos, WALApplyPosition: pos})
}
