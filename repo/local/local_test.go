package local

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) repo.Storage {
		return newStorage(t)
	})
}

// newStorage returns a storage in a directory Create has to make.
func newStorage(t testing.TB) *Storage {
	t.Helper()
	s, err := Create(filepath.Join(t.TempDir(), "new", "repo"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func listNames(t *testing.T, s *Storage, prefix string) []string {
	t.Helper()
	var got []string
	if err := s.List(t.Context(), prefix, func(o repo.ObjectInfo) error {
		got = append(got, o.Name)
		return nil
	}); err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return got
}

func putBytes(t *testing.T, s *Storage, name string, data []byte) {
	t.Helper()
	if err := s.Put(t.Context(), name, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put(%q): %v", name, err)
	}
}

func TestOpenMissing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nope")
	_, err := Open(dir)
	if err == nil {
		t.Fatal("Open of a missing directory succeeded")
	}
	if want := "repository directory " + dir + " does not exist"; err.Error() != want {
		t.Fatalf("Open error = %q, want %q", err, want)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open error %v does not wrap fs.ErrNotExist", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open created the directory (stat: %v)", err)
	}
}

func TestOpenNotDirectory(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(f)
	if err == nil || !strings.Contains(err.Error(), "is not a directory") {
		t.Fatalf("Open of a file = %v, want a 'not a directory' error", err)
	}
	if _, err := Create(f); err == nil {
		t.Fatal("Create over a file succeeded")
	}
}

func TestCreateThenOpen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	s, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.Dir() != dir || s.String() != dir {
		t.Fatalf("Dir() = %q, String() = %q, want %q", s.Dir(), s.String(), dir)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != dirMode {
		t.Errorf("repository directory mode %v, want %v", fi.Mode().Perm(), os.FileMode(dirMode))
	}
	putBytes(t, s, "x", []byte("y"))
	// Create of an existing repository is Open.
	s2, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	s3, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []*Storage{s2, s3} {
		if got := listNames(t, st, ""); !slices.Equal(got, []string{"x"}) {
			t.Fatalf("List = %v, want [x]", got)
		}
	}
}

func TestRelativeDirIsMadeAbsolute(t *testing.T) {
	t.Chdir(t.TempDir())
	s, err := Create("rel")
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(s.Dir()) {
		t.Fatalf("Dir() = %q, want an absolute path", s.Dir())
	}
}

// A crash can leave temp files anywhere Put writes; none of them may look like an object.
func TestLeftoverTempFilesInvisible(t *testing.T) {
	s := newStorage(t)
	putBytes(t, s, "chunks/ab/abcd", []byte("chunk"))
	putBytes(t, s, "config", []byte("cfg"))
	for _, p := range []string{".tmp-x", "chunks/ab/.tmp-123", "chunks/.tmp-9", ".tmp-dir/obj", "chunks/.tmp-d/e"} {
		full := filepath.Join(s.Dir(), filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for prefix, want := range map[string][]string{
		"":           {"chunks/ab/abcd", "config"},
		".":          nil,
		".tmp":       nil,
		"chunks/":    {"chunks/ab/abcd"},
		"chunks/.t":  nil,
		"chunks/ab/": {"chunks/ab/abcd"},
		".tmp-dir/":  nil,
	} {
		if got := listNames(t, s, prefix); !slices.Equal(got, want) {
			t.Errorf("List(%q) = %v, want %v", prefix, got, want)
		}
	}
	for _, name := range []string{".tmp-x", "chunks/ab/.tmp-123", ".tmp-dir/obj"} {
		if _, err := s.Stat(t.Context(), name); !errors.Is(err, repo.ErrInvalidName) {
			t.Errorf("Stat(%q) = %v, want ErrInvalidName", name, err)
		}
		if err := s.Put(t.Context(), name, strings.NewReader("x"), 1); !errors.Is(err, repo.ErrInvalidName) {
			t.Errorf("Put(%q) = %v, want ErrInvalidName", name, err)
		}
	}
	// Writing next to leftovers still works.
	putBytes(t, s, "chunks/ab/abce", []byte("chunk2"))
}

// blockingReader hands out data up to half, then waits for release before the rest.
type blockingReader struct {
	data      []byte
	off, half int
	reached   chan struct{}
	release   chan struct{}
	released  bool
}

func (b *blockingReader) Read(p []byte) (int, error) {
	if b.off == b.half && !b.released {
		close(b.reached)
		<-b.release
		b.released = true
	}
	if b.off == len(b.data) {
		return 0, io.EOF
	}
	end := len(b.data)
	if !b.released {
		end = b.half
	}
	n := copy(p, b.data[b.off:end])
	b.off += n
	return n, nil
}

// A Put in progress has a temp file on disk: List, Stat and Get must not show it.
func TestPutInProgressInvisible(t *testing.T) {
	s := newStorage(t)
	data := make([]byte, 1<<20)
	r := &blockingReader{data: data, half: len(data) / 2, reached: make(chan struct{}), release: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- s.Put(context.Background(), "d/obj", r, int64(len(data))) }()
	<-r.reached
	ents, err := os.ReadDir(filepath.Join(s.Dir(), "d"))
	if err != nil || len(ents) != 1 || !strings.HasPrefix(ents[0].Name(), tempPrefix) {
		t.Fatalf("expected exactly one temp file in d/ during Put, got %v (%v)", ents, err)
	}
	if got := listNames(t, s, ""); len(got) != 0 {
		t.Fatalf("List during Put = %v, want nothing", got)
	}
	if _, err := s.Stat(t.Context(), "d/obj"); !errors.Is(err, repo.ErrNotFound) {
		t.Fatalf("Stat during Put = %v, want ErrNotFound", err)
	}
	close(r.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ents, _ = os.ReadDir(filepath.Join(s.Dir(), "d"))
	if len(ents) != 1 || ents[0].Name() != "obj" {
		t.Fatalf("directory after Put holds %v, want only obj (temp removed)", ents)
	}
}

func TestFailedPutRemovesTemp(t *testing.T) {
	s := newStorage(t)
	putBytes(t, s, "d/existing", []byte("1"))
	// Too many bytes, too few bytes, a name that exists: each leaves no temp file behind.
	_ = s.Put(t.Context(), "d/long", strings.NewReader("12345"), 3)
	_ = s.Put(t.Context(), "d/short", strings.NewReader("1"), 3)
	_ = s.Put(t.Context(), "d/existing", strings.NewReader("2"), 1)
	ents, err := os.ReadDir(filepath.Join(s.Dir(), "d"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != "existing" {
		t.Fatalf("d/ holds %v, want only existing", ents)
	}
}

func TestReaderLongerThanSize(t *testing.T) {
	s := newStorage(t)
	if err := s.Put(t.Context(), "x", strings.NewReader("12345"), 3); err == nil {
		t.Fatal("Put with a reader longer than size succeeded")
	}
	if _, err := s.Stat(t.Context(), "x"); !errors.Is(err, repo.ErrNotFound) {
		t.Fatalf("Stat = %v, want ErrNotFound", err)
	}
	if err := s.Put(t.Context(), "x", strings.NewReader("123"), -1); err == nil {
		t.Fatal("Put with a negative size succeeded")
	}
}

// A file system cannot hold "a" and "a/b" at once. Put must say so, not claim ErrExists
// for an object that Get would not find.
func TestFileDirectoryConflicts(t *testing.T) {
	s := newStorage(t)
	putBytes(t, s, "a/b", []byte("1"))
	err := s.Put(t.Context(), "a", strings.NewReader("2"), 1)
	if err == nil || errors.Is(err, repo.ErrExists) {
		t.Fatalf("Put over a directory = %v, want an error that is not ErrExists", err)
	}
	err = s.Put(t.Context(), "a/b/c", strings.NewReader("3"), 1)
	if err == nil || errors.Is(err, repo.ErrExists) {
		t.Fatalf("Put below an object = %v, want an error that is not ErrExists", err)
	}
	if got := listNames(t, s, ""); !slices.Equal(got, []string{"a/b"}) {
		t.Fatalf("List = %v, want [a/b]", got)
	}
	// Delete of the name of a directory must not remove the directory, even when empty.
	if err := os.Mkdir(filepath.Join(s.Dir(), "empty"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(t.Context(), "empty"); err != nil {
		t.Fatalf("Delete of a directory's name: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(s.Dir(), "empty")); err != nil || !fi.IsDir() {
		t.Fatalf("Delete removed a directory (stat: %v)", err)
	}
}

func TestModesAndGetType(t *testing.T) {
	s := newStorage(t)
	putBytes(t, s, "m/n/o", []byte("data"))
	for p, want := range map[string]os.FileMode{"m": dirMode, "m/n": dirMode, "m/n/o": fileMode} {
		fi, err := os.Stat(filepath.Join(s.Dir(), filepath.FromSlash(p)))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
	rc, err := s.Get(t.Context(), "m/n/o")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, ok := rc.(*os.File); !ok {
		t.Fatalf("Get returned %T, want *os.File", rc)
	}
}

// Symlinks are followed (part of a repository may live elsewhere); other non-regular files
// and dangling links are not objects.
func TestSymlinksAndSpecialFiles(t *testing.T) {
	s := newStorage(t)
	putBytes(t, s, "real", []byte("1"))
	elsewhere := t.TempDir()
	if err := os.WriteFile(filepath.Join(elsewhere, "obj"), []byte("22"), 0o600); err != nil {
		t.Fatal(err)
	}
	for target, link := range map[string]string{
		"real":                          "link",
		elsewhere:                       "moved",
		filepath.Join(elsewhere, "nil"): "dangling",
	} {
		if err := os.Symlink(target, filepath.Join(s.Dir(), link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(s.Dir(), "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := listNames(t, s, ""); !slices.Equal(got, []string{"link", "moved/obj", "real"}) {
		t.Fatalf("List = %v, want [link moved/obj real]", got)
	}
	if info, err := s.Stat(t.Context(), "moved/obj"); err != nil || info.Size != 2 {
		t.Fatalf("Stat(moved/obj) = %+v, %v; want size 2", info, err)
	}
	putBytes(t, s, "moved/new", []byte("333"))
	if _, err := os.Stat(filepath.Join(elsewhere, "new")); err != nil {
		t.Fatalf("Put through a symlinked directory did not land in its target: %v", err)
	}
	if err := s.Delete(t.Context(), "moved"); err != nil {
		t.Fatalf("Delete of a symlinked directory's name: %v", err)
	}
	if _, err := s.Stat(t.Context(), "moved/obj"); err != nil {
		t.Fatalf("Delete of a symlinked directory's name removed what is below it: %v", err)
	}
	for _, name := range []string{"fifo", "dangling"} {
		if _, err := s.Stat(t.Context(), name); !errors.Is(err, repo.ErrNotFound) {
			t.Errorf("Stat(%q) = %v, want ErrNotFound", name, err)
		}
	}
}

func TestSymlinkLoop(t *testing.T) {
	s := newStorage(t)
	if err := os.Symlink(".", filepath.Join(s.Dir(), "loop")); err != nil {
		t.Fatal(err)
	}
	if err := s.List(t.Context(), "", func(repo.ObjectInfo) error { return nil }); err == nil ||
		!strings.Contains(err.Error(), "symlink loop") {
		t.Fatalf("List over a symlink loop = %v, want an error naming it", err)
	}
}

// The directory cache must recover when a directory is removed behind its back.
func TestDirectoryRemovedBehindCache(t *testing.T) {
	s := newStorage(t)
	putBytes(t, s, "x/y/one", []byte("1"))
	if err := os.RemoveAll(filepath.Join(s.Dir(), "x")); err != nil {
		t.Fatal(err)
	}
	putBytes(t, s, "x/y/two", []byte("2"))
	if got := listNames(t, s, ""); !slices.Equal(got, []string{"x/y/two"}) {
		t.Fatalf("List = %v, want [x/y/two]", got)
	}
}

// Many writers creating the same new directories at once.
func TestConcurrentPutsIntoNewDirectories(t *testing.T) {
	s := newStorage(t)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Go(func() {
			name := fmt.Sprintf("p/%d/q/obj%02d", i%2, i)
			errs <- s.Put(context.Background(), name, strings.NewReader(name), int64(len(name)))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := listNames(t, s, "p/"); len(got) != 64 {
		t.Fatalf("List found %d objects, want 64", len(got))
	}
}

func TestSplitPrefix(t *testing.T) {
	for _, c := range []struct {
		prefix, start, rest string
		ok                  bool
	}{
		{"", "", "", true},
		{"chunks", "", "chunks", true},
		{"chunks/", "chunks", "", true},
		{"chunks/ab", "chunks", "ab", true},
		{"chunks/ab/", "chunks/ab", "", true},
		{"chunks/ab/abcd", "chunks/ab", "abcd", true},
		{"/", "", "", false},
		{"../x", "", "", false},
		{"a//b", "", "", false},
		{".tmp-1/x", "", "", false},
	} {
		start, rest, ok := splitPrefix(c.prefix)
		if start != c.start || rest != c.rest || ok != c.ok {
			t.Errorf("splitPrefix(%q) = %q, %q, %v; want %q, %q, %v", c.prefix, start, rest, ok, c.start, c.rest, c.ok)
		}
	}
}

// benchDir is where benchmarks write: PGWARD_BENCH_DIR if set (to measure a particular
// disk), else a temp dir.
func benchDir(b *testing.B) string {
	if d := os.Getenv("PGWARD_BENCH_DIR"); d != "" {
		d, err := os.MkdirTemp(d, "bench-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	return b.TempDir()
}

// BenchmarkPut writes 1 MiB objects in parallel under chunk-store names
// ("chunks/ab/abcdef…", 256 fan-out directories), fsyncs included.
func BenchmarkPut(b *testing.B) {
	s, err := Create(benchDir(b))
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 1<<20)
	rand.Read(data)
	var seq atomic.Uint64
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			sum := sha256.Sum256(fmt.Appendf(nil, "%d", seq.Add(1)))
			id := hex.EncodeToString(sum[:])
			if err := s.Put(ctx, "chunks/"+id[:2]+"/"+id, bytes.NewReader(data), int64(len(data))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "objects/s")
}

// BenchmarkList lists a chunk store of 100,000 objects in 256 directories, whole and one
// fan-out directory at a time. The files are made directly, without Put's fsyncs, to keep
// setup short.
func BenchmarkList(b *testing.B) {
	const n = 100_000
	s, err := Create(benchDir(b))
	if err != nil {
		b.Fatal(err)
	}
	for i := range 256 {
		if err := os.MkdirAll(filepath.Join(s.Dir(), "chunks", fmt.Sprintf("%02x", i)), dirMode); err != nil {
			b.Fatal(err)
		}
	}
	for i := range n {
		sum := sha256.Sum256(fmt.Appendf(nil, "%d", i))
		id := hex.EncodeToString(sum[:])
		if err := os.WriteFile(filepath.Join(s.Dir(), "chunks", id[:2], id), nil, fileMode); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	count := func(prefix string) int {
		c := 0
		if err := s.List(ctx, prefix, func(repo.ObjectInfo) error { c++; return nil }); err != nil {
			b.Fatal(err)
		}
		return c
	}
	b.Run("all", func(b *testing.B) {
		for b.Loop() {
			if c := count("chunks/"); c != n {
				b.Fatalf("listed %d, want %d", c, n)
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "objects/s")
	})
	b.Run("one-dir", func(b *testing.B) {
		for b.Loop() {
			count("chunks/ab/")
		}
	})
}

// PutDeferred objects are complete and readable at once, create-only like Put, and
// SyncDeferred fsyncs each directory that gained one exactly once.
func TestPutDeferred(t *testing.T) {
	ctx := context.Background()
	s, err := Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"chunks/aa/1", "chunks/aa/2", "chunks/bb/3"}
	for _, n := range names {
		if err := s.PutDeferred(ctx, n, strings.NewReader(n), int64(len(n))); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.unsynced) != 2 {
		t.Fatalf("directories awaiting fsync: %v", s.unsynced)
	}
	for _, n := range names {
		rc, err := s.Get(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if string(b) != n {
			t.Fatalf("%s: read %q", n, b)
		}
	}
	if err := s.PutDeferred(ctx, names[0], strings.NewReader("other"), 5); !errors.Is(err, repo.ErrExists) {
		t.Fatalf("PutDeferred over an existing name: %v", err)
	}
	if err := s.SyncDeferred(ctx); err != nil {
		t.Fatal(err)
	}
	if len(s.unsynced) != 0 {
		t.Fatalf("still awaiting fsync after SyncDeferred: %v", s.unsynced)
	}
}

// A crashed Put leaves a temp file: Leftovers names it by the object it was for, under the
// prefixes that could hold that object only, and RemoveLeftover removes nothing else.
func TestLeftovers(t *testing.T) {
	s := newStorage(t)
	ctx := t.Context()
	put := func(name string) {
		if err := s.Put(ctx, name, strings.NewReader("x"), 1); err != nil {
			t.Fatal(err)
		}
	}
	put("chunks/ab/abcdef")
	put("clusters/c/wal/000000010000000000000001")
	tmp := filepath.Join(s.Dir(), "chunks", "ab", ".tmp-abc123-98765")
	if err := os.WriteFile(tmp, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	collect := func(prefix string) []repo.Leftover {
		var ls []repo.Leftover
		if err := s.Leftovers(ctx, prefix, func(l repo.Leftover) error { ls = append(ls, l); return nil }); err != nil {
			t.Fatal(err)
		}
		return ls
	}
	for _, prefix := range []string{"", "chunks/", "chunks/ab/abc1"} {
		ls := collect(prefix)
		if len(ls) != 1 || ls[0].Name != "chunks/ab/abc123" || ls[0].Size != 7 || ls[0].Started.IsZero() {
			t.Fatalf("Leftovers(%q) = %+v; want the temp file of chunks/ab/abc123", prefix, ls)
		}
	}
	for _, prefix := range []string{"clusters/", "chunks/ab/abd", "nothing/"} {
		if ls := collect(prefix); len(ls) != 0 {
			t.Fatalf("Leftovers(%q) = %+v; want none", prefix, ls)
		}
	}
	if err := s.RemoveLeftover(ctx, repo.Leftover{Ref: filepath.Join(s.Dir(), "chunks", "ab", "abcdef")}); err == nil {
		t.Fatal("RemoveLeftover removed an object")
	}
	if err := s.RemoveLeftover(ctx, collect("")[0]); err != nil {
		t.Fatal(err)
	}
	if ls := collect(""); len(ls) != 0 {
		t.Fatalf("after RemoveLeftover: %+v", ls)
	}
	if _, err := s.Stat(ctx, "chunks/ab/abcdef"); err != nil {
		t.Fatal(err)
	}
}
