package receive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgward/pgward/compress"
	"github.com/pgward/pgward/internal/pgserver"
	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/wal"
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
	// Dir is the receiver's spool directory; one receiver at a time uses it.
	Dir string
	// PartialInterval is how often the segment in progress is uploaded while
	// connected (at once when the connection is lost).
	PartialInterval time.Duration
	// StatusInterval is how often a status update is sent without being asked.
	StatusInterval time.Duration
	// MaxSpool bounds the bytes the spool may hold (0: no bound); receiving
	// pauses when the next segment would not fit.
	MaxSpool int64
	// OpenRepos opens the repositories; the uploader calls it until it
	// succeeds, so a repository that is down at start delays only uploads.
	OpenRepos func(context.Context) ([]*repo.Repo, error)
	// Position, when set, is kept up to date for monitoring (see Position).
	Position *Position
	Log      *slog.Logger
}

func (o *Options) defaults() {
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
}

// Receiver streams WAL into its spool; its uploader moves it on.
type Receiver struct {
	o  Options
	sp *spool
	st *shared
	up *uploader

	sysid   uint64
	segSize uint64

	// The segment being written.
	tli     uint32
	segNo   uint64
	file    *os.File
	written uint64 // LSN up to which data is written (contiguously)
	flushed uint64 // LSN up to which data is fsynced
	dirty   bool

	// streaming is when the current session started streaming (zero before).
	streaming time.Time
}

// errSpoolFull ends a session when the next segment would not fit in the spool.
var errSpoolFull = errors.New("the spool is full")

// finalUploads bounds the uploads on shutdown; what is left stays in the spool.
const finalUploads = time.Minute

// Run streams until ctx is canceled, then finishes cleanly: the data received is
// fsynced, and the uploader gets finalUploads to archive completed segments and
// upload the partial one (what it cannot stays in the spool for the next run or
// Flush).
func Run(ctx context.Context, o Options) error {
	o.defaults()
	sp, err := lockSpool(o.Dir)
	if err != nil {
		return err
	}
	defer sp.unlock()
	r := &Receiver{o: o, sp: sp, st: &shared{pos: o.Position}}
	r.up = newUploader(o, sp, r.st)
	// Open the repositories now if they answer, so that the start point can
	// come from the archive; if they do not, receive into the spool anyway.
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if err := r.up.ready(octx); err != nil {
		var fe *FatalError
		if errors.As(err, &fe) {
			cancel()
			return err
		}
		o.Log.Warn("the repository cannot be reached now: receiving into the spool, uploads start when it answers", "spool", o.Dir, "error", err)
	}
	cancel()
	uctx, stopUploads := context.WithCancel(context.WithoutCancel(ctx))
	uploaded := make(chan struct{})
	go func() {
		defer close(uploaded)
		r.up.run(uctx, finalUploads)
	}()

	// A fatal upload error (another cluster's bytes under a segment's name)
	// stops receiving too.
	sctx, stopSessions := context.WithCancel(ctx)
	var upErr error
	go func() {
		select {
		case upErr = <-r.up.fatal:
			stopSessions()
		case <-sctx.Done():
		}
	}()
	err = r.receive(sctx)
	stopSessions()
	r.sync()
	stopUploads()
	<-uploaded
	left, lerr := r.up.left()
	switch {
	case lerr != nil:
		o.Log.Warn("reading the spool", "error", lerr)
	case left > 0:
		o.Log.Warn("files are left in the spool for the next run or 'wal-receive --flush-only'", "files", left, "spool", o.Dir, "last_upload_error", r.up.lastErr)
	}
	o.Log.Info("wal-receive stopped", "flushed", wal.FormatLSN(r.flushed))
	if upErr != nil {
		return upErr
	}
	return err
}

// Flush uploads what a spool holds (completed segments, history files, and the
// partial segment up to its last complete record) without any server: for the
// host that outlived its primary. It fails when anything is left after timeout.
func Flush(ctx context.Context, o Options, timeout time.Duration) error {
	o.defaults()
	sp, err := lockSpool(o.Dir)
	if err != nil {
		return err
	}
	defer sp.unlock()
	u := newUploader(o, sp, &shared{})
	fctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := u.drain(fctx); err != nil {
		return fmt.Errorf("wal-receive --flush-only: %w; the spool %s keeps everything", err, o.Dir)
	}
	select {
	case err := <-u.fatal:
		return err
	default:
	}
	return nil
}

// receive runs sessions until ctx ends or one fails fatally, reconnecting with
// backoff, and pausing while the spool is full.
func (r *Receiver) receive(ctx context.Context) error {
	b := newBackoff()
	for {
		if err := r.waitForSpace(ctx); err != nil {
			return nil
		}
		r.streaming = time.Time{}
		err := classify(r.session(ctx))
		r.st.setConnected(false)
		r.up.poke() // the partial segment goes up at once when cut off
		if ctx.Err() != nil {
			return nil
		}
		var fe *FatalError
		if errors.As(err, &fe) {
			r.o.Log.Error(fe.Error())
			return err
		}
		if errors.Is(err, errSpoolFull) {
			continue
		}
		var streamed time.Duration
		if !r.streaming.IsZero() {
			streamed = time.Since(r.streaming)
		}
		wait := b.next(streamed)
		r.o.Log.Warn("replication connection lost; reconnecting", "error", err, "in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// waitForSpace blocks while the next segment would not fit in the spool.
func (r *Receiver) waitForSpace(ctx context.Context) error {
	logged := false
	for !r.spoolFits() {
		if !logged {
			r.o.Log.Error("the spool is full: receiving paused until uploads catch up (with a slot the server keeps the WAL meanwhile; a synchronous primary waits)",
				"spool_bytes", r.st.spoolBytes.Load(), "max_spool_bytes", r.o.MaxSpool, "last_upload_error", r.up.lastErr)
			logged = true
		}
		r.up.poke()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	if logged {
		r.o.Log.Info("spool has room again: receiving resumes")
	}
	return nil
}

// spoolFits reports whether one more segment fits in the spool.
func (r *Receiver) spoolFits() bool {
	seg := int64(r.segSize)
	if seg == 0 {
		seg = wal.DefaultSegSize
	}
	return r.o.MaxSpool <= 0 || r.st.spoolBytes.Load()+seg <= r.o.MaxSpool
}

// sync makes what was written durable (on shutdown) and tells the uploader.
func (r *Receiver) sync() {
	if r.file != nil && r.dirty {
		if err := r.file.Sync(); err != nil {
			r.o.Log.Error("fsync of the spool file failed", "file", r.file.Name(), "error", err)
			return
		}
		r.dirty = false
		r.flushed = r.written
		r.st.setCurrent(r.segmentName(), r.flushed)
	}
}

// session is one replication connection: it returns when it fails or ctx ends.
func (r *Receiver) session(ctx context.Context) error {
	conn, err := pgserver.ConnectReplication(ctx, r.o.Conn, r.o.AppName)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	sf, err := pgserver.Identify(ctx, conn)
	if err != nil {
		return err
	}
	if err := r.identify(ctx, sf); err != nil {
		return err
	}
	if r.o.Slot != "" && r.o.CreateSlot {
		if err := createSlot(ctx, conn, r.o.Slot); err != nil {
			return err
		}
	}
	startTLI, startLSN, err := r.startPoint(ctx, sf.Timeline, sf.XLogPos)
	if err != nil {
		return err
	}
	tli, start, err := r.followHistory(ctx, conn, sf.Timeline, startTLI, startLSN)
	if err != nil {
		return err
	}
	for {
		next, nextStart, err := r.stream(ctx, conn, tli, start)
		if err != nil {
			return err
		}
		// End of timeline tli at nextStart: its last segment goes to the
		// archive as .partial, and streaming moves on.
		if err := r.endTimeline(ctx, conn, next, nextStart); err != nil {
			return err
		}
		tli, start = next, nextStart-nextStart%r.segSize
	}
}

// identify checks the server's facts against the repositories' record of the
// cluster when they can be reached (the uploader checks again once they can:
// receiving does not wait for a repository).
func (r *Receiver) identify(ctx context.Context, sf pgserver.Facts) error {
	if r.sysid != 0 && r.sysid != sf.SystemID {
		return fatal("wal-receive stopped: the server is now system %d, not %d: another cluster answers at this address", sf.SystemID, r.sysid)
	}
	if r.segSize != 0 {
		return nil
	}
	f := &facts{sysid: sf.SystemID, major: sf.Version.Major, segSize: sf.SegSize}
	r.st.mu.Lock()
	r.st.facts = f
	r.st.mu.Unlock()
	if repos := r.st.openRepos(); repos != nil {
		ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := ensureIdentity(ictx, repos, r.o.Cluster, f)
		cancel()
		var fe *FatalError
		if errors.As(err, &fe) {
			return err
		}
	}
	r.sysid, r.segSize = sf.SystemID, sf.SegSize
	r.up.poke()
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

// startPoint decides where streaming starts (see the package doc). The archive
// is consulted only when the repository answers within a few seconds: the spool
// is the receiver's own record and comes first.
func (r *Receiver) startPoint(ctx context.Context, serverTLI uint32, serverPos uint64) (uint32, uint64, error) {
	if r.flushed > 0 {
		// Reconnecting: resume exactly where the durable data ends.
		r.written = r.flushed
		return r.tli, r.flushed, nil
	}
	p, err := r.sp.scan()
	if err != nil {
		return 0, 0, err
	}
	// A partial segment in the spool: receive it again from its start.
	if n := len(p.partials); n > 0 {
		nm, _ := wal.ParseName(p.partials[n-1])
		return nm.Timeline, nm.StartLSN(r.segSize), nil
	}
	// The segment after the newest one received (completed in the spool, not
	// yet archived) or archived.
	last := ""
	for _, l := range [][]string{p.segments, p.timelineEnds} {
		if len(l) > 0 && l[len(l)-1] > last {
			last = l[len(l)-1]
		}
	}
	repos := r.st.openRepos()
	var newest *repo.Manifest
	if repos != nil {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := repos[0].ListWAL(actx, r.o.Cluster, func(name string, _ int64) error {
			if n, err := wal.ParseName(name); err == nil && n.Kind == wal.Segment && name > last {
				last = name
			}
			return nil
		})
		if err == nil && last == "" {
			newest, _ = repos[0].Manifest(actx, r.o.Cluster, "latest")
		}
		cancel()
		if err != nil {
			r.o.Log.Warn("cannot list the archive to find where to start", "error", err)
			repos = nil
		}
	}
	if last != "" {
		n, _ := wal.ParseName(last)
		return n.Timeline, n.StartLSN(r.segSize) + r.segSize, nil
	}
	// No WAL archived yet: from the newest backup's start, so that backup can
	// be rolled forward; with no backup either, from the server's position.
	if newest != nil {
		if lsn, err := wal.ParseLSN(newest.StartLSN); err == nil {
			return newest.Timeline, lsn - lsn%r.segSize, nil
		}
	}
	if repos == nil {
		r.o.Log.Warn("the spool is empty and the archive cannot be read: starting at the server's current position; WAL before it reaches the archive only through archive_command",
			"position", wal.FormatLSN(serverPos))
	}
	return serverTLI, serverPos - serverPos%r.segSize, nil
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

// archiveHistory puts the timeline's history file in the spool for the uploader
// (timeline 1 has none).
func (r *Receiver) archiveHistory(ctx context.Context, conn *pgconn.PgConn, tli uint32) error {
	if tli <= 1 {
		return nil
	}
	h, err := pglogrepl.TimelineHistory(ctx, conn, int32(tli))
	if err != nil {
		return fmt.Errorf("reading the history of timeline %d: %w", tli, err)
	}
	if _, err := wal.ParseHistory(h.Content); err != nil {
		return fatal("wal-receive stopped: the server sent an invalid %s: %w", h.FileName, err)
	}
	if err := r.sp.writeDurable(h.FileName, h.Content); err != nil {
		return &FatalError{fmt.Errorf("wal-receive stopped: writing %s into the spool: %w", h.FileName, err)}
	}
	r.up.poke()
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
			return 0, 0, fmt.Errorf("START_REPLICATION at %s on timeline %d: %w", wal.FormatLSN(start), tli, pgconn.ErrorResponseToPgError(m))
		case *pgproto3.NoticeResponse:
		default:
			return 0, 0, fmt.Errorf("START_REPLICATION: unexpected %T", msg)
		}
	}
streaming:
	r.o.Log.Info("streaming", "timeline", tli, "from", wal.FormatLSN(start), "slot", r.o.Slot, "synchronous", r.o.Synchronous)
	if r.streaming.IsZero() {
		r.streaming = time.Now()
	}
	r.st.setConnected(true)
	nextStatus := time.Now().Add(r.o.StatusInterval)
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
				r.o.Position.setServerEnd(uint64(x.ServerWALEnd))
				if err := r.write(tli, uint64(x.WALStart), x.WALData); err != nil {
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
				r.o.Position.setServerEnd(uint64(k.ServerWALEnd))
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
			return 0, 0, fmt.Errorf("streaming at %s: %w", wal.FormatLSN(r.written), pgconn.ErrorResponseToPgError(m))
		case nil, *pgproto3.NoticeResponse:
		}
		if r.dirty && !now.Before(nextFlush) || !now.Before(nextStatus) {
			if err := r.flushAndReport(ctx, conn); err != nil {
				return 0, 0, err
			}
			nextFlush = now.Add(flushEvery)
			nextStatus = now.Add(r.o.StatusInterval)
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

// endTimeline hands the finished timeline's last segment to the uploader, which
// archives it as .partial, and puts the next timeline's history file in the spool.
func (r *Receiver) endTimeline(ctx context.Context, conn *pgconn.PgConn, next uint32, start uint64) error {
	r.o.Log.Info("timeline ended", "timeline", r.tli, "next_timeline", next, "switch_point", wal.FormatLSN(start))
	if r.file != nil {
		name := r.segmentName()
		r.closeSegment()
		if err := r.sp.renameDurable(name+partialSuffix, name+timelineEndSuffix); err != nil {
			return &FatalError{fmt.Errorf("wal-receive stopped: %w", err)}
		}
		r.st.setCurrent("", 0)
		r.up.poke()
	}
	return r.archiveHistory(ctx, conn, next)
}
