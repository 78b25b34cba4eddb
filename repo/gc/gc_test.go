package gc_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/gc"
	"github.com/pgward/pgward/repo/repotest"
	"github.com/pgward/pgward/repo/storagetest"
)

func newRepo(t *testing.T) (*repo.Repo, *storagetest.Faulty, *storagetest.Memory) {
	return repotest.NewRepo(t)
}

type writer = repotest.Writer

var files = repotest.Files

// restorable reads every chunk every remaining manifest names, and compares with what was
// backed up.
func restorable(t *testing.T, r *repo.Repo, want map[string]map[string][]byte) {
	t.Helper()
	ctx := t.Context()
	ids, err := r.BackupIDs(ctx, "main")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		m, err := r.Manifest(ctx, "main", id)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range m.Files {
			var got []byte
			var b repo.ChunkBuffers
			for _, c := range f.Chunks {
				plain, err := r.GetChunk(ctx, c, &b)
				if err != nil {
					t.Fatalf("backup %s, %s: %v", id, f.Path, err)
				}
				got = append(got, plain...)
			}
			if w, ok := want[id]; ok && !bytes.Equal(got, w[f.Path]) {
				t.Fatalf("backup %s, %s: content differs", id, f.Path)
			}
		}
	}
}

// objects lists what the content store holds.
func objects(t *testing.T, st repo.Storage) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, p := range []string{repo.ChunkPrefix, repo.PackPrefix, repo.IndexPrefix} {
		if err := st.List(t.Context(), p, func(o repo.ObjectInfo) error { out[o.Name] = o.Size; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func total(objs map[string]int64) (n int64) {
	for _, s := range objs {
		n += s
	}
	return n
}

func collect(t *testing.T, r *repo.Repo) (*gc.Plan, gc.Stats) {
	t.Helper()
	p, st, err := gc.Collect(t.Context(), r, repo.LockRequest{Purpose: "test"}, gc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p, st
}

// Four backups, the first two removed: the sweep frees what only they used, keeps every
// delta base the last two need (transitively), and a second sweep finds nothing to do.
func TestCollectAfterExpiry(t *testing.T) {
	r, _, _ := newRepo(t)
	ctx := t.Context()
	w := &writer{T: t, R: r}
	want := map[string]map[string][]byte{}
	var ids []string
	for v := range 4 {
		fs := files(v)
		m := w.Backup(fs)
		want[m.ID] = fs
		ids = append(ids, m.ID)
	}
	if p, _ := collect(t, r); !p.Empty() {
		t.Fatalf("a repository without garbage planned %+v", p)
	}
	before := objects(t, r.Storage())
	for _, id := range ids[:2] {
		if err := r.DeleteManifest(ctx, "main", id); err != nil {
			t.Fatal(err)
		}
	}
	p, st := collect(t, r)
	if st.DeletedPacks+st.DeletedChunks == 0 && st.RepackedPacks == 0 {
		t.Fatalf("nothing collected after two backups went: %+v", st)
	}
	if p.MissingCount != 0 {
		t.Fatalf("%d chunks missing", p.MissingCount)
	}
	after := objects(t, r.Storage())
	t.Logf("stored %d bytes in %d objects before, %d in %d after; stats %+v", total(before), len(before), total(after), len(after), st)
	if total(after) >= total(before) {
		t.Fatalf("stored bytes did not shrink: %d → %d", total(before), total(after))
	}
	restorable(t, r, want)
	// Reopened (a fresh index): still restorable, and nothing more to collect.
	if p, _ := collect(t, r); !p.Empty() {
		t.Fatalf("second sweep planned dead chunks %d, dead packs %d, repack %d, reindex %v, leftovers %d", len(p.DeadChunks), len(p.DeadPacks), len(p.Repack), p.Reindex, len(p.Leftovers))
	}
	r2, err := repo.Open(ctx, r.Storage(), nil)
	if err != nil {
		t.Fatal(err)
	}
	restorable(t, r2, want)
}

// What a killed backup wrote (chunks, packs, an index, no manifest) and the temp files of
// its interrupted writes are collected by the next sweep, whatever their age.
func TestCollectKilledWriter(t *testing.T) {
	r, _, mem := newRepo(t)
	w := &writer{T: t, R: r}
	m := w.Backup(files(0))
	want := map[string]map[string][]byte{m.ID: files(0)}
	before := objects(t, r.Storage())
	// A backup that never committed: chunks and packs stored, no manifest.
	orphan := &writer{T: t, R: r, Prev: w.Prev, N: 50}
	om := orphan.Backup(files(5))
	if err := r.DeleteManifest(t.Context(), "main", om.ID); err != nil {
		t.Fatal(err)
	}
	mem.AddLeftover("chunks/ab/abcd", 1000, time.Now())
	mem.AddLeftover("clusters/main/wal/0000000100000000/000000010000000000000009", 500, time.Now())
	mem.AddLeftover("clusters/main/wal/0000000100000000/000000010000000000000003", 700, time.Now().Add(-2*time.Hour))
	p, st := collect(t, r)
	if st.LeftoversRemoved != 2 || len(p.Leftovers) != 2 {
		t.Fatalf("leftovers removed %d (%+v); want the chunk's and the old WAL one", st.LeftoversRemoved, p.Leftovers)
	}
	var left []repo.Leftover
	mem.Leftovers(t.Context(), "", func(l repo.Leftover) error { left = append(left, l); return nil })
	if len(left) != 1 || left[0].Size != 500 {
		t.Fatalf("left %+v; want the fresh WAL leftover of a running archive-push", left)
	}
	after := objects(t, r.Storage())
	for name := range after {
		if _, ok := before[name]; !ok && name[:6] != "index/" {
			t.Errorf("%s of the killed backup survived", name)
		}
	}
	restorable(t, r, want)
}

// The crash test: a collection killed at each of its deletions (and at the repack's and the
// index's writes) leaves a repository from which every remaining backup restores, and a
// rerun converges on the state an uninterrupted collection reaches.
func TestCollectKilledAtEveryStep(t *testing.T) {
	build := func(t *testing.T) (*repo.Repo, *storagetest.Faulty, map[string]map[string][]byte) {
		r, f, _ := newRepo(t)
		w := &writer{T: t, R: r}
		want := map[string]map[string][]byte{}
		var ids []string
		for v := range 5 {
			fs := files(v)
			m := w.Backup(fs)
			want[m.ID] = fs
			ids = append(ids, m.ID)
		}
		for _, id := range ids[:3] {
			if err := r.DeleteManifest(t.Context(), "main", id); err != nil {
				t.Fatal(err)
			}
			delete(want, id)
		}
		return r, f, want
	}
	// The uninterrupted run: how many writes and deletions it makes, and where it ends. Its
	// last deletion is its lock's, after the work.
	r0, f0, _ := build(t)
	puts0, dels0 := f0.Calls(storagetest.OpPutDeferred), f0.Calls(storagetest.OpDelete)
	collect(t, r0)
	puts := f0.Calls(storagetest.OpPutDeferred) - puts0
	dels := f0.Calls(storagetest.OpDelete) - dels0
	final := objects(t, r0.Storage())
	if dels < 3 {
		t.Fatalf("the uninterrupted sweep made only %d deletions", dels)
	}
	t.Logf("uninterrupted sweep: %d writes, %d deletions, ends with %d objects", puts, dels, len(final))
	crash := func(t *testing.T, op storagetest.Op, at int) {
		r, f, want := build(t)
		f.Set(storagetest.Fault{Op: op, Skip: at - 1, Times: 1, Err: storagetest.ErrInjected})
		if _, _, err := gc.Collect(t.Context(), r, repo.LockRequest{Purpose: "test"}, gc.Options{}); err == nil {
			t.Fatalf("a collection with %s #%d failing succeeded", op, at)
		}
		f.Set()
		restorable(t, r, want)
		r2, err := repo.Open(t.Context(), r.Storage(), nil)
		if err != nil {
			t.Fatal(err)
		}
		restorable(t, r2, want)
		collect(t, r2)
		restorable(t, r2, want)
		if p, _ := collect(t, r2); !p.Empty() {
			t.Fatalf("after the rerun another sweep still plans work: %+v", p)
		}
		got := objects(t, r2.Storage())
		if len(got) != len(final) {
			// Pack and index names are random; the counts and the bytes must agree.
			t.Fatalf("rerun ends with %d objects, the uninterrupted run with %d", len(got), len(final))
		}
	}
	for at := 1; at < dels; at++ {
		t.Run(fmt.Sprintf("delete-%d", at), func(t *testing.T) { crash(t, storagetest.OpDelete, at) })
	}
	for at := 1; at <= puts; at++ {
		t.Run(fmt.Sprintf("write-%d", at), func(t *testing.T) { crash(t, storagetest.OpPutDeferred, at) })
	}
}
