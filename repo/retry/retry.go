// Package retry wraps any repo.Storage so that transient failures (a throttled or failing
// server, a reset or refused connection, a timeout) are retried with exponential backoff and
// full jitter, while permanent ones (a missing object, a taken name, a refused credential,
// a canceled context) fail at once. It is the one retry policy of the repository: backends
// do not retry on their own (the S3 backend turns the AWS SDK's retryer off), so waits do
// not multiply and every backend behaves the same under failure.
//
// What is retried, and how each operation stays correct when repeated:
//   - Stat, Delete and SyncDeferred are idempotent and simply run again.
//   - Get retries opening the object, and also a read that fails mid-stream: the object is
//     opened again and the bytes already delivered are skipped, so the caller sees one
//     uninterrupted stream. Objects are written once, so the bytes are the same; the
//     repository verifies every object it reads anyway.
//   - List reports names in lexical order, so a listing that fails part way is resumed from
//     the start and names up to the last one already reported are skipped: fn still sees
//     every name exactly once.
//   - Put and PutDeferred must send the same bytes again. They are retried only when the
//     reader can be rewound: an io.Seeker is seeked back to where it started; any other reader
//     of at most Policy.BufferLimit bytes is read into memory first. A larger reader that
//     cannot seek gets one attempt. A failure of the caller's reader is never retried. An attempt that
//     failed transiently may still have stored the object (the response was lost), so when
//     a later attempt reports ErrExists the stored object is compared with the data: equal
//     bytes mean the earlier attempt won and Put succeeds; different bytes keep ErrExists.
//
// The wrapper forwards every method of repo.Storage and hides nothing: Unwrap returns the
// wrapped storage, for repo.As.
//
// Time is bounded: no attempt starts later than Policy.MaxElapsed after the first attempt
// of an operation began. An attempt in progress is bounded by the caller's context and the
// backend's own timeouts, not by MaxElapsed, so a long upload is never cut off by it.
package retry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"syscall"
	"time"

	"github.com/pgward/pgward/repo"
)

// Defaults used for zero fields of Policy.
const (
	DefaultMaxElapsed  = 2 * time.Minute
	DefaultInitialWait = 200 * time.Millisecond
	DefaultMaxWait     = 15 * time.Second
	DefaultBufferLimit = 16 << 20
)

// Policy says how long and how often to retry. The zero Policy uses the defaults above.
type Policy struct {
	// MaxElapsed bounds the time from the first attempt of an operation to the start of its
	// last one (default 2 minutes).
	MaxElapsed time.Duration
	// InitialWait and MaxWait shape the backoff: before retry n the wrapper sleeps a uniformly
	// random time in [0, min(MaxWait, InitialWait·2ⁿ⁻¹)) ("full jitter", so that many clients
	// hit by the same outage do not retry in lockstep). Defaults 200 ms and 15 s.
	InitialWait, MaxWait time.Duration
	// BufferLimit is the largest Put of a reader that cannot seek that is read into memory so
	// that it can be retried (default 16 MiB). Negative: never buffer; such Puts get one attempt.
	BufferLimit int64
	// Transient classifies errors; nil means IsTransient.
	Transient func(error) bool
	// OnRetry, if set, is called before each wait, e.g. to log that op ("put", "get", "stat",
	// "list", "delete", "sync") on name failed with err and is retried after wait. PutDeferred
	// is "put", SyncDeferred "sync" with no name.
	OnRetry func(op, name string, attempt int, wait time.Duration, err error)
}

func (p Policy) withDefaults() Policy {
	if p.MaxElapsed <= 0 {
		p.MaxElapsed = DefaultMaxElapsed
	}
	if p.InitialWait <= 0 {
		p.InitialWait = DefaultInitialWait
	}
	if p.MaxWait <= 0 {
		p.MaxWait = DefaultMaxWait
	}
	if p.MaxWait < p.InitialWait {
		p.MaxWait = p.InitialWait
	}
	if p.BufferLimit == 0 {
		p.BufferLimit = DefaultBufferLimit
	}
	if p.Transient == nil {
		p.Transient = IsTransient
	}
	return p
}

// Wrap returns st with retries under policy p.
func Wrap(st repo.Storage, p Policy) repo.Storage {
	return &storage{st: st, p: p.withDefaults()}
}

type storage struct {
	st repo.Storage
	p  Policy
}

// String names the wrapped storage: retrying changes how, not where.
func (s *storage) String() string { return s.st.String() }

// Unwrap returns the wrapped storage.
func (s *storage) Unwrap() repo.Storage { return s.st }

// IsTransient reports whether err may go away if the operation is repeated:
//   - never for the repository's own verdicts (ErrNotFound, ErrExists, ErrInvalidName) or a
//     canceled context;
//   - otherwise as the first error in the chain with a Transient() bool method says (the S3
//     backend classifies server responses this way: 5xx, 429, SlowDown and the like are
//     transient, 403 or NoSuchBucket are not);
//   - otherwise true for failures of the connection: refused, reset, broken, unreachable,
//     timed out, closed early (io.ErrUnexpectedEOF, io.EOF), a failed dial or DNS lookup
//     other than "no such host", and errors with a ConnectionError() bool method that
//     returns true (the AWS SDK's "request could not be sent");
//   - false for anything else, e.g. a full disk: retrying what is not known to be transient
//     only delays the error.
func IsTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) ||
		errors.Is(err, repo.ErrNotFound) || errors.Is(err, repo.ErrExists) || errors.Is(err, repo.ErrInvalidName) {
		return false
	}
	var t interface{ Transient() bool }
	if errors.As(err, &t) {
		return t.Transient()
	}
	var c interface{ ConnectionError() bool }
	if errors.As(err, &c) && c.ConnectionError() {
		return true
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return !dns.IsNotFound
	}
	for _, errno := range []syscall.Errno{
		syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE,
		syscall.ETIMEDOUT, syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.ENETDOWN,
	} {
		if errors.Is(err, errno) {
			return true
		}
	}
	var op *net.OpError
	var timeout interface{ Timeout() bool }
	switch {
	case errors.As(err, &op), errors.Is(err, net.ErrClosed),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		errors.Is(err, context.DeadlineExceeded):
		// DeadlineExceeded here is not the caller's (that is checked before classifying): it
		// is a timeout inside the backend, e.g. of one HTTP request.
		return true
	case errors.As(err, &timeout) && timeout.Timeout():
		return true
	}
	return false
}

// tries drives the attempts of one operation.
type tries struct {
	s        *storage
	ctx      context.Context
	op, name string
	start    time.Time
	n        int // attempts made
}

func (s *storage) begin(ctx context.Context, op, name string) *tries {
	return &tries{s: s, ctx: ctx, op: op, name: name, start: time.Now()}
}

// again is called with the outcome of an attempt. It returns true, after sleeping, when the
// operation should be attempted again; otherwise false and the error to return.
func (t *tries) again(err error) (bool, error) {
	t.n++
	if err == nil {
		return false, nil
	}
	if t.ctx.Err() != nil || !t.s.p.Transient(err) {
		return false, err
	}
	remaining := t.s.p.MaxElapsed - time.Since(t.start)
	if remaining <= 0 {
		return false, fmt.Errorf("%w (gave up after %d attempts in %s)", err, t.n, time.Since(t.start).Round(time.Millisecond))
	}
	ceiling := t.s.p.MaxWait
	if shift := t.n - 1; shift < 30 && t.s.p.InitialWait<<shift < ceiling {
		ceiling = t.s.p.InitialWait << shift
	}
	wait := min(rand.N(ceiling), remaining)
	if t.s.p.OnRetry != nil {
		t.s.p.OnRetry(t.op, t.name, t.n, wait, err)
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true, nil
	case <-t.ctx.Done():
		return false, fmt.Errorf("%s %s: %w while waiting to retry after: %v", t.op, t.name, t.ctx.Err(), err)
	}
}

func (s *storage) Stat(ctx context.Context, name string) (repo.ObjectInfo, error) {
	t := s.begin(ctx, "stat", name)
	for {
		info, err := s.st.Stat(ctx, name)
		if retry, err := t.again(err); !retry {
			return info, err
		}
	}
}

func (s *storage) SyncDeferred(ctx context.Context) error {
	t := s.begin(ctx, "sync", "")
	for {
		err := s.st.SyncDeferred(ctx)
		if retry, err := t.again(err); !retry {
			return err
		}
	}
}

func (s *storage) Delete(ctx context.Context, name string) error {
	t := s.begin(ctx, "delete", name)
	for {
		err := s.st.Delete(ctx, name)
		if retry, err := t.again(err); !retry {
			return err
		}
	}
}

func (s *storage) List(ctx context.Context, prefix string, fn func(repo.ObjectInfo) error) error {
	var (
		last   string
		seen   bool
		fnErr  error
		t      = s.begin(ctx, "list", prefix)
		report = func(o repo.ObjectInfo) error {
			if seen && o.Name <= last {
				return nil // reported by an earlier attempt
			}
			if err := fn(o); err != nil {
				fnErr = err
				return err
			}
			last, seen = o.Name, true
			return nil
		}
	)
	for {
		err := s.st.List(ctx, prefix, report)
		if fnErr != nil {
			return fnErr // the caller's own error, however transient it may look
		}
		if retry, err := t.again(err); !retry {
			return err
		}
	}
}

func (s *storage) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	rc, err := s.open(ctx, name, 0)
	if err != nil {
		return nil, err
	}
	return &resumingReader{s: s, ctx: ctx, name: name, rc: rc}, nil
}

// GetRange reads the whole range under the retry policy (ranges are pack entries,
// at most a chunk): a transient failure while reading reopens it, as for Get.
func (s *storage) GetRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	t := s.begin(ctx, "get", name)
	for {
		var data []byte
		rc, err := s.st.GetRange(ctx, name, offset, length)
		if err == nil {
			data, err = io.ReadAll(rc)
			rc.Close()
			if err == nil && int64(len(data)) != length {
				err = fmt.Errorf("get %s: range %d+%d delivered %d bytes", name, offset, length, len(data))
			}
		}
		if retry, err := t.again(err); !retry {
			if err != nil {
				return nil, err
			}
			return io.NopCloser(bytes.NewReader(data)), nil
		}
	}
}

// open opens name and skips its first off bytes, retrying both.
func (s *storage) open(ctx context.Context, name string, off int64) (io.ReadCloser, error) {
	t := s.begin(ctx, "get", name)
	for {
		rc, err := s.st.Get(ctx, name)
		if err == nil && off > 0 {
			var n int64
			n, err = io.CopyN(io.Discard, rc, off)
			if err == io.EOF {
				rc.Close()
				return nil, fmt.Errorf("get %s: object has %d bytes on reopening, fewer than the %d already read", name, n, off)
			}
			if err != nil {
				rc.Close()
			}
		}
		if retry, err := t.again(err); !retry {
			if err != nil {
				return nil, err
			}
			return rc, nil
		}
	}
}

// resumingReader is Get's reader: a transient read error reopens the object where the
// stream broke.
type resumingReader struct {
	s    *storage
	ctx  context.Context
	name string
	rc   io.ReadCloser
	off  int64 // bytes delivered
	// t drives the retries of one episode of failures. Failing again without having
	// delivered a byte since the last resume continues the episode, so a stream that breaks
	// at once every time still gives up in bounded time; progress starts a new one.
	t       *tries
	stuckAt int64
	err     error
}

func (r *resumingReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.rc.Read(p)
	r.off += int64(n)
	if err == nil || err == io.EOF || r.ctx.Err() != nil || !r.s.p.Transient(err) {
		return n, err
	}
	r.rc.Close()
	if r.t == nil || r.off != r.stuckAt {
		r.t = r.s.begin(r.ctx, "get", r.name)
	}
	r.stuckAt = r.off
	if retry, rerr := r.t.again(fmt.Errorf("get %s: read after %d bytes: %w", r.name, r.off, err)); !retry {
		r.err = rerr
		return n, r.err
	}
	rc, oerr := r.s.open(r.ctx, r.name, r.off)
	if oerr != nil {
		r.err = fmt.Errorf("get %s: resuming after %d bytes (read failed: %v): %w", r.name, r.off, err, oerr)
		return n, r.err
	}
	r.rc = rc
	return n, nil
}

func (r *resumingReader) Close() error {
	if r.rc == nil {
		return nil
	}
	err := r.rc.Close()
	r.rc = nil
	if r.err == nil {
		r.err = errors.New("read after Close")
	}
	return err
}

func (s *storage) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	return s.put(ctx, name, r, size, s.st.Put)
}

func (s *storage) PutDeferred(ctx context.Context, name string, r io.Reader, size int64) error {
	return s.put(ctx, name, r, size, s.st.PutDeferred)
}

// put drives the attempts of Put or PutDeferred, whichever store is.
func (s *storage) put(ctx context.Context, name string, r io.Reader, size int64,
	store func(ctx context.Context, name string, r io.Reader, size int64) error) error {
	src, err := s.source(name, r, size)
	if err != nil {
		return err
	}
	t := s.begin(ctx, "put", name)
	ambiguous := false // an earlier attempt failed in a way that may have stored the object
	for {
		body, err := src.rewind()
		if err == nil {
			err = store(ctx, name, body, size)
		}
		if err != nil && src.failed() != nil {
			return err // the caller's reader failed: repeating cannot help
		}
		if err != nil && ambiguous && errors.Is(err, repo.ErrExists) {
			if same, cerr := s.sameContent(ctx, name, src, size); cerr == nil && same {
				return nil
			}
			return err
		}
		if !src.canRetry() {
			return err
		}
		retry, err := t.again(err)
		if !retry {
			return err
		}
		ambiguous = true
	}
}

// sameContent reports whether the stored object name holds exactly the bytes of src.
func (s *storage) sameContent(ctx context.Context, name string, src *source, size int64) (bool, error) {
	want, err := src.rewind()
	if err != nil {
		return false, err
	}
	got, err := s.Get(ctx, name)
	if err != nil {
		return false, err
	}
	defer got.Close()
	a, b := make([]byte, 64<<10), make([]byte, 64<<10)
	var off int64
	for {
		n, err := io.ReadFull(got, a)
		if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
			return false, err
		}
		if n == 0 {
			return off == size, nil
		}
		if _, err := io.ReadFull(want, b[:n]); err != nil {
			return false, nil // stored object is longer
		}
		if !bytes.Equal(a[:n], b[:n]) {
			return false, nil
		}
		off += int64(n)
	}
}

// source hands Put attempts the caller's data from the start each time.
type source struct {
	seeker io.ReadSeeker // rewound to start for each attempt
	start  int64
	buf    []byte // or a copy in memory
	once   io.Reader
	used   bool
	size   int64
	track  *trackingReader
}

func (s *storage) source(name string, r io.Reader, size int64) (*source, error) {
	if rs, ok := r.(io.ReadSeeker); ok {
		if start, err := rs.Seek(0, io.SeekCurrent); err == nil {
			return &source{seeker: rs, start: start, size: size}, nil
		}
	}
	if size < 0 || size > s.p.BufferLimit {
		return &source{once: r, size: size}, nil
	}
	// Read exactly size bytes, and make sure there are no more, as a backend would: an
	// error here must look like the backend's own, and nothing has been stored.
	buf := make([]byte, size)
	if n, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("put %s: reader ended after %d of %d bytes: %w", name, n, size, io.ErrUnexpectedEOF)
		}
		return nil, fmt.Errorf("put %s: read: %w", name, err)
	}
	var one [1]byte
	switch n, err := io.ReadFull(r, one[:]); {
	case n > 0:
		return nil, fmt.Errorf("put %s: reader has more than the %d bytes announced", name, size)
	case err != io.EOF:
		return nil, fmt.Errorf("put %s: read after the %d bytes announced: %w", name, size, err)
	}
	return &source{buf: buf, size: size}, nil
}

func (s *source) canRetry() bool { return s.once == nil }

// failed returns the error the caller's reader gave during the last attempt, if any.
func (s *source) failed() error {
	if s.track == nil {
		return nil
	}
	return s.track.err
}

func (s *source) rewind() (io.Reader, error) {
	var r io.Reader
	switch {
	case s.seeker != nil:
		if _, err := s.seeker.Seek(s.start, io.SeekStart); err != nil {
			return nil, fmt.Errorf("rewind the data to retry: %w", err)
		}
		r = s.seeker
	case s.once != nil:
		if s.used {
			return nil, errors.New("the data cannot be read twice")
		}
		s.used = true
		r = s.once
	default:
		return bytes.NewReader(s.buf), nil
	}
	s.track = &trackingReader{r: r, left: s.size}
	return s.track, nil
}

// trackingReader remembers a failure of the reader it wraps, an error or an end before the
// announced size, to tell the caller's failures from the backend's.
type trackingReader struct {
	r    io.Reader
	left int64
	err  error
}

func (t *trackingReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.left -= int64(n)
	switch {
	case t.err != nil:
	case err == io.EOF && t.left > 0:
		t.err = io.ErrUnexpectedEOF
	case err != nil && err != io.EOF:
		t.err = err
	}
	return n, err
}

// Leftovers is retried while nothing was reported yet: the order is unspecified, so a
// listing cannot be resumed where it failed.
func (s *storage) Leftovers(ctx context.Context, prefix string, fn func(repo.Leftover) error) error {
	t := s.begin(ctx, "list leftovers", prefix)
	for {
		reported := false
		err := s.st.Leftovers(ctx, prefix, func(l repo.Leftover) error {
			reported = true
			return fn(l)
		})
		if reported {
			return err
		}
		if retry, err := t.again(err); !retry {
			return err
		}
	}
}

func (s *storage) RemoveLeftover(ctx context.Context, l repo.Leftover) error {
	t := s.begin(ctx, "remove leftover", l.Name)
	for {
		err := s.st.RemoveLeftover(ctx, l)
		if retry, err := t.again(err); !retry {
			return err
		}
	}
}
