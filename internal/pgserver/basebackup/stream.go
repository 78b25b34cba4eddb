// Package basebackup speaks the client side of a physical base backup: it sends
// BASE_BACKUP on a replication connection and turns the answer into a sequence of
// tar archives (one per tablespace), the server's backup_manifest, and the stop
// position.
//
// Two wire formats exist and both are handled here, so the caller sees one:
//   - PostgreSQL 15 and later send ONE CopyOutResponse whose CopyData messages
//     carry a tag byte: 'n' starts a new archive (name, tablespace path), 'd' is
//     archive or manifest data, 'p' is progress, 'm' says the manifest follows.
//   - PostgreSQL 13 and 14 send one CopyOutResponse per tablespace, in the order of
//     the tablespace result set, with raw tar bytes and no tags, then one more for
//     the raw manifest.
//
// Invariants:
//   - A CopyData payload is only valid until the next message is received (pgproto3
//     reuses its buffer), so Read copies out of it before asking for more; nothing
//     here keeps a reference across messages.
//   - On a connection of pgserver.ConnectReplication, CopyData messages are read
//     past pgproto3 (pgserver.Frames): their payloads go from the read buffer into
//     the caller's, one copy instead of three. A message is consumed whole by one
//     reader, pgproto3 or the stream, before the other reads (discardDirect).
//   - Page-checksum failures reported by the server (WARNING notices, then an ERROR
//     at the end) become one error naming the files, never a protocol dump.
package basebackup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgward/pgward/internal/pgserver"
)

// Options are the parts of BASE_BACKUP a caller chooses; everything else
// (WAL included, manifest with CRC32C, no waiting for archiving) is fixed because
// the backup engine depends on it.
type Options struct {
	Label string
	// Fast requests an immediate checkpoint instead of a spread one.
	Fast bool
	// MaxRate limits the server's send rate in kB/s (0 = unlimited).
	MaxRate int
	// Incremental asks PostgreSQL 17+ for an incremental backup against the
	// manifest sent before with UploadManifest: relation files whose blocks the
	// WAL summaries say changed arrive as INCREMENTAL.<name> (incremental.go).
	Incremental bool
	// Progress asks the server for the size of each tablespace first (PROGRESS):
	// one pass over the file sizes before the data, for a total and an ETA.
	Progress bool
}

// Tablespace is one row of the server's tablespace list. OID 0 is the main data
// directory.
type Tablespace struct {
	OID      uint32
	Location string
	// Size is the server's estimate of its bytes (with Options.Progress), else 0.
	Size int64
}

// Archive is one tar stream: the main data directory (OID 0) or one tablespace.
type Archive struct {
	Tablespace Tablespace
	// R yields the archive's tar bytes and io.EOF at its end. It is valid until the
	// next call to Next.
	R io.Reader
}

// Stream is a running base backup.
type Stream struct {
	conn  *pgconn.PgConn
	major int

	StartLSN    pglogrepl.LSN
	Timeline    int32
	Tablespaces []Tablespace

	// state of the CopyData reader
	inCopy  bool   // a CopyOutResponse is open
	pending []byte // unread part of the current data message
	// frames reads the connection under pgproto3 (nil: a connection not opened
	// by pgserver.ConnectReplication); direct is what remains of the CopyData
	// payload being read straight from it.
	frames   *pgserver.Frames
	direct   int
	cur      int // index of the current archive (13/14), -1 before the first
	next     *Tablespace
	manifest bool // the data now flowing is the manifest
	done     bool // CopyDone of the last CopyOutResponse seen
	ended    bool // the current archive (or the manifest) has ended

	warnings []string
	notices  []string

	// watched is the context whose cancellation interrupts the stream's reads,
	// and unwatch stops that (watch).
	watched context.Context
	unwatch func() bool
}

// Start sends BASE_BACKUP to a server of the given major version
// (pgserver.VersionOf) and reads the result sets that precede the data.
func Start(ctx context.Context, conn *pgconn.PgConn, major int, opts Options) (*Stream, error) {
	if major < 13 {
		return nil, fmt.Errorf("base backup: PostgreSQL %d is not supported (13 or later is required)", major)
	}
	if opts.Incremental && major < 17 {
		return nil, fmt.Errorf("base backup: INCREMENTAL needs PostgreSQL 17 or later, the server runs %d", major)
	}
	s := &Stream{conn: conn, major: major, cur: -1, frames: pgserver.FramesOf(conn)}
	conn.Frontend().SendQuery(&pgproto3.Query{String: command(major, opts)})
	if err := conn.Frontend().Flush(); err != nil {
		return nil, fmt.Errorf("base backup: sending BASE_BACKUP: %w", err)
	}
	rows, err := s.resultSet(ctx)
	if err != nil {
		// Refused before any data (e.g. an INCREMENTAL the server cannot
		// serve): leave the connection ready for another command.
		s.stopWatching()
		drainToReady(ctx, conn)
		return nil, err
	}
	if len(rows) != 1 || len(rows[0]) != 2 {
		return nil, fmt.Errorf("base backup: unexpected start position result %q", rows)
	}
	if s.StartLSN, err = pglogrepl.ParseLSN(string(rows[0][0])); err != nil {
		return nil, fmt.Errorf("base backup: start position: %w", err)
	}
	tli, err := strconv.ParseInt(string(rows[0][1]), 10, 32)
	if err != nil {
		return nil, fmt.Errorf("base backup: start timeline: %w", err)
	}
	s.Timeline = int32(tli)
	if rows, err = s.resultSet(ctx); err != nil {
		return nil, err
	}
	for _, r := range rows {
		var ts Tablespace
		if len(r) < 2 {
			return nil, fmt.Errorf("base backup: unexpected tablespace row %q", r)
		}
		if r[0] != nil {
			oid, err := strconv.ParseUint(string(r[0]), 10, 32)
			if err != nil {
				return nil, fmt.Errorf("base backup: tablespace oid %q: %w", r[0], err)
			}
			ts.OID = uint32(oid)
			ts.Location = string(r[1])
		}
		if len(r) >= 3 && r[2] != nil {
			if kb, err := strconv.ParseInt(string(r[2]), 10, 64); err == nil {
				ts.Size = kb * 1024
			}
		}
		s.Tablespaces = append(s.Tablespaces, ts)
	}
	return s, nil
}

func command(major int, o Options) string {
	label := "'" + strings.ReplaceAll(o.Label, "'", "''") + "'"
	if major >= 15 {
		parts := []string{"LABEL " + label, "WAL", "WAIT false", "MANIFEST 'yes'", "MANIFEST_CHECKSUMS 'CRC32C'"}
		if o.Fast {
			parts = append(parts, "CHECKPOINT 'fast'")
		}
		if o.MaxRate > 0 {
			parts = append(parts, fmt.Sprintf("MAX_RATE %d", max(o.MaxRate, 32)))
		}
		if o.Incremental {
			parts = append(parts, "INCREMENTAL")
		}
		if o.Progress {
			parts = append(parts, "PROGRESS")
		}
		return "BASE_BACKUP (" + strings.Join(parts, ", ") + ")"
	}
	parts := []string{"LABEL " + label, "WAL", "NOWAIT", "MANIFEST 'yes'", "MANIFEST_CHECKSUMS 'CRC32C'"}
	if o.Fast {
		parts = append(parts, "FAST")
	}
	if o.MaxRate > 0 {
		parts = append(parts, fmt.Sprintf("MAX_RATE %d", max(o.MaxRate, 32)))
	}
	if o.Progress {
		parts = append(parts, "PROGRESS")
	}
	return "BASE_BACKUP " + strings.Join(parts, " ")
}

// EstimatedSize is the server's estimate of the backup's bytes (0 without Options.Progress).
func (s *Stream) EstimatedSize() int64 {
	var n int64
	for _, ts := range s.Tablespaces {
		n += ts.Size
	}
	return n
}

// resultSet reads one result set (up to its CommandComplete) and returns its rows.
func (s *Stream) resultSet(ctx context.Context) ([][][]byte, error) {
	var rows [][][]byte
	for {
		msg, err := s.receive(ctx)
		if err != nil {
			return nil, err
		}
		switch m := msg.(type) {
		case *pgproto3.RowDescription:
		case *pgproto3.DataRow:
			row := make([][]byte, len(m.Values))
			for i, v := range m.Values {
				if v != nil {
					row[i] = append([]byte{}, v...)
				}
			}
			rows = append(rows, row)
		case *pgproto3.CommandComplete:
			return rows, nil
		default:
			return nil, fmt.Errorf("base backup: unexpected %T while reading a result set", msg)
		}
	}
}

// receive returns the next message that is not a notice, turning an
// ErrorResponse into an error.
func (s *Stream) receive(ctx context.Context) (pgproto3.BackendMessage, error) {
	s.watch(ctx)
	for {
		msg, err := s.conn.ReceiveMessage(context.Background())
		if err != nil {
			return nil, s.readError(ctx, err)
		}
		switch m := msg.(type) {
		case *pgproto3.NoticeResponse:
			s.notice(m)
			continue
		case *pgproto3.ErrorResponse:
			return nil, s.serverError(pgconn.ErrorResponseToPgError(m))
		}
		return msg, nil
	}
}

// watch makes ctx's cancellation interrupt the stream's reads, by putting the
// connection's read deadline in the past. pgconn would do it per message
// (ReceiveMessage with a context registers a context.AfterFunc and a channel and
// removes them again), ~30 ms of CPU for the 24,000 messages of a 180 MB backup; a
// stream reads under one context for its whole life, so it watches once.
func (s *Stream) watch(ctx context.Context) {
	if ctx == s.watched {
		return
	}
	s.stopWatching()
	s.watched = ctx
	if ctx.Done() == nil {
		return
	}
	conn := s.conn.Conn()
	s.unwatch = context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Unix(1, 0)) })
}

// stopWatching ends watch's hold on the connection: it goes on serving other
// commands (a refused INCREMENTAL falls back to a full backup on it).
func (s *Stream) stopWatching() {
	if s.unwatch != nil {
		s.unwatch()
	}
	s.watched, s.unwatch = nil, nil
}

// codeDataCorrupted is ERRCODE_DATA_CORRUPTED, the SQLSTATE of the ERROR that
// ends a base backup which met pages with a wrong checksum. The WARNINGs naming
// each page carry no code of their own, so they are kept by severity (the
// unlocalized one) and shown with that ERROR, in whatever language they are.
const codeDataCorrupted = "XX001"

func (s *Stream) notice(m *pgproto3.NoticeResponse) {
	if m.SeverityUnlocalized == "WARNING" || m.SeverityUnlocalized == "" && m.Severity == "WARNING" {
		if len(s.warnings) < 100 {
			s.warnings = append(s.warnings, m.Message)
		}
		return
	}
	if len(s.notices) < 100 {
		s.notices = append(s.notices, m.Severity+": "+m.Message)
	}
}

// Notices returns the server's notices seen so far (other than warnings).
func (s *Stream) Notices() []string { return s.notices }

// ErrChecksum is wrapped by the error returned when the server found pages whose
// checksum does not match.
var ErrChecksum = errors.New("data page checksum verification failed")

func (s *Stream) serverError(pe *pgconn.PgError) error {
	if pe.Code == codeDataCorrupted {
		files := s.warnings
		const show = 5
		more := ""
		if len(files) > show {
			more = fmt.Sprintf(" (and %d more)", len(files)-show)
			files = files[:show]
		}
		return fmt.Errorf("base backup: %w: %s%s; the cluster has corrupted pages: restore the damaged relations or check the storage before backing up again", ErrChecksum, strings.Join(files, "; "), more)
	}
	return fmt.Errorf("base backup: server error: %w", pe)
}

// Next returns the next tar archive, or io.EOF when all archives have been read
// (the manifest is next).
func (s *Stream) Next(ctx context.Context) (Archive, error) {
	// Drain whatever the caller left unread of the previous archive.
	if s.cur >= 0 {
		if _, err := io.Copy(io.Discard, s.reader(ctx)); err != nil {
			return Archive{}, err
		}
	}
	if s.manifest || s.done {
		return Archive{}, io.EOF
	}
	if s.major >= 15 {
		if !s.inCopy {
			if err := s.openCopy(ctx); err != nil {
				return Archive{}, err
			}
		}
		if s.next == nil {
			// Advance to the first 'n' message.
			if err := s.fill(ctx); err != nil && err != io.EOF {
				return Archive{}, err
			}
			if s.next == nil {
				return Archive{}, io.EOF
			}
		}
		ts := *s.next
		s.next = nil
		s.ended = false
		s.cur++
		return Archive{Tablespace: ts, R: s.reader(ctx)}, nil
	}
	if s.cur+1 >= len(s.Tablespaces) {
		return Archive{}, io.EOF
	}
	if err := s.openCopy(ctx); err != nil {
		return Archive{}, err
	}
	s.cur++
	s.ended = false
	return Archive{Tablespace: s.Tablespaces[s.cur], R: s.reader(ctx)}, nil
}

func (s *Stream) openCopy(ctx context.Context) error {
	msg, err := s.receive(ctx)
	if err != nil {
		return err
	}
	if _, ok := msg.(*pgproto3.CopyOutResponse); !ok {
		return fmt.Errorf("base backup: expected CopyOutResponse, got %T", msg)
	}
	s.inCopy = true
	return nil
}

type ctxReader struct {
	s   *Stream
	ctx context.Context
}

func (r ctxReader) Read(p []byte) (int, error) { return r.s.read(r.ctx, p) }

func (s *Stream) reader(ctx context.Context) io.Reader { return ctxReader{s, ctx} }

func (s *Stream) read(ctx context.Context, p []byte) (int, error) {
	for len(s.pending) == 0 && s.direct == 0 {
		if s.ended {
			return 0, io.EOF
		}
		if err := s.fill(ctx); err != nil {
			if err == io.EOF {
				s.ended = true
			}
			return 0, err
		}
	}
	if s.direct > 0 {
		n, err := s.frames.Read(p[:min(len(p), s.direct)])
		s.direct -= n
		if err != nil {
			return n, s.readError(ctx, err)
		}
		return n, nil
	}
	n := copy(p, s.pending)
	s.pending = s.pending[n:]
	return n, nil
}

// readError is what a failed read of the connection means: the caller's
// cancellation (watch) or the connection's end.
func (s *Stream) readError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		err = ctx.Err()
	} else if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("base backup: receiving from server: %w", err)
}

// fill receives the next data message: into s.pending, or, when the connection
// has Frames (pgserver.ConnectReplication), as s.direct bytes that read takes
// straight from the connection. It returns io.EOF at the end of the current
// archive (or manifest).
func (s *Stream) fill(ctx context.Context) error {
	if !s.inCopy || s.next != nil {
		return io.EOF
	}
	// 13/14: the manifest's CopyOutResponse is opened by Manifest, never by an
	// archive reader.
	for {
		if s.frames != nil {
			got, err := s.fillDirect(ctx)
			if err != nil || got {
				return err
			}
		}
		msg, err := s.receive(ctx)
		if err != nil {
			return err
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			if s.major < 15 {
				s.pending = m.Data
				if len(s.pending) > 0 {
					return nil
				}
				continue
			}
			if len(m.Data) == 0 {
				return fmt.Errorf("base backup: empty CopyData message")
			}
			if m.Data[0] == 'd' {
				s.pending = m.Data[1:]
				if len(s.pending) > 0 {
					return nil
				}
				continue
			}
			if err := s.control(m.Data[0], m.Data[1:]); err != nil {
				return err
			}
		case *pgproto3.CopyDone:
			s.inCopy = false
			if s.major >= 15 {
				s.done = true
			}
			return io.EOF
		default:
			return fmt.Errorf("base backup: unexpected %T in the data stream", msg)
		}
	}
}

// fillDirect takes the next message when it is CopyData: archive data becomes
// s.direct (got: there is data to read); another message of the copy is
// handled as fill would (an io.EOF from control ends the archive). A message
// that is not CopyData is left to pgproto3 (got false, nil).
func (s *Stream) fillDirect(ctx context.Context) (got bool, err error) {
	s.watch(ctx)
	for {
		n, ok, err := s.frames.NextCopyData()
		if err != nil {
			return false, s.readError(ctx, err)
		}
		if !ok {
			return false, nil
		}
		if s.major < 15 {
			if s.direct = n; n > 0 {
				return true, nil
			}
			continue
		}
		if n == 0 {
			return false, fmt.Errorf("base backup: empty CopyData message")
		}
		var tag [1]byte
		if _, err := io.ReadFull(s.frames, tag[:]); err != nil {
			return false, s.readError(ctx, err)
		}
		if tag[0] == 'd' {
			if s.direct = n - 1; s.direct > 0 {
				return true, nil
			}
			continue
		}
		body := make([]byte, n-1) // a control message: small
		if _, err := io.ReadFull(s.frames, body); err != nil {
			return false, s.readError(ctx, err)
		}
		if err := s.control(tag[0], body); err != nil {
			return false, err
		}
	}
}

// control handles a CopyData message of a 15+ stream that is not archive data:
// progress ('p'), a new archive ('n', which ends the current one: io.EOF) or the
// manifest following ('m', io.EOF).
func (s *Stream) control(tag byte, body []byte) error {
	switch tag {
	case 'p':
		return nil
	case 'n':
		name, rest, ok := cstring(body)
		path, _, ok2 := cstring(rest)
		if !ok || !ok2 {
			return fmt.Errorf("base backup: malformed new-archive message")
		}
		ts, err := s.tablespaceFor(name, path)
		if err != nil {
			return err
		}
		s.next = &ts
		return io.EOF
	case 'm':
		s.manifest = true
		return io.EOF
	}
	return fmt.Errorf("base backup: unknown CopyData tag %q", tag)
}

func (s *Stream) tablespaceFor(name, path string) (Tablespace, error) {
	if path == "" {
		return Tablespace{}, nil
	}
	for _, ts := range s.Tablespaces {
		if ts.OID != 0 && ts.Location == path {
			return ts, nil
		}
	}
	return Tablespace{}, fmt.Errorf("base backup: archive %q for unknown tablespace path %q", name, path)
}

func cstring(b []byte) (string, []byte, bool) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), b[i+1:], true
		}
	}
	return "", nil, false
}

// Manifest reads the server's backup_manifest, of at most limit bytes, into a
// buffer of sizeHint bytes (grown if that is too small: a manifest of thousands of
// files is megabytes, which growing from nothing would allocate twice over). It
// must be called after Next has returned io.EOF.
func (s *Stream) Manifest(ctx context.Context, limit int64, sizeHint int) ([]byte, error) {
	if s.major < 15 {
		if err := s.openCopy(ctx); err != nil {
			return nil, err
		}
		s.manifest = true
	}
	if !s.manifest {
		return nil, fmt.Errorf("base backup: the server sent no backup_manifest")
	}
	s.ended = false
	buf := bytes.NewBuffer(make([]byte, 0, min(int64(sizeHint), limit)+bytes.MinRead))
	if _, err := buf.ReadFrom(io.LimitReader(s.reader(ctx), limit+1)); err != nil {
		return nil, fmt.Errorf("base backup: reading backup_manifest: %w", err)
	}
	b := buf.Bytes()
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("base backup: backup_manifest larger than %d bytes", limit)
	}
	return b, nil
}

// discardDirect skips the unread rest of a message read directly.
func (s *Stream) discardDirect(ctx context.Context) error {
	if s.direct == 0 {
		return nil
	}
	s.direct = 0
	if err := s.frames.Discard(); err != nil {
		return s.readError(ctx, err)
	}
	return nil
}

// Finish reads the end of the command: the stop position and the command
// completion. It reports page checksum failures collected during the stream.
func (s *Stream) Finish(ctx context.Context) (pglogrepl.LSN, int32, error) {
	defer s.stopWatching()
	// Drain the rest of the copy (a 15+ stream ends with CopyDone after the manifest).
	for s.inCopy {
		s.next = nil
		if err := s.discardDirect(ctx); err != nil {
			return 0, 0, err
		}
		if err := s.fill(ctx); err != nil && err != io.EOF {
			return 0, 0, err
		}
		s.pending = nil
	}
	if err := s.discardDirect(ctx); err != nil {
		return 0, 0, err
	}
	rows, err := s.resultSet(ctx)
	if err != nil {
		return 0, 0, err
	}
	if len(rows) != 1 || len(rows[0]) != 2 {
		return 0, 0, fmt.Errorf("base backup: unexpected stop position result %q", rows)
	}
	lsn, err := pglogrepl.ParseLSN(string(rows[0][0]))
	if err != nil {
		return 0, 0, fmt.Errorf("base backup: stop position: %w", err)
	}
	tli, err := strconv.ParseInt(string(rows[0][1]), 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("base backup: stop timeline: %w", err)
	}
	// CommandComplete for BASE_BACKUP, then ReadyForQuery.
	for {
		msg, err := s.receive(ctx)
		if err != nil {
			return 0, 0, err
		}
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	return lsn, int32(tli), nil
}
