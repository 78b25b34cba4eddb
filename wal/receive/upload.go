package receive

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/wal"
	"github.com/pgward/pgward/wal/archive"
)

// shared is what the receive path publishes for the uploader, and the
// repositories the uploader opened for the receive path.
type shared struct {
	mu sync.Mutex
	// current is the segment being received ("" when none) and flushed the
	// end of what is fsynced in it.
	current   string
	flushed   uint64
	connected bool
	// facts are the server's, once a session learned them.
	facts *facts
	repos []*repo.Repo
	// pos is the caller's Position (nil: none), moved with flushed.
	pos *Position

	spoolBytes atomic.Int64
}

// facts identify the server the receiver follows.
type facts struct {
	sysid   uint64
	major   int
	segSize uint64
}

func (s *shared) setCurrent(name string, flushed uint64) {
	s.mu.Lock()
	s.current, s.flushed = name, flushed
	s.mu.Unlock()
	s.pos.setFlushed(flushed)
}

func (s *shared) setConnected(c bool) {
	s.mu.Lock()
	s.connected = c
	s.mu.Unlock()
}

func (s *shared) snapshot() (current string, flushed uint64, connected bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current, s.flushed, s.connected
}

func (s *shared) openRepos() []*repo.Repo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.repos
}

// uploader moves what the spool holds into the repositories, beside the receive
// path: the receiver only writes, fsyncs and confirms, so a slow or unreachable
// repository never delays the server (in synchronous mode, its commits). What
// cannot be uploaded waits in the spool, bounded by Options.MaxSpool.
//
// Order of a pass: history files, completed segments (oldest first), the last
// segments of ended timelines, then partial segments. A completed segment's file
// is removed only once it is durable in every repository. A partial is uploaded
// when it grew: the segment being received every PartialInterval while
// connected, and at once when the connection is lost or on shutdown; a partial
// left by an earlier run up to the end of its last complete record.
type uploader struct {
	o     Options
	sp    *spool
	st    *shared
	wake  chan struct{}
	fatal chan error

	repos    []*repo.Repo
	identity bool              // the repositories' identity was checked against the server
	uploaded map[string]uint64 // segment → end of the newest partial in the repositories
	due      time.Time         // when the segment being received is uploaded next
	retry    *backoff
	lastErr  string
	warned   bool // the spool passed 80% of its limit
}

func newUploader(o Options, sp *spool, st *shared) *uploader {
	return &uploader{o: o, sp: sp, st: st, wake: make(chan struct{}, 1), fatal: make(chan error, 1),
		uploaded: map[string]uint64{}, retry: newBackoff()}
}

// poke wakes the uploader without ever blocking the caller.
func (u *uploader) poke() {
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// run uploads until ctx ends, then makes a last pass within final.
func (u *uploader) run(ctx context.Context, final time.Duration) {
	for {
		wait := u.pass(ctx, false)
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), final)
			u.drain(fctx)
			cancel()
			return
		case <-u.wake:
		case <-time.After(wait):
		}
	}
}

// drain makes passes until the spool holds nothing the repositories lack, or
// ctx ends; it returns what is left undone.
func (u *uploader) drain(ctx context.Context) error {
	for {
		wait := u.pass(ctx, true)
		left, err := u.left()
		if err != nil || left == 0 && u.lastErr == "" {
			return err
		}
		select {
		case <-ctx.Done():
			if u.lastErr != "" {
				return fmt.Errorf("%d file(s) not uploaded: %s", left, u.lastErr)
			}
			return fmt.Errorf("%d file(s) not uploaded in time", left)
		case <-time.After(min(wait, time.Second)):
		}
	}
}

// left counts the spool files the repositories do not have yet.
func (u *uploader) left() (int, error) {
	p, err := u.sp.scan()
	if err != nil {
		return 0, err
	}
	n := len(p.histories) + len(p.segments) + len(p.timelineEnds)
	for _, seg := range p.partials {
		if end, _ := u.partialEnd(seg, true); end > u.uploaded[seg] {
			n++
		}
	}
	return n, nil
}

// pass does one round of uploads and returns when the next one is due.
func (u *uploader) pass(ctx context.Context, final bool) time.Duration {
	if err := u.ready(ctx); err != nil {
		return u.failed("opening the repositories", err)
	}
	p, err := u.sp.scan()
	if err != nil {
		return u.failed("reading the spool", err)
	}
	u.account(p)
	for _, name := range p.histories {
		if err := u.push(ctx, name, name); err != nil {
			return u.failed("archiving "+name, err)
		}
	}
	for _, name := range p.segments {
		if err := u.push(ctx, name, name); err != nil {
			return u.failed("archiving "+name, err)
		}
		for _, r := range u.repos {
			_ = r.DropWALPartials(ctx, u.o.Cluster, name)
		}
		delete(u.uploaded, name)
	}
	for _, seg := range p.timelineEnds {
		if err := u.push(ctx, seg+timelineEndSuffix, seg+partialSuffix); err != nil {
			return u.failed("archiving "+seg+partialSuffix, err)
		}
	}
	wait := time.Minute
	current, _, _ := u.st.snapshot()
	for _, seg := range p.partials {
		w, err := u.partial(ctx, seg, final)
		if err != nil {
			return u.failed("uploading the partial segment "+seg, err)
		}
		wait = min(wait, w)
		// A partial an earlier run left, superseded by a later segment
		// being received, has served its purpose once uploaded.
		if current != "" && seg < current {
			if end, _ := u.partialEnd(seg, true); end <= u.uploaded[seg] {
				os.Remove(u.sp.path(seg + partialSuffix))
			}
		}
	}
	if u.lastErr != "" {
		u.o.Log.Info("uploads resumed", "after", u.lastErr)
	}
	u.lastErr = ""
	u.retry = newBackoff()
	return wait
}

// ready opens the repositories (once) and checks their record of the cluster
// against the server the receiver follows (once both are known).
func (u *uploader) ready(ctx context.Context) error {
	if u.repos == nil {
		repos, err := u.o.OpenRepos(ctx)
		if err != nil {
			return err
		}
		u.repos = repos
		u.st.mu.Lock()
		u.st.repos = repos
		u.st.mu.Unlock()
		for _, r := range repos {
			err := r.ListWALPartials(ctx, u.o.Cluster, func(seg string, end uint64) error {
				u.uploaded[seg] = max(u.uploaded[seg], end)
				return nil
			})
			if err != nil {
				return err
			}
		}
	}
	if u.identity {
		return nil
	}
	u.st.mu.Lock()
	f := u.st.facts
	u.st.mu.Unlock()
	if f == nil {
		return nil
	}
	if err := ensureIdentity(ctx, u.repos, u.o.Cluster, f); err != nil {
		return err
	}
	u.identity = true
	return nil
}

// failed records a failed pass and returns the time to the next attempt; a
// fatal error stops the receiver.
func (u *uploader) failed(what string, err error) time.Duration {
	var fe *FatalError
	if errors.As(err, &fe) {
		select {
		case u.fatal <- err:
		default:
		}
		return time.Hour
	}
	msg := fmt.Sprintf("%s: %v", what, err)
	wait := u.retry.next(0)
	if msg != u.lastErr {
		u.o.Log.Warn("upload failed; the spool keeps the WAL and uploads are retried", "error", msg, "in", wait)
	}
	u.lastErr = msg
	return wait
}

// account publishes the spool's size and warns before it reaches its limit.
func (u *uploader) account(p pending) {
	u.st.spoolBytes.Store(p.bytes)
	if u.o.MaxSpool <= 0 {
		return
	}
	high := p.bytes*5 >= u.o.MaxSpool*4
	if high && !u.warned {
		u.o.Log.Warn("the spool is over 80% of its limit: uploads are not keeping up; receiving pauses when it is full",
			"spool_bytes", p.bytes, "max_spool_bytes", u.o.MaxSpool, "last_upload_error", u.lastErr)
	}
	u.warned = high
}

// push archives a spool file under name in every repository, then removes it.
func (u *uploader) push(ctx context.Context, file, name string) error {
	data, err := os.ReadFile(u.sp.path(file))
	if err != nil {
		return err
	}
	err = archive.PushData(ctx, u.repos, name, data, archive.PushOptions{Cluster: u.o.Cluster, Codec: u.o.Codec, Log: u.o.Log})
	switch {
	case errors.Is(err, repo.ErrWALConflict) && file != name:
		// The last segment of an ended timeline: the promoted server archived
		// its own .partial (the same WAL to the switch, other bytes after).
		u.o.Log.Info("old timeline's partial segment already archived by the server", "file", name)
	case errors.Is(err, repo.ErrWALConflict):
		return &FatalError{fmt.Errorf("wal-receive stopped: %w", err)}
	case errors.Is(err, wal.ErrWrongSystem), errors.Is(err, wal.ErrWrongVersion):
		return &FatalError{fmt.Errorf("wal-receive stopped: %w", err)}
	case err != nil:
		return err
	}
	u.o.Log.Info("archived", "file", name)
	return os.Remove(u.sp.path(file))
}

// partialEnd is how much of a spool partial counts: for the segment being
// received, what is fsynced; for one left by an earlier run, up to the end of its
// last complete record. due is false for the segment being received while
// connected until PartialInterval has passed.
func (u *uploader) partialEnd(seg string, final bool) (end uint64, due bool) {
	current, flushed, connected := u.st.snapshot()
	if seg == current {
		return flushed, final || !connected || !time.Now().Before(u.due)
	}
	data, err := os.ReadFile(u.sp.path(seg + partialSuffix))
	if err != nil {
		return 0, false
	}
	sum, err := wal.ScanSegment(data)
	if err != nil {
		return 0, false
	}
	return sum.End, true
}

// partial uploads a spool partial when it grew and is due; it returns when to
// look again.
func (u *uploader) partial(ctx context.Context, seg string, final bool) (time.Duration, error) {
	end, due := u.partialEnd(seg, final)
	if end <= u.uploaded[seg] {
		return u.o.PartialInterval, nil
	}
	if !due {
		return time.Until(u.due), nil
	}
	data, err := os.ReadFile(u.sp.path(seg + partialSuffix))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil // completed meanwhile: the next pass archives it whole
	}
	if err != nil {
		return 0, err
	}
	n, err := wal.ParseName(seg)
	if err != nil {
		return 0, err
	}
	segSize := uint64(len(data))
	if !wal.ValidSegSize(segSize) || end < n.StartLSN(segSize) || end > n.StartLSN(segSize)+segSize {
		return 0, fmt.Errorf("spool file %s is not a whole zero-padded segment", seg+partialSuffix)
	}
	if end == n.StartLSN(segSize) {
		// Nothing of the segment is durable yet (a session that ended on a segment
		// boundary, as it does after a backup's WAL switch): a partial would hold no
		// WAL, only zeros, which no reader of the archive takes for a segment.
		u.uploaded[seg] = end
		return u.o.PartialInterval, nil
	}
	// Only what counts: later bytes are zeroed, so the object never claims
	// more than was durable (or complete) when it was cut.
	clear(data[end-n.StartLSN(segSize):])
	for _, r := range u.repos {
		if err := r.PutWALPartial(ctx, u.o.Cluster, seg, end, data, u.o.Codec); err != nil {
			return 0, err
		}
	}
	u.uploaded[seg] = end
	u.due = time.Now().Add(u.o.PartialInterval)
	u.o.Log.Debug("partial segment uploaded", "segment", seg, "up_to", wal.FormatLSN(end))
	return u.o.PartialInterval, nil
}

// ensureIdentity records the cluster in each repository, or refuses a server of
// another cluster.
func ensureIdentity(ctx context.Context, repos []*repo.Repo, cluster string, f *facts) error {
	want := repo.Identity{Cluster: cluster, SystemIdentifier: fmt.Sprint(f.sysid), PGMajor: f.major, WALSegSize: f.segSize}
	for _, r := range repos {
		if err := r.EnsureIdentity(ctx, want); err != nil {
			if errors.Is(err, repo.ErrWrongCluster) {
				return &FatalError{fmt.Errorf("wal-receive stopped: %w", err)}
			}
			return err
		}
	}
	return nil
}
