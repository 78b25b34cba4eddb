package retry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/local"
	"github.com/pgward/pgward/repo/storagetest"
)

// fast retries in milliseconds; tests that need the bound set MaxElapsed themselves.
var fast = Policy{MaxElapsed: 5 * time.Second, InitialWait: time.Millisecond, MaxWait: 5 * time.Millisecond}

// errFlaky is what flaky injects: a reset connection, transient by IsTransient.
var errFlaky = fmt.Errorf("injected: %w", syscall.ECONNRESET)

// flaky is a repo.Storage over a real one that fails on command. Faults are queued per
// operation and consumed one per call; a call without a queued fault goes through.
type flaky struct {
	repo.Storage
	mu     sync.Mutex
	faults map[string][]fault
	calls  map[string]int
	// every, if > 0, fails every every-th call of every operation with errFlaky.
	every int
	n     int
}

type fault struct {
	err error
	// after: the call is made first and err returned after it succeeded (Put: the object
	// is stored but the answer lost; Get: the body fails after afterBytes; List: fails after
	// afterNames names).
	after      bool
	afterBytes int64
	afterNames int
}

func newFlaky(t *testing.T) *flaky {
	st, err := local.Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &flaky{Storage: st, faults: map[string][]fault{}, calls: map[string]int{}}
}

func (f *flaky) add(op string, n int, ft fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		f.faults[op] = append(f.faults[op], ft)
	}
}

func (f *flaky) next(op string) (fault, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	f.n++
	if f.every > 0 && f.n%f.every == 0 {
		return fault{err: errFlaky}, true
	}
	q := f.faults[op]
	if len(q) == 0 {
		return fault{}, false
	}
	f.faults[op] = q[1:]
	return q[0], true
}

func (f *flaky) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

func (f *flaky) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	return f.put(ctx, name, r, size, f.Storage.Put)
}

// PutDeferred takes its faults from the queue of Put.
func (f *flaky) PutDeferred(ctx context.Context, name string, r io.Reader, size int64) error {
	return f.put(ctx, name, r, size, f.Storage.PutDeferred)
}

func (f *flaky) put(ctx context.Context, name string, r io.Reader, size int64,
	store func(ctx context.Context, name string, r io.Reader, size int64) error) error {
	ft, ok := f.next("put")
	if !ok {
		return store(ctx, name, r, size)
	}
	if ft.after {
		if err := store(ctx, name, r, size); err != nil {
			return err
		}
		return ft.err
	}
	// Read a little before failing, as a connection reset mid-upload does.
	_, _ = io.CopyN(io.Discard, r, min(size, 10))
	return ft.err
}

func (f *flaky) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	ft, ok := f.next("get")
	if ok && !ft.after {
		return nil, ft.err
	}
	rc, err := f.Storage.Get(ctx, name)
	if err != nil || !ok {
		return rc, err
	}
	return &breakingReader{rc: rc, left: ft.afterBytes, err: ft.err}, nil
}

type breakingReader struct {
	rc   io.ReadCloser
	left int64
	err  error
}

func (b *breakingReader) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, b.err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *breakingReader) Close() error { return b.rc.Close() }

func (f *flaky) Stat(ctx context.Context, name string) (repo.ObjectInfo, error) {
	if ft, ok := f.next("stat"); ok {
		return repo.ObjectInfo{}, ft.err
	}
	return f.Storage.Stat(ctx, name)
}

func (f *flaky) SyncDeferred(ctx context.Context) error {
	if ft, ok := f.next("sync"); ok {
		return ft.err
	}
	return f.Storage.SyncDeferred(ctx)
}

func (f *flaky) Delete(ctx context.Context, name string) error {
	if ft, ok := f.next("delete"); ok {
		return ft.err
	}
	return f.Storage.Delete(ctx, name)
}

func (f *flaky) List(ctx context.Context, prefix string, fn func(repo.ObjectInfo) error) error {
	ft, ok := f.next("list")
	if ok && !ft.after {
		return ft.err
	}
	n := 0
	return f.Storage.List(ctx, prefix, func(o repo.ObjectInfo) error {
		if ok && n == ft.afterNames {
			return ft.err
		}
		n++
		return fn(o)
	})
}

func put(t *testing.T, st repo.Storage, name string, data []byte) {
	t.Helper()
	if err := st.Put(t.Context(), name, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put(%q): %v", name, err)
	}
}

func get(t *testing.T, st repo.Storage, name string) []byte {
	t.Helper()
	rc, err := st.Get(t.Context(), name)
	if err != nil {
		t.Fatalf("Get(%q): %v", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%q): read: %v", name, err)
	}
	return b
}

func data(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// onlyReader hides every method but Read, so the wrapper cannot seek.
type onlyReader struct{ io.Reader }

// TestConformance: the wrapper keeps every promise of the contract, with and without
// faults injected into every third call.
func TestConformance(t *testing.T) {
	t.Run("Clean", func(t *testing.T) {
		storagetest.Run(t, func(t *testing.T) repo.Storage { return Wrap(newFlaky(t), fast) })
	})
	t.Run("Faulty", func(t *testing.T) {
		storagetest.Run(t, func(t *testing.T) repo.Storage {
			f := newFlaky(t)
			f.every = 3
			return Wrap(f, fast)
		})
	})
}

func TestTransientThenSuccess(t *testing.T) {
	f := newFlaky(t)
	var notes []string
	p := fast
	p.OnRetry = func(op, name string, attempt int, wait time.Duration, err error) {
		notes = append(notes, fmt.Sprintf("%s %s #%d", op, name, attempt))
	}
	st := Wrap(f, p)
	ctx := t.Context()
	want := data(100_000)

	f.add("put", 2, fault{err: errFlaky})
	put(t, st, "seekable", want)
	f.add("put", 2, fault{err: errFlaky})
	if err := st.Put(ctx, "buffered", onlyReader{bytes.NewReader(want)}, int64(len(want))); err != nil {
		t.Fatalf("Put of a non-seekable reader: %v", err)
	}
	if got := f.count("put"); got != 6 {
		t.Fatalf("Put made %d calls, want 6", got)
	}
	for _, name := range []string{"seekable", "buffered"} {
		f.add("get", 2, fault{err: errFlaky})
		if got := get(t, st, name); !bytes.Equal(got, want) {
			t.Fatalf("Get(%s) returned different bytes", name)
		}
	}
	f.add("stat", 3, fault{err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}})
	if info, err := st.Stat(ctx, "seekable"); err != nil || info.Size != int64(len(want)) {
		t.Fatalf("Stat = %+v, %v", info, err)
	}
	f.add("delete", 1, fault{err: transientErr{}})
	if err := st.Delete(ctx, "buffered"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	f.add("list", 2, fault{err: io.ErrUnexpectedEOF})
	var names []string
	if err := st.List(ctx, "", func(o repo.ObjectInfo) error { names = append(names, o.Name); return nil }); err != nil {
		t.Fatalf("List: %v", err)
	}
	if !slices.Equal(names, []string{"seekable"}) {
		t.Fatalf("List = %v", names)
	}
	f.add("put", 2, fault{err: errFlaky})
	if err := st.PutDeferred(ctx, "deferred", bytes.NewReader(want), int64(len(want))); err != nil {
		t.Fatalf("PutDeferred: %v", err)
	}
	f.add("sync", 2, fault{err: errFlaky})
	if err := st.SyncDeferred(ctx); err != nil {
		t.Fatalf("SyncDeferred: %v", err)
	}
	if got := get(t, st, "deferred"); !bytes.Equal(got, want) {
		t.Fatal("Get after a retried PutDeferred returned different bytes")
	}
	if len(notes) != 2+2+2+2+3+1+2+2+2 {
		t.Fatalf("OnRetry calls: %v", notes)
	}
}

// transientErr classifies itself, as the S3 backend's errors do.
type transientErr struct{}

func (transientErr) Error() string   { return "server says: slow down" }
func (transientErr) Transient() bool { return true }

type permanentErr struct{}

func (permanentErr) Error() string   { return "server says: access denied" }
func (permanentErr) Transient() bool { return false }

func TestPermanentFailsAtOnce(t *testing.T) {
	for _, err := range []error{
		fmt.Errorf("x: %w", repo.ErrNotFound),
		fmt.Errorf("x: %w", repo.ErrExists),
		fmt.Errorf("x: %w", repo.ErrInvalidName),
		fmt.Errorf("x: %w", context.Canceled),
		permanentErr{},
		fmt.Errorf("wrapping a network error does not make access denied transient: %w: %w", permanentErr{}, syscall.ECONNRESET),
		fs.ErrPermission,
		syscall.ENOSPC,
		&net.DNSError{Err: "no such host", Name: "nope.invalid", IsNotFound: true},
		errors.New("something else"),
	} {
		f := newFlaky(t)
		st := Wrap(f, fast)
		f.add("stat", 5, fault{err: err})
		if _, got := st.Stat(t.Context(), "x"); got != err {
			t.Errorf("Stat failing with %v returned %v", err, got)
		}
		if n := f.count("stat"); n != 1 {
			t.Errorf("Stat failing with %v was called %d times, want 1", err, n)
		}
	}
}

func TestIsTransient(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{syscall.ECONNRESET, true},
		{syscall.ECONNREFUSED, true},
		{syscall.EPIPE, true},
		{&net.OpError{Op: "read", Net: "tcp", Err: errors.New("x")}, true},
		{fmt.Errorf("x: %w", io.ErrUnexpectedEOF), true},
		{net.ErrClosed, true},
		{&net.DNSError{Err: "timeout", IsTimeout: true}, true},
		{connErr{}, true},
		{transientErr{}, true},
		{fmt.Errorf("put: %w", transientErr{}), true},
		{permanentErr{}, false},
		{fmt.Errorf("%w: %w", repo.ErrNotFound, transientErr{}), false},
		{context.Canceled, false},
		{fs.ErrNotExist, false},
		{syscall.ENOSPC, false},
	} {
		if got := IsTransient(tc.err); got != tc.want {
			t.Errorf("IsTransient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

type connErr struct{}

func (connErr) Error() string         { return "request send failed" }
func (connErr) ConnectionError() bool { return true }

func TestBoundedTime(t *testing.T) {
	f := newFlaky(t)
	p := Policy{MaxElapsed: 300 * time.Millisecond, InitialWait: 20 * time.Millisecond, MaxWait: 100 * time.Millisecond}
	st := Wrap(f, p)
	f.add("put", 1000, fault{err: errFlaky})
	start := time.Now()
	err := st.Put(t.Context(), "x", bytes.NewReader(data(10)), 10)
	elapsed := time.Since(start)
	if !errors.Is(err, syscall.ECONNRESET) || !strings.Contains(err.Error(), "gave up after") {
		t.Fatalf("Put failing forever = %v, want the last error and how long we tried", err)
	}
	if elapsed < 300*time.Millisecond || elapsed > time.Second {
		t.Fatalf("Put failing forever returned after %s, want about 300ms", elapsed)
	}
	if n := f.count("put"); n < 3 {
		t.Fatalf("Put was attempted %d times in 300ms", n)
	}
}

func TestCanceledWhileWaiting(t *testing.T) {
	f := newFlaky(t)
	st := Wrap(f, Policy{InitialWait: time.Hour, MaxWait: time.Hour})
	f.add("stat", 1, fault{err: errFlaky})
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, err := st.Stat(ctx, "x")
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("Stat canceled while waiting = %v, want context.Canceled and the last failure", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("cancellation took %s to be noticed", d)
	}
}

func TestPutRewinds(t *testing.T) {
	want := data(50_000)

	t.Run("SeekerNotAtStart", func(t *testing.T) {
		f := newFlaky(t)
		st := Wrap(f, fast)
		r := bytes.NewReader(append([]byte("header"), want...))
		r.Seek(6, io.SeekStart) // the data starts where the reader is, not at 0
		f.add("put", 2, fault{err: errFlaky})
		if err := st.Put(t.Context(), "x", r, int64(len(want))); err != nil {
			t.Fatal(err)
		}
		if got := get(t, st, "x"); !bytes.Equal(got, want) {
			t.Fatal("stored bytes differ")
		}
	})

	t.Run("OverBufferLimit", func(t *testing.T) {
		f := newFlaky(t)
		p := fast
		p.BufferLimit = 1000
		st := Wrap(f, p)
		f.add("put", 1, fault{err: errFlaky})
		err := st.Put(t.Context(), "x", onlyReader{bytes.NewReader(want)}, int64(len(want)))
		if !errors.Is(err, syscall.ECONNRESET) || f.count("put") != 1 {
			t.Fatalf("non-seekable Put over the buffer limit = %v after %d calls, want one failed attempt", err, f.count("put"))
		}
	})

	t.Run("BufferingDisabled", func(t *testing.T) {
		f := newFlaky(t)
		p := fast
		p.BufferLimit = -1
		st := Wrap(f, p)
		f.add("put", 1, fault{err: errFlaky})
		if err := st.Put(t.Context(), "x", onlyReader{bytes.NewReader(want[:10])}, 10); err == nil || f.count("put") != 1 {
			t.Fatalf("Put with buffering disabled = %v after %d calls, want one failed attempt", err, f.count("put"))
		}
	})

	// The caller's reader failing is never retried, even with an error that looks like a
	// network failure (it may well be one: a pipe from another connection).
	t.Run("SourceFails", func(t *testing.T) {
		for _, r := range []io.Reader{
			io.MultiReader(bytes.NewReader(want[:100]), &errReader{syscall.ECONNRESET}), // not seekable
			&seekErrReader{errReader{syscall.ECONNRESET}},                               // seekable
			bytes.NewReader(want[:100]),                                                 // short
		} {
			f := newFlaky(t)
			st := Wrap(f, fast)
			err := st.Put(t.Context(), "x", r, int64(len(want)))
			if err == nil || f.count("put") > 1 {
				t.Fatalf("Put from a failing reader = %v after %d calls, want one failed attempt", err, f.count("put"))
			}
		}
	})
}

type errReader struct{ err error }

func (e *errReader) Read([]byte) (int, error) { return 0, e.err }

type seekErrReader struct{ errReader }

func (s *seekErrReader) Seek(int64, int) (int64, error) { return 0, nil }

// A Put whose answer was lost stored the object; the retry finds it and must not report
// ErrExists for the caller's own object.
func TestPutAmbiguous(t *testing.T) {
	want := data(70_000)
	f := newFlaky(t)
	st := Wrap(f, fast)
	f.add("put", 1, fault{err: errFlaky, after: true})
	put(t, st, "x", want)
	if n := f.count("put"); n != 2 {
		t.Fatalf("Put made %d calls, want 2", n)
	}

	// Someone else's bytes stay someone else's: ErrExists.
	if err := f.Storage.Put(t.Context(), "y", bytes.NewReader(want[:5]), 5); err != nil {
		t.Fatal(err)
	}
	f.add("put", 1, fault{err: errFlaky})
	if err := st.Put(t.Context(), "y", bytes.NewReader(want), int64(len(want))); !errors.Is(err, repo.ErrExists) {
		t.Fatalf("retried Put over different bytes = %v, want ErrExists", err)
	}
	// Without an ambiguous attempt ErrExists is reported even for identical bytes.
	if err := st.Put(t.Context(), "x", bytes.NewReader(want), int64(len(want))); !errors.Is(err, repo.ErrExists) {
		t.Fatalf("Put of an existing name = %v, want ErrExists", err)
	}
}

func TestGetResumes(t *testing.T) {
	want := data(1 << 20)
	f := newFlaky(t)
	st := Wrap(f, fast)
	put(t, st, "x", want)
	// The first stream breaks after 1000 bytes, the reopened one after 300000 more, the
	// third reopening fails to open twice, then all goes well.
	f.add("get", 1, fault{err: errFlaky, after: true, afterBytes: 1000})
	f.add("get", 1, fault{err: io.ErrUnexpectedEOF, after: true, afterBytes: 301000})
	f.add("get", 2, fault{err: errFlaky})
	if got := get(t, st, "x"); !bytes.Equal(got, want) {
		t.Fatalf("resumed Get returned %d bytes that differ", len(got))
	}
	if n := f.count("get"); n != 5 {
		t.Fatalf("Get opened %d times, want 5", n)
	}

	// A permanent error mid-stream is returned, not resumed.
	f.add("get", 1, fault{err: permanentErr{}, after: true, afterBytes: 10})
	rc, err := st.Get(t.Context(), "x")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadAll(rc); !errors.Is(err, permanentErr{}) {
		t.Fatalf("read with a permanent error = %v", err)
	}

	// A stream that breaks at once every time gives up in bounded time.
	f2 := newFlaky(t)
	st2 := Wrap(f2, Policy{MaxElapsed: 200 * time.Millisecond, InitialWait: time.Millisecond, MaxWait: 10 * time.Millisecond})
	put(t, f2, "x", want)
	f2.add("get", 100000, fault{err: errFlaky, after: true, afterBytes: 0})
	rc2, err := st2.Get(t.Context(), "x")
	if err != nil {
		t.Fatal(err)
	}
	defer rc2.Close()
	start := time.Now()
	if _, err := io.ReadAll(rc2); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read of a stream that always breaks = %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("giving up on a broken stream took %s", d)
	}
}

func TestListResumes(t *testing.T) {
	f := newFlaky(t)
	st := Wrap(f, fast)
	var all []string
	for i := range 20 {
		n := fmt.Sprintf("o/%02d", i)
		all = append(all, n)
		put(t, f, n, []byte{byte(i)})
	}
	f.add("list", 1, fault{err: errFlaky, after: true, afterNames: 5})
	f.add("list", 1, fault{err: errFlaky, after: true, afterNames: 12})
	f.add("list", 1, fault{err: errFlaky})
	var got []string
	if err := st.List(t.Context(), "o/", func(o repo.ObjectInfo) error { got = append(got, o.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, all) {
		t.Fatalf("resumed List reported %v, want each of %v once", got, all)
	}

	// fn's own error ends the listing, however transient it looks.
	calls := 0
	err := st.List(t.Context(), "o/", func(repo.ObjectInfo) error { calls++; return errFlaky })
	if err != errFlaky || calls != 1 {
		t.Fatalf("List with fn failing = %v after %d calls, want fn's error after 1", err, calls)
	}
}

func TestString(t *testing.T) {
	f := newFlaky(t)
	if got, want := Wrap(f, Policy{}).String(), f.Storage.String(); got != want {
		t.Fatalf("String() = %q, want the wrapped storage's %q", got, want)
	}
}

// The wrapper hides nothing: repo.As reaches the storage below any number of them.
func TestUnwrap(t *testing.T) {
	l, err := local.Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st := Wrap(Wrap(l, fast), fast)
	if got, ok := repo.As[*local.Storage](st); !ok || got != l {
		t.Fatalf("As[*local.Storage] = %v, %v; want the wrapped storage", got, ok)
	}
	if d, ok := repo.As[interface{ Dir() string }](st); !ok || d.Dir() != l.Dir() {
		t.Fatalf("As[Dir] = %v, %v; want %s", d, ok, l.Dir())
	}
	if _, ok := repo.As[*flaky](st); ok {
		t.Fatal("As found a type that is not in the chain")
	}
}
