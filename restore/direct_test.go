package restore

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/pgward/pgward/repo"
)

func TestPageAligned(t *testing.T) {
	for _, n := range []int{pageSize, 4 << 20, 100} {
		b := pageAligned(n)
		if len(b) != 0 || cap(b) != n {
			t.Fatalf("pageAligned(%d): len %d cap %d", n, len(b), cap(b))
		}
		b = b[:n]
		if n%pageSize == 0 && !isPageAligned(b) {
			t.Fatalf("pageAligned(%d) is not aligned", n)
		}
	}
	if b := pageAligned(2 * pageSize)[:2*pageSize]; isPageAligned(b[1 : 1+pageSize]) {
		t.Fatal("an offset slice counted as aligned")
	}
}

// writeChunk writes what it is given, whether the file is in direct mode, the
// data is aligned or not, and whether the file system takes O_DIRECT at all
// (tmpfs before Linux 6.6 does not: then the restore goes on buffered).
func TestWriteChunkDirect(t *testing.T) {
	w := &writer{m: &repo.Manifest{ChunkSize: 2 * pageSize}}
	w.direct.Store(true)
	p := filepath.Join(t.TempDir(), "f")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	of := &openFile{f: f}
	of.direct = setDirect(f, true)
	f.Truncate(4 * pageSize)
	want := bytes.Repeat([]byte("0123456789abcdef"), 4*pageSize/16)
	aligned := pageAligned(2 * pageSize)[:2*pageSize]
	copy(aligned, want)
	unaligned := append(make([]byte, 1, 1+2*pageSize), want[2*pageSize:]...)[1:]
	var spare []byte
	if err := w.writeChunk(of, aligned, 0, &spare); err != nil {
		t.Fatal(err)
	}
	if err := w.writeChunk(of, unaligned, 2*pageSize, &spare); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got, _ := os.ReadFile(p); !bytes.Equal(got, want) {
		t.Fatalf("file content differs (direct=%v)", of.direct)
	}
	t.Logf("O_DIRECT on %s: %v", filepath.Dir(p), of.direct)
}
