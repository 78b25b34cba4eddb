package receive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgward/pgward/compress"
	"github.com/pgward/pgward/engine"
	"github.com/pgward/pgward/engine/basebackup"
	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/wal"
	"github.com/pgward/pgward/wal/archive"
)

// Options configure the receiver.
type Options struct {
	Cluster string
	Conn    string
	// Slot is the physical replication slot to stream from ("" = none).
	Slot       string
	CreateSlot bool
	// Synchronous replies after every fsync, for synchronous_standby_names.
	Synchronous bool
	AppName     string
	Codec       compress.Codec
	// Dir is the spool directory for the segment in progress.
	Dir string
	// PartialInterval is how often the segment in progress is uploaded.
	PartialInterval time.Duration
	// StatusInterval is how often a status update is sent without being asked.
	StatusInterval time.Duration
	Log            *slog.Logger
}

// Receiver streams WAL into repositories.
type Receiver struct {
	o     Options
	repos []*repo.Repo

	sysid   uint64
	segSize uint64

	// The segment being written.
	tli      uint32
	segNo    uint64
	file     *os.File
	written  uint64 // LSN up to which data is written (contiguously)
	flushed  uint64 // LSN up to which data is fsynced
	uploaded uint64 // LSN of the last partial upload
	dirty    bool

	pushq chan string
	pushd chan struct{}
}

// Run streams until ctx is canceled, then finishes cleanly: the data received is
// fsynced, the partial segment uploaded and completed segments archived.
func Run(ctx context.Context, repos []*repo.Repo, o Options) error {
	if o.PartialInterval == 0 {
		o.PartialInterval = 10 * time.Second
	}
	if o.StatusInterval == 0 {
		o.StatusInterval = 10 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.AppName == "" {
		o.AppName = "pgward"
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return fmt.Errorf("wal-receive: spool: %w", err)
	}
	r := &Receiver{o: o, repos: repos, pushq: make(chan string, 64), pushd: make(chan struct{})}
	pctx, stopPusher := context.WithCancel(context.WithoutCancel(ctx))
	go r.pusher(pctx)
	defer func() {
		// Let the pusher archive what is queued, but not forever: whatever
		// it cannot push now stays in the spool for the next run.
		close(r.pushq)
		select {
		case <-r.pushd:
		case <-time.After(time.Minute):
			stopPusher()
			<-r.pushd
		}
		stopPusher()
	}()
	// Completed segments a previous run received but did not archive.
	if err := r.queueCompleted(); err != nil {
		return err
	}

	backoff := time.Second
	for {
		err := r.session(ctx)
		if ctx.Err() != nil {
			return r.shutdown()
		}
		var fatal *fatalError
		if errors.As(err, &fatal) {
			r.shutdown()
			return fatal.err
		}
		o.Log.Warn("replication connection lost; reconnecting", "error", err, "in", backoff)
		select {
		case <-ctx.Done():
			return r.shutdown()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
		if r.flushed > 0 {
			backoff = time.Second // progress was made: the next failure starts over
		}
	}
}

// fatalError stops the receiver instead of reconnecting.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }

func fatal(format string, args ...any) error {
	return &fatalError{fmt.Errorf(format, args...)}
}

// session is one replication connection: it returns when it fails or ctx ends.
func (r *Receiver) session(ctx context.Context) error {
	conn, err := connect(ctx, r.o)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	sys, err := pglogrepl.IdentifySystem(ctx, conn)
	if err != nil {
		return err
	}
	sysid, err := strconv.ParseUint(sys.SystemID, 10, 64)
	if err != nil {
		return err
	}
	if r.sysid != 0 && r.sysid != sysid {
		return fatal("wal-receive: the server is now system %d, not %d: another cluster answers at this address", sysid, r.sysid)
	}
	if r.segSize == 0 {
		if err := r.identify(ctx, conn, sysid); err != nil {
			return err
		}
	}
	if r.o.Slot != "" && r.o.CreateSlot {
		if err := createSlot(ctx, conn, r.o.Slot); err != nil {
			return err
		}
	}
	startTLI, startLSN, err := r.startPoint(ctx, uint32(sys.Timeline), uint64(sys.XLogPos))
	if err != nil {
		return err
	}
	tli, start, err := r.followHistory(ctx, conn, uint32(sys.Timeline), startTLI, startLSN)
	if err != nil {
		return err
	}
	for {
		next, nextStart, err := r.stream(ctx, conn, tli, start)
		if err != nil {
			return err
		}
		// End of timeline tli at nextStart: archive its last segment as .partial
		// and move on.
		if err := r.endTimeline(ctx, conn, next, nextStart); err != nil {
			return err
		}
		tli, start = next, nextStart-nextStart%r.segSize
	}
}

func connect(ctx context.Context, o Options) (*pgconn.PgConn, error) {
	connStr := o.Conn
	if !strings.Contains(connStr, "application_name") {
		if strings.Contains(connStr, "://") {
			sep := "?"
			if strings.Contains(connStr, "?") {
				sep = "&"
			}
			connStr += sep + "application_name=" + o.AppName
		} else {
			connStr += " application_name=" + o.AppName
		}
	}
	return engine.ConnectReplication(ctx, connStr)
}

// identify checks the server against the repository's cluster identity.
func (r *Receiver) identify(ctx context.Context, conn *pgconn.PgConn, sysid uint64) error {
	segSize, err := engine.WALSegmentSize(ctx, conn)
	if err != nil {
		return err
	}
	major, err := basebackup.ServerMajor(conn)
	if err != nil {
		return err
	}
	want := repo.Identity{Cluster: r.o.Cluster, SystemIdentifier: strconv.FormatUint(sysid, 10), PGMajor: major, WALSegSize: segSize}
	for _, rp := range r.repos {
		if err := rp.EnsureIdentity(ctx, want); err != nil {
			return &fatalError{fmt.Errorf("wal-receive: %w", err)}
		}
	}
	r.sysid, r.segSize = sysid, segSize
	return nil
}

func createSlot(ctx context.Context, conn *pgconn.PgConn, slot string) error {
	_, err := conn.Exec(ctx, "CREATE_REPLICATION_SLOT "+quoteIdent(slot)+" PHYSICAL RESERVE_WAL").ReadAll()
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42710" { // duplicate_object: it exists
		return nil
	}
	if err != nil {
		return fmt.Errorf("creating replication slot %q: %w", slot, err)
	}
	return nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// startPoint decides where streaming starts (see the package doc).
func (r *Receiver) startPoint(ctx context.Context, serverTLI uint32, serverPos uint64) (uint32, uint64, error) {
	if r.flushed > 0 {
		// Reconnecting: resume exactly where the durable data ends.
		r.written = r.flushed
		return r.tli, r.flushed, nil
	}
	// A partial segment in the spool: receive it again from its start.
	if name, ok := r.spoolPartial(); ok {
		n, _ := wal.ParseName(name)
		return n.Timeline, n.StartLSN(r.segSize), nil
	}
	// The segment after the newest one received (completed in the spool, not
	// yet archived) or archived.
	var last string
	if entries, err := os.ReadDir(r.o.Dir); err == nil {
		for _, e := range entries {
			if n, err := wal.ParseName(e.Name()); err == nil && n.Kind == wal.Segment && e.Name() > last {
				last = e.Name()
			}
		}
	}
	err := r.repos[0].ListWAL(ctx, r.o.Cluster, func(name string, _ int64) error {
		if n, err := wal.ParseName(name); err == nil && n.Kind == wal.Segment && name > last {
			last = name
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	if last != "" {
		n, _ := wal.ParseName(last)
		return n.Timeline, n.StartLSN(r.segSize) + r.segSize, nil
	}
	// No WAL archived yet: from the newest backup's start, so that backup can
	// be rolled forward; with no backup either, from the server's position.
	if m, err := r.repos[0].Manifest(ctx, r.o.Cluster, "latest"); err == nil {
		if lsn, err := wal.ParseLSN(m.StartLSN); err == nil {
			return m.Timeline, lsn - lsn%r.segSize, nil
		}
	}
	return serverTLI, serverPos - serverPos%r.segSize, nil
}

// spoolPartial finds the newest .partial segment in the spool, removing older
// ones (they were superseded: their segments were completed or re-received).
func (r *Receiver) spoolPartial() (string, bool) {
	entries, _ := os.ReadDir(r.o.Dir)
	var partials []string
	for _, e := range entries {
		if seg, ok := strings.CutSuffix(e.Name(), ".partial"); ok {
			if _, err := wal.ParseName(seg); err == nil {
				partials = append(partials, seg)
			}
		}
	}
	if len(partials) == 0 {
		return "", false
	}
	sort.Strings(partials)
	for _, p := range partials[:len(partials)-1] {
		os.Remove(filepath.Join(r.o.Dir, p+".partial"))
	}
	return partials[len(partials)-1], true
}

// followHistory moves a start point on an old timeline onto the timeline that
// continues it, when the old one ended before the start point.
func (r *Receiver) followHistory(ctx context.Context, conn *pgconn.PgConn, serverTLI, tli uint32, start uint64) (uint32, uint64, error) {
	if tli == serverTLI || tli == 0 {
		if err := r.archiveHistory(ctx, conn, serverTLI); err != nil {
			return 0, 0, err
		}
		return serverTLI, start, nil
	}
	if tli > serverTLI {
		return 0, 0, fatal("wal-receive: the archive is on timeline %d but the server is on timeline %d; is this the right server?", tli, serverTLI)
	}
	h, err := pglogrepl.TimelineHistory(ctx, conn, int32(serverTLI))
	if err != nil {
		return 0, 0, fmt.Errorf("reading the history of timeline %d: %w", serverTLI, err)
	}
	entries, err := wal.ParseHistory(h.Content)
	if err != nil {
		return 0, 0, err
	}
	for _, e := range entries {
		if e.Timeline < tli {
			continue
		}
		if start < e.SwitchLSN {
			return e.Timeline, start, nil
		}
		tli = e.Timeline + 1
	}
	if err := r.archiveHistory(ctx, conn, serverTLI); err != nil {
		return 0, 0, err
	}
	return serverTLI, start, nil
}

// archiveHistory stores the timeline's history file (timeline 1 has none).
func (r *Receiver) archiveHistory(ctx context.Context, conn *pgconn.PgConn, tli uint32) error {
	if tli <= 1 {
		return nil
	}
	h, err := pglogrepl.TimelineHistory(ctx, conn, int32(tli))
	if err != nil {
		return fmt.Errorf("reading the history of timeline %d: %w", tli, err)
	}
	err = archive.PushData(ctx, r.repos, h.FileName, h.Content, archive.PushOptions{Cluster: r.o.Cluster, Codec: r.o.Codec, Log: r.o.Log})
	if err != nil {
		return fatal("wal-receive: archiving %s: %w", h.FileName, err)
	}
	return nil
}

// stream runs START_REPLICATION on tli from start until the timeline ends
// (returning the next timeline and where it starts) or an error.
func (r *Receiver) stream(ctx context.Context, conn *pgconn.PgConn, tli uint32, start uint64) (uint32, uint64, error) {
	if err := r.openSegment(tli, start); err != nil {
		return 0, 0, err
	}
	cmd := "START_REPLICATION"
	if r.o.Slot != "" {
		cmd += " SLOT " + quoteIdent(r.o.Slot)
	}
	cmd += fmt.Sprintf(" PHYSICAL %s TIMELINE %d", wal.FormatLSN(start), tli)
	conn.Frontend().SendQuery(&pgproto3.Query{String: cmd})
	if err := conn.Frontend().Flush(); err != nil {
		return 0, 0, err
	}
	for {
		msg, err := conn.ReceiveMessage(ctx)
		if err != nil {
			return 0, 0, err
		}
		switch m := msg.(type) {
		case *pgproto3.CopyBothResponse:
			goto streaming
		case *pgproto3.ErrorResponse:
			pe := pgconn.ErrorResponseToPgError(m)
			if strings.Contains(pe.Message, "has already been removed") {
				return 0, 0, fatal("wal-receive: the server no longer has the WAL at %s on timeline %d (%s); the archive would have a gap: take a new backup, and use a replication slot (--slot NAME --create-slot) so the server keeps WAL until it is received", wal.FormatLSN(start), tli, pe.Message)
			}
			return 0, 0, fmt.Errorf("START_REPLICATION: %w", pe)
		case *pgproto3.NoticeResponse:
		default:
			return 0, 0, fmt.Errorf("START_REPLICATION: unexpected %T", msg)
		}
	}
streaming:
	r.o.Log.Info("streaming", "timeline", tli, "from", wal.FormatLSN(start), "slot", r.o.Slot, "synchronous", r.o.Synchronous)
	nextStatus := time.Now().Add(r.o.StatusInterval)
	nextPartial := time.Now().Add(r.o.PartialInterval)
	const flushEvery = time.Second
	nextFlush := time.Now().Add(flushEvery)
	for {
		deadline := nextStatus
		if r.dirty && nextFlush.Before(deadline) {
			deadline = nextFlush
		}
		rctx, cancel := context.WithDeadline(ctx, deadline)
		msg, err := conn.ReceiveMessage(rctx)
		cancel()
		now := time.Now()
		if err != nil {
			if ctx.Err() != nil {
				return 0, 0, ctx.Err()
			}
			if !pgconn.Timeout(err) {
				return 0, 0, err
			}
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			if len(m.Data) == 0 {
				continue
			}
			switch m.Data[0] {
			case pglogrepl.XLogDataByteID:
				x, err := pglogrepl.ParseXLogData(m.Data[1:])
				if err != nil {
					return 0, 0, err
				}
				if err := r.write(ctx, tli, uint64(x.WALStart), x.WALData); err != nil {
					return 0, 0, err
				}
				// Synchronous: confirm as soon as we hold everything the server
				// has written (ServerWALEnd). While more is already on its way,
				// an fsync per message would only slow the stream down; the
				// commit the primary waits for is at or before ServerWALEnd.
				if r.o.Synchronous && r.written >= uint64(x.ServerWALEnd) {
					if err := r.flushAndReport(ctx, conn); err != nil {
						return 0, 0, err
					}
					nextStatus = now.Add(r.o.StatusInterval)
				}
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				k, err := pglogrepl.ParsePrimaryKeepaliveMessage(m.Data[1:])
				if err != nil {
					return 0, 0, err
				}
				if k.ReplyRequested {
					if err := r.flushAndReport(ctx, conn); err != nil {
						return 0, 0, err
					}
					nextStatus = now.Add(r.o.StatusInterval)
				}
			}
		case *pgproto3.CopyDone:
			// The server ended this timeline.
			if err := r.flushAndReport(ctx, conn); err != nil {
				return 0, 0, err
			}
			return r.timelineEnd(ctx, conn)
		case *pgproto3.ErrorResponse:
			return 0, 0, pgconn.ErrorResponseToPgError(m)
		case nil, *pgproto3.NoticeResponse:
		}
		if r.dirty && !now.Before(nextFlush) || !now.Before(nextStatus) {
			if err := r.flushAndReport(ctx, conn); err != nil {
				return 0, 0, err
			}
			nextFlush = now.Add(flushEvery)
			nextStatus = now.Add(r.o.StatusInterval)
		}
		if !now.Before(nextPartial) {
			r.uploadPartial(ctx)
			nextPartial = now.Add(r.o.PartialInterval)
		}
	}
}

// timelineEnd finishes the COPY after the server's CopyDone and reads where the
// next timeline starts.
func (r *Receiver) timelineEnd(ctx context.Context, conn *pgconn.PgConn) (uint32, uint64, error) {
	conn.Frontend().Send(&pgproto3.CopyDone{})
	if err := conn.Frontend().Flush(); err != nil {
		return 0, 0, err
	}
	var next uint32
	var start uint64
	for {
		msg, err := conn.ReceiveMessage(ctx)
		if err != nil {
			return 0, 0, err
		}
		switch m := msg.(type) {
		case *pgproto3.DataRow:
			if len(m.Values) == 2 {
				t, err := strconv.ParseUint(string(m.Values[0]), 10, 32)
				if err != nil {
					return 0, 0, err
				}
				s, err := wal.ParseLSN(string(m.Values[1]))
				if err != nil {
					return 0, 0, err
				}
				next, start = uint32(t), s
			}
		case *pgproto3.ErrorResponse:
			return 0, 0, pgconn.ErrorResponseToPgError(m)
		case *pgproto3.ReadyForQuery:
			if next == 0 {
				return 0, 0, errors.New("the server ended the stream without naming the next timeline")
			}
			return next, start, nil
		}
	}
}

// endTimeline archives the finished timeline's last segment as .partial and the
// next timeline's history file.
func (r *Receiver) endTimeline(ctx context.Context, conn *pgconn.PgConn, next uint32, start uint64) error {
	r.o.Log.Info("timeline ended", "timeline", r.tli, "next_timeline", next, "switch_point", wal.FormatLSN(start))
	if r.file != nil {
		name := wal.SegmentName(r.tli, r.segNo, r.segSize)
		data, err := os.ReadFile(r.file.Name())
		if err != nil {
			return err
		}
		r.closeSegment(true)
		err = archive.PushData(ctx, r.repos, name+".partial", data, archive.PushOptions{Cluster: r.o.Cluster, Codec: r.o.Codec, Log: r.o.Log})
		if errors.Is(err, repo.ErrWALConflict) {
			// The promoted server archived its own copy of this .partial (the
			// same WAL up to the switch, different padding after it): keep it.
			r.o.Log.Info("old timeline's partial segment already archived by the server", "file", name+".partial")
		} else if err != nil {
			return err
		}
	}
	return r.archiveHistory(ctx, conn, next)
}
