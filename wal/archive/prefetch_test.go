package archive

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pgward/pgward/compress"
	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/local"
)

// archiveOf returns a repository holding n fake segments (numbers 1..n) and
// their names and contents.
func archiveOf(t *testing.T, n int) (*repo.Repo, []string, [][]byte) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := local.Create(filepath.Join(dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(ctx, st, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const sysid = 7312345678901234567
	if err := r.EnsureIdentity(ctx, repo.Identity{Cluster: "main", SystemIdentifier: strconv.FormatUint(sysid, 10), PGMajor: 15, WALSegSize: benchSegSize}); err != nil {
		t.Fatal(err)
	}
	codec, _ := compress.Parse("zstd:1")
	var names []string
	var datas [][]byte
	for i := 1; i <= n; i++ {
		name, data := fakeSegment(t, uint64(i), sysid)
		if _, err := r.PutWAL(ctx, "main", name, data, codec); err != nil {
			t.Fatal(err)
		}
		names, datas = append(names, name), append(datas, data)
	}
	return r, names, datas
}

// A spool filled before the operating system restarted may hold files that
// were renamed into place but never written back: it is emptied, never served.
func TestSpoolFromEarlierBootNotServed(t *testing.T) {
	if bootID() == "" {
		t.Skip("no boot id on this system")
	}
	r, names, datas := archiveOf(t, 1)
	repos := []*repo.Repo{r}
	spool := OpenSpool(t.TempDir(), "main", repos)
	if spool == nil {
		t.Fatal("spool not usable")
	}
	os.WriteFile(filepath.Join(spool.getDir(), ".boot"), []byte("an earlier boot"), 0o600)
	os.WriteFile(filepath.Join(spool.getDir(), names[0]), make([]byte, benchSegSize), 0o600)
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	f, found, err := Get(context.Background(), repos, names[0], dest, GetOptions{Cluster: "main", Spool: spool})
	if err != nil || !found {
		t.Fatal(found, err)
	}
	if f.FromSpool {
		t.Fatal("served a segment prefetched before the last boot")
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, datas[0]) {
		t.Fatal("wrong content")
	}
	if b, _ := os.ReadFile(filepath.Join(spool.getDir(), ".boot")); string(b) != bootID() {
		t.Fatalf("boot id not recorded: %q", b)
	}
}

// One prefetcher follows recovery: it keeps the window after the segment last
// asked for filled, and exits at the end of the archive.
func TestPrefetchFollowsRecovery(t *testing.T) {
	r, names, datas := archiveOf(t, 9)
	repos := []*repo.Repo{r}
	spool := OpenSpool(t.TempDir(), "main", repos)
	o := GetOptions{Cluster: "main", Spool: spool}
	ctx := context.Background()
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	get := func(i int) Fetched {
		t.Helper()
		f, found, err := Get(ctx, repos, names[i], dest, o)
		if err != nil || !found {
			t.Fatal(names[i], found, err)
		}
		if got, _ := os.ReadFile(dest); !bytes.Equal(got, datas[i]) {
			t.Fatalf("%s: wrong content", names[i])
		}
		return f
	}
	waitFor := func(i int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := os.Stat(filepath.Join(spool.getDir(), names[i])); err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never prefetched", names[i])
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	f := get(0)
	if f.FromSpool || f.SegSize != benchSegSize {
		t.Fatalf("first get: %+v", f)
	}
	done := make(chan error, 1)
	go func() { done <- Prefetch(ctx, repos, names[0], 0, 3, o) }() // 0: the size the repository records
	waitFor(3)
	if _, err := os.Stat(filepath.Join(spool.getDir(), names[4])); err == nil {
		t.Fatal("prefetched beyond the window")
	}
	// Recovery moves on: the same prefetcher follows.
	for i := 1; i <= 4; i++ {
		waitFor(i)
		if !get(i).FromSpool {
			t.Fatalf("%s not served from the spool", names[i])
		}
	}
	waitFor(7)
	for i := 5; i <= 8; i++ {
		waitFor(i)
		if !get(i).FromSpool {
			t.Fatalf("%s not served from the spool", names[i])
		}
	}
	// Nothing after the last segment: the prefetcher exits on its own.
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(prefetchIdle / 2):
		t.Fatal("prefetcher still running at the end of the archive")
	}
	if spool.PrefetcherRunning() {
		t.Fatal("lock still held")
	}
	// The process exits when Prefetch returns: no fetch may be announced any more, or the
	// next archive-get of that segment (the next restore's end of WAL) waits for it.
	if marks, _ := filepath.Glob(filepath.Join(spool.getDir(), ".inflight-*")); len(marks) > 0 {
		t.Errorf("markers left after the prefetcher ended: %v", marks)
	}
}
