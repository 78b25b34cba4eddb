// Package storagetest is the conformance suite for repo.Storage backends. A backend is
// correct when Run passes against it: the suite checks the promises written in the
// repo.Storage doc comment (exact read-after-write, write once, atomic visibility with
// failing and racing writers, prefix listing in lexical order, one ObjectInfo per object
// with a plausible ModTime, PutDeferred behaving as Put for every reader,
// ErrNotFound/ErrExists/ErrInvalidName classification), not the backend's internals. That
// a name stored with PutDeferred survives a machine crash only after SyncDeferred cannot be
// observed from inside a process; backends test it their own way.
//
// Every subtest asks newStorage for a fresh, empty storage, so subtests are independent and
// a failure names exactly one promise.
//
// The package also holds fakes for testing the layers above storage without a disk or a
// server: Memory keeps objects in memory, and Faulty wraps any storage and fails, delays or
// corrupts chosen calls on command. Both pass the suite.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgward/pgward/repo"
)

// Run runs the conformance suite. newStorage must return an empty storage that the test
// owns; it should register its own cleanup with t.Cleanup.
func Run(t *testing.T, newStorage func(t *testing.T) repo.Storage) {
	tests := []struct {
		name string
		fn   func(t *testing.T, st repo.Storage)
	}{
		{"PutGet", testPutGet},
		{"ZeroByte", testZeroByte},
		{"PutExisting", testPutExisting},
		{"Missing", testMissing},
		{"PrefixIsNotObject", testPrefixIsNotObject},
		{"List", testList},
		{"ListLexicalOrder", testListLexicalOrder},
		{"ListMany", testListMany},
		{"ListStop", testListStop},
		{"ListCanceled", testListCanceled},
		{"Delete", testDelete},
		{"FailingReader", testFailingReader},
		{"ShortReader", testShortReader},
		{"CanceledPut", testCanceledPut},
		{"ConcurrentPutSameName", testConcurrentPutSameName},
		{"InvalidNames", testInvalidNames},
		{"String", testString},
		{"ObjectInfo", testObjectInfo},
		{"PutDeferred", testPutDeferred},
		{"GetRange", testGetRange},
		{"NoLeftovers", testNoLeftovers},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := newStorage(t)
			if st == nil {
				t.Fatal("newStorage returned nil")
			}
			tc.fn(t, st)
		})
	}
}

// payload returns size deterministic pseudo-random bytes; different seeds give different
// content, so a mixed-up object cannot pass by accident.
func payload(seed uint64, size int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func put(t *testing.T, st repo.Storage, name string, data []byte) {
	t.Helper()
	if err := st.Put(t.Context(), name, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put(%q, %d bytes): %v", name, len(data), err)
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
	if err := rc.Close(); err != nil {
		t.Fatalf("Get(%q): close: %v", name, err)
	}
	return b
}

// checkContent fails unless name holds exactly want, by Get and by Stat.
func checkContent(t *testing.T, st repo.Storage, name string, want []byte) {
	t.Helper()
	if got := get(t, st, name); !bytes.Equal(got, want) {
		t.Fatalf("Get(%q) returned %d bytes that differ from the %d bytes put", name, len(got), len(want))
	}
	info, err := st.Stat(t.Context(), name)
	if err != nil {
		t.Fatalf("Stat(%q): %v", name, err)
	}
	if info.Name != name || info.Size != int64(len(want)) {
		t.Fatalf("Stat(%q) = %+v, want name %q and size %d", name, info, name, len(want))
	}
}

type listed struct {
	name string
	size int64
}

func list(t *testing.T, st repo.Storage, prefix string) []listed {
	t.Helper()
	var got []listed
	for _, o := range listInfo(t, st, prefix) {
		got = append(got, listed{o.Name, o.Size})
	}
	return got
}

func listInfo(t *testing.T, st repo.Storage, prefix string) []repo.ObjectInfo {
	t.Helper()
	var got []repo.ObjectInfo
	err := st.List(t.Context(), prefix, func(o repo.ObjectInfo) error {
		got = append(got, o)
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return got
}

func names(ls []listed) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.name
	}
	return out
}

func checkMissing(t *testing.T, st repo.Storage, name string) {
	t.Helper()
	if _, err := st.Stat(t.Context(), name); !errors.Is(err, repo.ErrNotFound) {
		t.Fatalf("Stat(%q) = %v, want ErrNotFound", name, err)
	}
	rc, err := st.Get(t.Context(), name)
	if err == nil {
		rc.Close()
	}
	if !errors.Is(err, repo.ErrNotFound) {
		t.Fatalf("Get(%q) = %v, want ErrNotFound", name, err)
	}
}

func checkEmpty(t *testing.T, st repo.Storage) {
	t.Helper()
	if got := list(t, st, ""); len(got) != 0 {
		t.Fatalf("List(\"\") = %v, want nothing", names(got))
	}
}

func testPutGet(t *testing.T, st repo.Storage) {
	objects := map[string][]byte{
		"top":                          payload(1, 1),
		"config":                       payload(2, 4096),
		"chunks/ab/abcdef0123456789":   payload(3, 1<<20+7), // not a multiple of any buffer size
		"chunks/ab/abffff":             payload(4, 4<<20+13),
		"wal/0000000100000000/000001x": payload(5, 333),
	}
	for name, data := range objects {
		put(t, st, name, data)
	}
	for name, data := range objects {
		checkContent(t, st, name, data)
	}
	got := list(t, st, "")
	if len(got) != len(objects) {
		t.Fatalf("List(\"\") = %v, want %d objects", names(got), len(objects))
	}
	for _, l := range got {
		if want := int64(len(objects[l.name])); l.size != want {
			t.Errorf("List reported %q with size %d, want %d", l.name, l.size, want)
		}
	}
}

func testZeroByte(t *testing.T, st repo.Storage) {
	put(t, st, "empty", nil)
	put(t, st, "dir/empty", []byte{})
	for _, name := range []string{"empty", "dir/empty"} {
		checkContent(t, st, name, nil)
	}
	got := list(t, st, "")
	want := []listed{{"dir/empty", 0}, {"empty", 0}}
	if !slices.Equal(got, want) {
		t.Fatalf("List(\"\") = %v, want %v", got, want)
	}
}

func testPutExisting(t *testing.T, st repo.Storage) {
	first := payload(10, 1000)
	put(t, st, "locks/x", first)
	for i, second := range [][]byte{payload(11, 1000), payload(12, 50), nil} {
		err := st.Put(t.Context(), "locks/x", bytes.NewReader(second), int64(len(second)))
		if !errors.Is(err, repo.ErrExists) {
			t.Fatalf("second Put #%d of an existing name = %v, want ErrExists", i, err)
		}
		checkContent(t, st, "locks/x", first)
	}
	if got := list(t, st, ""); len(got) != 1 {
		t.Fatalf("List after refused Puts = %v, want only locks/x", names(got))
	}
}

func testMissing(t *testing.T, st repo.Storage) {
	checkMissing(t, st, "nothing")
	checkMissing(t, st, "no/such/dir/object")
	put(t, st, "a/b", []byte("x"))
	checkMissing(t, st, "a/c")
	checkMissing(t, st, "a/b/c") // below an object, which is not a directory
	checkMissing(t, st, "a/bb")
}

func testPrefixIsNotObject(t *testing.T, st repo.Storage) {
	data := []byte("below")
	put(t, st, "d/e/f", data)
	for _, name := range []string{"d", "d/e"} {
		checkMissing(t, st, name)
		if err := st.Delete(t.Context(), name); err != nil {
			t.Fatalf("Delete(%q) of a name that is only a prefix: %v", name, err)
		}
	}
	checkContent(t, st, "d/e/f", data)
	if got := names(list(t, st, "d")); !slices.Equal(got, []string{"d/e/f"}) {
		t.Fatalf("List(\"d\") = %v, want [d/e/f]", got)
	}
}

func testList(t *testing.T, st repo.Storage) {
	// Put out of order; each object's size is its index here. No name is both an object and
	// a prefix of another ("a/b" next to "a/b/c"): file system backends cannot hold both.
	objects := []string{
		"a/b/c", "a/b/d/e", "a/bc", "a/ab", "ab", "a.b", "b/a/b",
		"chunks/00/00aa", "chunks/ab/ab01", "chunks/ab/ab02", "chunks/ac/ac01",
	}
	for i, n := range objects {
		put(t, st, n, payload(uint64(100+i), i))
	}
	all := slices.Sorted(slices.Values(objects))
	chunks := []string{"chunks/00/00aa", "chunks/ab/ab01", "chunks/ab/ab02", "chunks/ac/ac01"}
	cases := []struct {
		prefix string
		want   []string
	}{
		{"", all},
		{"a", []string{"a.b", "a/ab", "a/b/c", "a/b/d/e", "a/bc", "ab"}},
		{"a/", []string{"a/ab", "a/b/c", "a/b/d/e", "a/bc"}},
		{"a/b", []string{"a/b/c", "a/b/d/e", "a/bc"}}, // a plain prefix, not a directory
		{"a/b/", []string{"a/b/c", "a/b/d/e"}},
		{"a/b/d", []string{"a/b/d/e"}},
		{"a/b/d/e", []string{"a/b/d/e"}},
		{"a/b/d/ef", nil},
		{"a/bc", []string{"a/bc"}},
		{"a/bc/", nil},
		{"a/bc/x", nil},
		{"chunks/ab", chunks[1:3]},
		{"chunks/ab/", chunks[1:3]},
		{"chunks/ab/ab0", chunks[1:3]},
		{"chunks/ab/ab02", chunks[2:3]},
		{"chunks/a", chunks[1:]},
		{"chunks/", chunks},
		{"c", chunks},
		{"chunks/zz/", nil},
		{"nothing", nil},
		{"b/a/b", []string{"b/a/b"}},
		// Prefixes no valid name can start with list nothing rather than escaping or failing.
		{"/", nil},
		{"../", nil},
		{"a/../", nil},
		{"a//b", nil},
		{"a/./b", nil},
	}
	for _, c := range cases {
		got := list(t, st, c.prefix)
		if !slices.Equal(names(got), c.want) {
			t.Errorf("List(%q) = %v, want %v", c.prefix, names(got), c.want)
		}
	}
	for _, l := range list(t, st, "") {
		if want := int64(slices.Index(objects, l.name)); l.size != want {
			t.Errorf("List reported %q with size %d, want %d", l.name, l.size, want)
		}
	}
}

// testListLexicalOrder uses names where byte order differs from a naive directory walk:
// '-' and '.' sort before '/', which sorts before digits and letters.
func testListLexicalOrder(t *testing.T, st repo.Storage) {
	// Files and directories interleave both ways: file "a-b" before directory "a/", directory
	// "b-/" before file "b.", directory "b/" before file "b0".
	want := []string{"a-b", "a.b", "a/x", "a/y/z", "a0", "b-/c", "b.", "b/c", "b0", "c"}
	for i, j := range rand.Perm(len(want)) {
		put(t, st, want[j], payload(uint64(200+i), 3))
	}
	if got := names(list(t, st, "")); !slices.Equal(got, want) {
		t.Fatalf("List(\"\") = %v, want %v", got, want)
	}
	if got := names(list(t, st, "b")); !slices.Equal(got, want[5:9]) {
		t.Fatalf("List(\"b\") = %v, want %v", got, want[5:9])
	}
}

// testListMany crosses the 1000-key page size of S3's ListObjectsV2.
func testListMany(t *testing.T, st repo.Storage) {
	const n = 1100
	all := make([]string, n)
	for i := range all {
		// Two fan-out levels like the chunk store, and names not put in order.
		all[i] = fmt.Sprintf("many/%02x/%08x", i%7, uint32(i)*2654435761)
	}
	parallel(t, 8, n, func(i int) error {
		data := []byte(all[i])
		return st.Put(context.Background(), all[i], bytes.NewReader(data), int64(len(data)))
	})
	put(t, st, "other", []byte("not listed under many/"))
	slices.Sort(all)
	got := list(t, st, "many/")
	if !slices.Equal(names(got), all) {
		t.Fatalf("List(\"many/\") returned %d names, want %d, in order", len(got), n)
	}
	for _, l := range got {
		if l.size != int64(len(l.name)) {
			t.Fatalf("List reported %q with size %d, want %d", l.name, l.size, len(l.name))
		}
	}
	if got := list(t, st, ""); len(got) != n+1 {
		t.Fatalf("List(\"\") returned %d names, want %d", len(got), n+1)
	}
	var sub []string
	for _, a := range all {
		if strings.HasPrefix(a, "many/03/") {
			sub = append(sub, a)
		}
	}
	if got := names(list(t, st, "many/03/")); !slices.Equal(got, sub) {
		t.Fatalf("List(\"many/03/\") = %d names, want %d", len(got), len(sub))
	}
}

// parallel runs fn(0..n-1) on workers goroutines and fails the test on the first error.
func parallel(t *testing.T, workers, n int, fn func(i int) error) {
	t.Helper()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		next = make(chan int)
	)
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d of %d operations failed, first: %v", len(errs), n, errs[0])
	}
}

func testListStop(t *testing.T, st repo.Storage) {
	for i := range 10 {
		put(t, st, fmt.Sprintf("s/%02d", i), []byte{byte(i)})
	}
	stop := errors.New("stop here")
	var seen []string
	err := st.List(t.Context(), "s/", func(o repo.ObjectInfo) error {
		seen = append(seen, o.Name)
		if len(seen) == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("List returned %v, want the error fn returned", err)
	}
	if want := []string{"s/00", "s/01", "s/02"}; !slices.Equal(seen, want) {
		t.Fatalf("fn saw %v, want %v and nothing after the error", seen, want)
	}
}

func testListCanceled(t *testing.T, st repo.Storage) {
	for i := range 5 {
		put(t, st, fmt.Sprintf("c/%d", i), nil)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	calls := 0
	err := st.List(ctx, "", func(repo.ObjectInfo) error {
		calls++
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("List with a canceled context returned %v, want context.Canceled", err)
	}
	if calls != 1 {
		t.Fatalf("fn was called %d times, want 1 (none after cancellation)", calls)
	}
}

func testDelete(t *testing.T, st repo.Storage) {
	put(t, st, "del/x", []byte("doomed"))
	put(t, st, "del/y", []byte("kept"))
	if err := st.Delete(t.Context(), "del/x"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	checkMissing(t, st, "del/x")
	if got := names(list(t, st, "")); !slices.Equal(got, []string{"del/y"}) {
		t.Fatalf("List after Delete = %v, want [del/y]", got)
	}
	checkContent(t, st, "del/y", []byte("kept"))
	for _, name := range []string{"del/x", "never", "no/such/dir/x", "del/y/below"} {
		if err := st.Delete(t.Context(), name); err != nil {
			t.Fatalf("Delete(%q) of a missing object: %v", name, err)
		}
	}
	// A deleted name can be written again (locks are put and deleted under fixed names).
	again := []byte("reborn")
	put(t, st, "del/x", again)
	checkContent(t, st, "del/x", again)
}

// failingReader yields n bytes and then fails.
type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func testFailingReader(t *testing.T, st repo.Storage) {
	boom := errors.New("source failed")
	for _, name := range []string{"fail", "f/a/i/l"} {
		r := &failingReader{data: payload(300, 100_000), err: boom}
		if err := st.Put(t.Context(), name, r, 200_000); err == nil {
			t.Fatalf("Put(%q) with a reader failing mid-way succeeded", name)
		}
		checkMissing(t, st, name)
	}
	checkEmpty(t, st)
	// Nothing left behind blocks a later, good Put of the same name.
	data := payload(301, 200_000)
	put(t, st, "fail", data)
	checkContent(t, st, "fail", data)
}

func testShortReader(t *testing.T, st repo.Storage) {
	data := payload(400, 1000)
	if err := st.Put(t.Context(), "short", bytes.NewReader(data), 2000); err == nil {
		t.Fatal("Put with a reader shorter than size succeeded")
	}
	checkMissing(t, st, "short")
	checkEmpty(t, st)
}

func testCanceledPut(t *testing.T, st repo.Storage) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	data := payload(500, 10_000)
	if err := st.Put(ctx, "canceled", bytes.NewReader(data), int64(len(data))); err == nil {
		t.Fatal("Put with a canceled context succeeded")
	}
	checkMissing(t, st, "canceled")
	checkEmpty(t, st)
}

// gatedReader blocks its first Read until the gate opens, so that racing writers overlap.
type gatedReader struct {
	gate <-chan struct{}
	r    io.Reader
	once sync.Once
}

func (g *gatedReader) Read(p []byte) (int, error) {
	g.once.Do(func() { <-g.gate })
	return g.r.Read(p)
}

func testConcurrentPutSameName(t *testing.T, st repo.Storage) {
	const writers = 8
	const name = "race/winner"
	contents := make([][]byte, writers)
	for i := range contents {
		// Different sizes too, so a mix of two writers cannot match any one of them.
		contents[i] = payload(uint64(600+i), 256<<10+i*1000)
	}
	gate := make(chan struct{})
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			r := &gatedReader{gate: gate, r: bytes.NewReader(contents[i])}
			errs[i] = st.Put(context.Background(), name, r, int64(len(contents[i])))
		})
	}
	close(gate)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("writers %d and %d both succeeded", winner, i)
			}
			winner = i
		case errors.Is(err, repo.ErrExists):
		default:
			t.Fatalf("writer %d: %v, want nil or ErrExists", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer succeeded")
	}
	checkContent(t, st, name, contents[winner])
	if got := list(t, st, ""); len(got) != 1 || got[0] != (listed{name, int64(len(contents[winner]))}) {
		t.Fatalf("List after the race = %v, want only %s", got, name)
	}
}

func testInvalidNames(t *testing.T, st repo.Storage) {
	bad := []string{"", "/", "/a", "a/", "a//b", ".", "..", "./a", "a/.", "a/./b", "a/..", "../a", "a/../b", "a\x00b"}
	ctx := t.Context()
	for _, name := range bad {
		if err := repo.ValidName(name); !errors.Is(err, repo.ErrInvalidName) {
			t.Errorf("ValidName(%q) = %v, want ErrInvalidName", name, err)
		}
		if err := st.Put(ctx, name, strings.NewReader("x"), 1); !errors.Is(err, repo.ErrInvalidName) {
			t.Errorf("Put(%q) = %v, want ErrInvalidName", name, err)
		}
		if err := st.PutDeferred(ctx, name, strings.NewReader("x"), 1); !errors.Is(err, repo.ErrInvalidName) {
			t.Errorf("PutDeferred(%q) = %v, want ErrInvalidName", name, err)
		}
		rc, err := st.Get(ctx, name)
		if err == nil {
			rc.Close()
		}
		if !errors.Is(err, repo.ErrInvalidName) {
			t.Errorf("Get(%q) = %v, want ErrInvalidName", name, err)
		}
		if _, err := st.Stat(ctx, name); !errors.Is(err, repo.ErrInvalidName) {
			t.Errorf("Stat(%q) = %v, want ErrInvalidName", name, err)
		}
		if err := st.Delete(ctx, name); !errors.Is(err, repo.ErrInvalidName) {
			t.Errorf("Delete(%q) = %v, want ErrInvalidName", name, err)
		}
	}
	checkEmpty(t, st)
	for _, name := range []string{"a", "a/b", "..a", "a/..b", "a.", ".a/b", "a b/c d", "ünïcode/ok"} {
		if err := repo.ValidName(name); err != nil {
			t.Errorf("ValidName(%q) = %v, want nil", name, err)
		}
	}
}

func testString(t *testing.T, st repo.Storage) {
	if st.String() == "" {
		t.Fatal("String() is empty")
	}
}

// clockSkew is how far a backend's idea of "now" may be from this machine's: a remote
// server's clock, and timestamps kept to the second or by a coarse file system clock.
const clockSkew = 5 * time.Minute

// testObjectInfo: Stat and List describe an object the same way, with its size and a
// ModTime of when it was written.
func testObjectInfo(t *testing.T, st repo.Storage) {
	before := time.Now()
	objects := map[string][]byte{
		"info/empty": nil,
		"info/a/b":   payload(700, 1234),
		"info/big":   payload(701, 1<<20+3),
	}
	for name, data := range objects {
		put(t, st, name, data)
	}
	deferred := payload(702, 99)
	putDeferred(t, st, "info/deferred", deferred)
	objects["info/deferred"] = deferred
	after := time.Now()

	got := listInfo(t, st, "info/")
	if len(got) != len(objects) {
		t.Fatalf("List(\"info/\") = %v, want %d objects", got, len(objects))
	}
	for _, l := range got {
		if want := int64(len(objects[l.Name])); l.Size != want {
			t.Errorf("List reported %q with size %d, want %d", l.Name, l.Size, want)
		}
		if l.ModTime.IsZero() || l.ModTime.Before(before.Add(-clockSkew)) || l.ModTime.After(after.Add(clockSkew)) {
			t.Errorf("List reported %q with ModTime %v, want one within %v of [%v, %v]", l.Name, l.ModTime, clockSkew, before, after)
		}
		s, err := st.Stat(t.Context(), l.Name)
		if err != nil {
			t.Fatalf("Stat(%q): %v", l.Name, err)
		}
		if s.Name != l.Name || s.Size != l.Size || !s.ModTime.Equal(l.ModTime) {
			t.Errorf("Stat(%q) = %+v, List reported %+v: they must agree", l.Name, s, l)
		}
	}
}

func putDeferred(t *testing.T, st repo.Storage, name string, data []byte) {
	t.Helper()
	if err := st.PutDeferred(t.Context(), name, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("PutDeferred(%q, %d bytes): %v", name, len(data), err)
	}
}

// testPutDeferred: an object stored with PutDeferred is read, listed, protected from
// overwriting and deleted exactly like one stored with Put, before and after SyncDeferred;
// a failing or canceled PutDeferred leaves nothing.
func testPutDeferred(t *testing.T, st repo.Storage) {
	ctx := t.Context()
	if err := st.SyncDeferred(ctx); err != nil {
		t.Fatalf("SyncDeferred with nothing deferred: %v", err)
	}
	objects := map[string][]byte{
		"chunks/aa/aa01": payload(800, 4096),
		"chunks/aa/aa02": payload(801, 1<<20+5),
		"chunks/bb/bb01": nil,
	}
	for name, data := range objects {
		putDeferred(t, st, name, data)
		checkContent(t, st, name, data) // read-after-write before any SyncDeferred
	}
	put(t, st, "plain", []byte("put"))
	want := []string{"chunks/aa/aa01", "chunks/aa/aa02", "chunks/bb/bb01", "plain"}
	if got := names(list(t, st, "")); !slices.Equal(got, want) {
		t.Fatalf("List(\"\") = %v, want %v", got, want)
	}
	other := payload(802, 10)
	for _, name := range []string{"chunks/aa/aa01", "plain"} {
		if err := st.PutDeferred(ctx, name, bytes.NewReader(other), int64(len(other))); !errors.Is(err, repo.ErrExists) {
			t.Fatalf("PutDeferred over existing %q = %v, want ErrExists", name, err)
		}
	}
	if err := st.Put(ctx, "chunks/aa/aa01", bytes.NewReader(other), int64(len(other))); !errors.Is(err, repo.ErrExists) {
		t.Fatalf("Put over an object stored with PutDeferred = %v, want ErrExists", err)
	}
	checkContent(t, st, "chunks/aa/aa01", objects["chunks/aa/aa01"])

	r := &failingReader{data: payload(803, 1000), err: errors.New("source failed")}
	if err := st.PutDeferred(ctx, "chunks/cc/fail", r, 5000); err == nil {
		t.Fatal("PutDeferred with a reader failing mid-way succeeded")
	}
	checkMissing(t, st, "chunks/cc/fail")
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := st.PutDeferred(canceled, "chunks/cc/canceled", bytes.NewReader(other), int64(len(other))); err == nil {
		t.Fatal("PutDeferred with a canceled context succeeded")
	}
	checkMissing(t, st, "chunks/cc/canceled")

	if err := st.SyncDeferred(ctx); err != nil {
		t.Fatalf("SyncDeferred: %v", err)
	}
	for name, data := range objects {
		checkContent(t, st, name, data)
	}
	if err := st.SyncDeferred(ctx); err != nil {
		t.Fatalf("second SyncDeferred: %v", err)
	}
	if err := st.Delete(ctx, "chunks/aa/aa02"); err != nil {
		t.Fatalf("Delete of an object stored with PutDeferred: %v", err)
	}
	checkMissing(t, st, "chunks/aa/aa02")
	putDeferred(t, st, "chunks/aa/aa02", other)
	checkContent(t, st, "chunks/aa/aa02", other)
}

// testGetRange: a range is exactly the bytes asked for; a range past the end and a
// missing object are errors, the latter wrapping ErrNotFound.
func testGetRange(t *testing.T, st repo.Storage) {
	ctx := context.Background()
	data := make([]byte, 100000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := st.Put(ctx, "packs/ab/p1", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	for _, r := range [][2]int64{{0, 100000}, {0, 1}, {12345, 6789}, {99999, 1}, {50000, 0}} {
		rc, err := st.GetRange(ctx, "packs/ab/p1", r[0], r[1])
		if err != nil {
			t.Fatalf("GetRange(%d, %d): %v", r[0], r[1], err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, data[r[0]:r[0]+r[1]]) {
			t.Errorf("GetRange(%d, %d): %d bytes, %v; want the object's bytes", r[0], r[1], len(got), err)
		}
	}
	if rc, err := st.GetRange(ctx, "packs/ab/p1", 99990, 20); err == nil {
		_, err = io.ReadAll(rc)
		rc.Close()
		if err == nil {
			t.Error("a range past the end was read without an error")
		}
	}
	if _, err := st.GetRange(ctx, "packs/ab/missing", 0, 10); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("GetRange of a missing object: %v, want ErrNotFound", err)
	}
}

// testNoLeftovers: Puts that failed clean up after themselves, so Leftovers, which expire
// relies on to find what crashed writers left, reports nothing on a storage whose writers
// all returned. (Backends test real leftovers themselves: only they can make one.)
func testNoLeftovers(t *testing.T, st repo.Storage) {
	boom := errors.New("source failed")
	r := &failingReader{data: payload(900, 100_000), err: boom}
	if err := st.Put(t.Context(), "x/fail", r, 200_000); err == nil {
		t.Fatal("Put with a reader failing mid-way succeeded")
	}
	put(t, st, "x/ok", payload(901, 1000))
	for _, prefix := range []string{"", "x/", "x/fail"} {
		err := st.Leftovers(t.Context(), prefix, func(l repo.Leftover) error {
			t.Errorf("Leftovers(%q) reported %+v after every Put returned", prefix, l)
			return nil
		})
		if err != nil {
			t.Fatalf("Leftovers(%q): %v", prefix, err)
		}
	}
}
