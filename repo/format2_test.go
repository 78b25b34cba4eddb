package repo_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgward/pgward/compress"
	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/local"
	"github.com/pgward/pgward/repo/storagetest"
)

func newRepo2(t *testing.T, pass []byte) (*repo.Repo, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	st, err := local.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(context.Background(), st, repo.InitOptions{Passphrase: pass, ChunkSize: 64 << 10, PackThreshold: 32 << 10, PackSize: 20 << 10, MaxDeltaDepth: 3})
	if err != nil {
		t.Fatal(err)
	}
	return r, dir
}

func reopen(t *testing.T, dir string, pass []byte) *repo.Repo {
	t.Helper()
	st, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var src func() ([]byte, error)
	if pass != nil {
		src = func() ([]byte, error) { return pass, nil }
	}
	r, err := repo.Open(context.Background(), st, src)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A chain of page deltas over a whole chunk, small chunks in packs, page digests:
// everything reads back from a fresh open, verified, and a delta past the
// repository's depth is refused by the writer's own check (Depth).
func TestPacksAndDeltas(t *testing.T) {
	for _, pass := range [][]byte{nil, []byte("pw")} {
		testPacksAndDeltas(t, pass)
	}
}

func testPacksAndDeltas(t *testing.T, pass []byte) {
	ctx := context.Background()
	r, dir := newRepo2(t, pass)
	codec, _ := compress.Parse("zstd:1")
	rng := rand.New(rand.NewPCG(1, 2))
	page := func(b []byte, i int) { // fill page i with fresh bytes
		for j := i * repo.PageSize; j < (i+1)*repo.PageSize; j++ {
			b[j] = byte(rng.Uint32())
		}
	}
	base := make([]byte, 64<<10)
	for i := range 8 {
		page(base, i)
	}
	var b repo.ChunkBuffers
	baseID := r.ContentHash(base)
	if _, err := r.PutChunk(ctx, baseID, base, codec, &b); err != nil {
		t.Fatal(err)
	}
	p := r.NewPacker()
	add := func(e repo.IndexEntry, sealed func() ([]byte, error)) {
		t.Helper()
		obj, err := sealed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Add(ctx, e, obj); err != nil {
			t.Fatal(err)
		}
	}
	versions := [][]byte{base}
	ids := []repo.Hash{baseID}
	prev := base
	prevID := baseID
	add(repo.IndexEntry{ID: prevID, Kind: repo.KindDigest}, func() ([]byte, error) { return r.SealDigest(repo.DigestOf(prevID, prev), codec, &b) })
	for v := 1; v <= 3; v++ {
		next := append([]byte(nil), prev...)
		page(next, v)
		page(next, 7)
		id := r.ContentHash(next)
		d := repo.DigestOf(prevID, prev)
		pages := repo.ChangedPages(next, d)
		if len(pages) != 2 || pages[0] != uint32(v) || pages[1] != 7 {
			t.Fatalf("version %d: changed pages %v, want [%d 7]", v, pages, v)
		}
		add(repo.IndexEntry{ID: id, Kind: repo.KindDelta, Depth: uint8(v), Base: prevID}, func() ([]byte, error) { return r.SealDelta(prevID, next, pages, codec, &b) })
		versions, ids, prev, prevID = append(versions, next), append(ids, id), next, id
	}
	small := []byte(strings.Repeat("PG_VERSION 15\n", 10))
	smallID := r.ContentHash(small)
	add(repo.IndexEntry{ID: smallID, Kind: repo.KindChunk}, func() ([]byte, error) { return r.SealChunk(smallID, small, codec, &b) })
	if _, err := p.Finish(ctx); err != nil {
		t.Fatal(err)
	}

	r2 := reopen(t, dir, pass)
	var rb repo.ChunkBuffers
	rb.UsePlain(make([]byte, 0, 64<<10))
	for i, id := range ids {
		got, err := r2.GetChunk(ctx, id, &rb)
		if err != nil || !bytes.Equal(got, versions[i]) {
			t.Fatalf("version %d: %d bytes, %v", i, len(got), err)
		}
		if depth, _ := r2.Depth(ctx, id); depth != i {
			t.Errorf("version %d: depth %d", i, depth)
		}
		if ok, err := r2.HasChunk(ctx, id); !ok || err != nil {
			t.Errorf("version %d: HasChunk %v %v", i, ok, err)
		}
	}
	if got, err := r2.GetChunk(ctx, smallID, &rb); err != nil || !bytes.Equal(got, small) {
		t.Fatalf("packed chunk: %q, %v", got, err)
	}
	if d, ok, err := r2.GetDigest(ctx, baseID, &rb); !ok || err != nil || len(d.Pages) != 8 {
		t.Fatalf("digest: %v %v %+v", ok, err, d)
	}
	packs, _ := filepath.Glob(filepath.Join(dir, "packs", "*", "*"))
	if len(packs) < 2 {
		t.Errorf("%d packs, want several (pack size 20 KiB)", len(packs))
	}

	// A flipped byte in any pack is found and named, never used.
	for _, pk := range packs {
		data, _ := os.ReadFile(pk)
		bad := append([]byte(nil), data...)
		bad[len(bad)/2] ^= 0x20
		os.Chmod(pk, 0o600)
		os.WriteFile(pk, bad, 0o600)
		r3 := reopen(t, dir, pass)
		failed := false
		for _, id := range append(ids[1:], smallID) {
			if _, err := r3.GetChunk(ctx, id, &rb); err != nil {
				if !errors.Is(err, repo.ErrCorrupt) || !strings.Contains(err.Error(), filepath.Base(pk)) {
					t.Errorf("flipped byte in %s: %v", filepath.Base(pk), err)
				}
				failed = true
			}
		}
		if !failed {
			t.Errorf("a flipped byte in pack %s went unnoticed", filepath.Base(pk))
		}
		os.WriteFile(pk, data, 0o600)
	}
	idx, _ := filepath.Glob(filepath.Join(dir, "index", "*", "*"))
	data, _ := os.ReadFile(idx[0])
	data[len(data)/2] ^= 0x20
	os.Chmod(idx[0], 0o600)
	os.WriteFile(idx[0], data, 0o600)
	if _, err := reopen(t, dir, pass).GetChunk(ctx, smallID, &rb); err == nil || !strings.Contains(err.Error(), "index") {
		t.Errorf("a flipped byte in the index: %v", err)
	}
}

// A format-1 repository keeps format-1 objects until it is upgraded; after the
// upgrade its old chunks still read, new writes pack, and the old config is gone.
func TestUpgrade(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "repo")
	st, err := local.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(ctx, st, repo.InitOptions{Format: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.NewPacker() != nil {
		t.Fatal("a format-1 repository got a packer")
	}
	codec, _ := compress.Parse("zstd:1")
	var b repo.ChunkBuffers
	old := []byte("a chunk of the format-1 era")
	oldID := r.ContentHash(old)
	if _, err := r.PutChunk(ctx, oldID, old, codec, &b); err != nil {
		t.Fatal(err)
	}
	from, to, err := repo.Upgrade(ctx, st, nil)
	if err != nil || from != 1 || to != 2 {
		t.Fatalf("upgrade: %d → %d, %v", from, to, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "config")); !os.IsNotExist(err) {
		t.Error("the format-1 config is still there")
	}
	r2 := reopen(t, dir, nil)
	if r2.Config().Format != 2 || r2.NewPacker() == nil || r2.Config().ID != r.Config().ID {
		t.Fatalf("after the upgrade: %+v", r2.Config())
	}
	if got, err := r2.GetChunk(ctx, oldID, &b); err != nil || !bytes.Equal(got, old) {
		t.Fatalf("a format-1 chunk after the upgrade: %q, %v", got, err)
	}
	if _, to, err := repo.Upgrade(ctx, st, nil); err != nil || to != 2 {
		t.Errorf("upgrading again: %d, %v", to, err)
	}
}

// A chunk rebuilt from a page delta is checked against the chunk's page digest
// when one is stored: a digest that does not describe the rebuilt bytes refuses
// the chunk, one that does lets it through (the keyed hash is the check without).
func TestRebuiltChunkCheckedByDigest(t *testing.T) {
	ctx := context.Background()
	codec, _ := compress.Parse("zstd:1")
	base := bytes.Repeat([]byte{1}, 64<<10)
	next := append([]byte(nil), base...)
	copy(next[3*repo.PageSize:], bytes.Repeat([]byte{2}, repo.PageSize))
	other := append([]byte(nil), next...)
	other[5*repo.PageSize] = 3
	for name, digestOf := range map[string][]byte{"right digest": next, "wrong digest": other} {
		r, dir := newRepo2(t, nil)
		var b repo.ChunkBuffers
		baseID, nextID := r.ContentHash(base), r.ContentHash(next)
		if _, err := r.PutChunk(ctx, baseID, base, codec, &b); err != nil {
			t.Fatal(err)
		}
		p := r.NewPacker()
		pages := repo.ChangedPages(next, repo.DigestOf(baseID, base))
		for _, add := range []struct {
			e    repo.IndexEntry
			seal func() ([]byte, error)
		}{
			{repo.IndexEntry{ID: nextID, Kind: repo.KindDelta, Depth: 1, Base: baseID}, func() ([]byte, error) { return r.SealDelta(baseID, next, pages, codec, &b) }},
			{repo.IndexEntry{ID: nextID, Kind: repo.KindDigest}, func() ([]byte, error) { return r.SealDigest(repo.DigestOf(nextID, digestOf), codec, &b) }},
		} {
			obj, err := add.seal()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.Add(ctx, add.e, obj); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := p.Finish(ctx); err != nil {
			t.Fatal(err)
		}
		got, err := reopen(t, dir, nil).GetChunk(ctx, nextID, &b)
		switch name {
		case "right digest":
			if err != nil || !bytes.Equal(got, next) {
				t.Errorf("%s: %d bytes, %v", name, len(got), err)
			}
		case "wrong digest":
			if !errors.Is(err, repo.ErrCorrupt) || !strings.Contains(err.Error(), "does not match its id") {
				t.Errorf("%s: %v, want the rebuilt chunk refused", name, err)
			}
		}
	}
}

// A checkpoint in the middle of a packer's run, with adds going on meanwhile (as a
// backup's writers do while it checkpoints at the start of the WAL): the checkpoint and
// Finish write one index object each, together they place every entry, each entry once,
// and everything reads back from a fresh open.
func TestPackerCheckpoint(t *testing.T) {
	ctx := context.Background()
	r, dir := newRepo2(t, nil)
	codec, _ := compress.Parse("zstd:1")
	p := r.NewPacker()
	add := func(i int) {
		var b repo.ChunkBuffers
		data := []byte(strings.Repeat(string(rune('a'+i%26)), 1000+i))
		id := r.ContentHash(data)
		obj, err := r.SealChunk(id, data, codec, &b)
		if err != nil {
			t.Error(err)
			return
		}
		if _, err := p.Add(ctx, repo.IndexEntry{ID: id, Kind: repo.KindChunk}, append([]byte(nil), obj...)); err != nil {
			t.Error(err)
		}
	}
	for i := range 60 {
		add(i)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 60; i < 120; i++ {
			add(i)
		}
	}()
	if _, err := p.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	<-done
	for i := 120; i < 130; i++ {
		add(i)
	}
	if _, err := p.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	names, err := r.IndexObjects(ctx)
	if err != nil || len(names) != 2 {
		t.Fatalf("index objects %v, %v; want two", names, err)
	}
	placed := map[repo.Hash]int{}
	for _, n := range names {
		entries, err := r.ReadIndex(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			placed[e.ID]++
		}
	}
	r2 := reopen(t, dir, nil)
	var rb repo.ChunkBuffers
	for i := range 130 {
		data := []byte(strings.Repeat(string(rune('a'+i%26)), 1000+i))
		id := r.ContentHash(data)
		if placed[id] != 1 {
			t.Errorf("entry %d is in %d index objects", i, placed[id])
		}
		if got, err := r2.GetChunk(ctx, id, &rb); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("entry %d: %d bytes, %v", i, len(got), err)
		}
	}
}

// An index object is stored only once the packs it names are durable: when the
// SyncDeferred between them fails, Checkpoint fails and writes no index, so no crash
// can leave an index naming a pack whose name was lost.
func TestCheckpointSyncsBeforeIndex(t *testing.T) {
	ctx := t.Context()
	f := storagetest.NewFaulty(storagetest.NewMemory())
	r, err := repo.Init(ctx, f, repo.InitOptions{ChunkSize: 64 << 10, PackThreshold: 32 << 10, PackSize: 20 << 10})
	if err != nil {
		t.Fatal(err)
	}
	codec, _ := compress.Parse("zstd:1")
	p := r.NewPacker()
	var b repo.ChunkBuffers
	data := []byte(strings.Repeat("pg", 500))
	id := r.ContentHash(data)
	obj, err := r.SealChunk(id, data, codec, &b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Add(ctx, repo.IndexEntry{ID: id, Kind: repo.KindChunk}, obj); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	f.Set(storagetest.Fault{Op: storagetest.OpSyncDeferred, Err: boom})
	if _, err := p.Checkpoint(ctx); !errors.Is(err, boom) {
		t.Fatalf("Checkpoint with a failing SyncDeferred: %v", err)
	}
	if names, err := r.IndexObjects(ctx); err != nil || len(names) != 0 {
		t.Fatalf("index objects %v, %v; want none", names, err)
	}
	if f.Calls(storagetest.OpPutDeferred) == 0 {
		t.Fatal("the pack was not written")
	}
}
