package verify_test

import (
	"bytes"
	"context"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgward/pgward/crypt"
	"github.com/pgward/pgward/engine/verify"
	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/contents"
	"github.com/pgward/pgward/repo/gc"
	"github.com/pgward/pgward/repo/repotest"
	"github.com/pgward/pgward/repo/storagetest"
)

// recorder is a storage that records the names of the objects read from it.
type recorder struct {
	repo.Storage
	mu    sync.Mutex
	reads []string
}

func (c *recorder) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	c.note(name)
	return c.Storage.Get(ctx, name)
}

func (c *recorder) GetRange(ctx context.Context, name string, off, n int64) (io.ReadCloser, error) {
	c.note(name)
	return c.Storage.GetRange(ctx, name, off, n)
}

func (c *recorder) note(name string) {
	c.mu.Lock()
	c.reads = append(c.reads, name)
	c.mu.Unlock()
}

// take returns the distinct names read since the last take, under the given prefixes.
func (c *recorder) take(prefixes ...string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, n := range c.reads {
		for _, p := range prefixes {
			if strings.HasPrefix(n, p) && !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	c.reads = nil
	slices.Sort(out)
	return out
}

// fixture is a repository with four backups of cluster main (packs, whole chunks, page
// deltas, WAL, summaries) and a pin, and a second handle on it whose reads are recorded.
type fixture struct {
	w   *repotest.Writer
	mem *storagetest.Memory
	rec *recorder
	r   *repo.Repo // over rec
	ids []string
}

func newFixture(t *testing.T, backups int) *fixture {
	t.Helper()
	r, _, mem := repotest.NewRepo(t)
	f := &fixture{w: &repotest.Writer{T: t, R: r}, mem: mem, rec: &recorder{Storage: mem}}
	for v := range backups {
		f.ids = append(f.ids, f.w.Backup(repotest.Files(v)).ID)
	}
	if _, err := r.PinBackup(t.Context(), "main", f.ids[0], "the first"); err != nil {
		t.Fatal(err)
	}
	var err error
	if f.r, err = repo.Open(t.Context(), f.rec, nil); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) verify(t *testing.T, o verify.Options) *verify.Result {
	t.Helper()
	if o.Cluster == "" {
		o.Cluster = "main"
	}
	res, err := verify.Run(t.Context(), f.r, o)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestSoundRepository(t *testing.T) {
	f := newFixture(t, 4)
	for _, o := range []verify.Options{
		{},
		{WAL: true},
		{Mode: verify.ReadData},
		{Backup: "latest", Mode: verify.ReadData},
		{All: true, Mode: verify.ReadData},
	} {
		res := f.verify(t, o)
		if !res.OK || len(res.Problems) != 0 {
			t.Fatalf("%+v: problems in a sound repository: %+v", o, res.Problems)
		}
		want := 4
		if o.Backup != "" {
			want = 1
		}
		if res.Counts.Backups != want || res.Counts.Chunks == 0 || res.Counts.WALSegments != want {
			t.Errorf("%+v: counts %+v", o, res.Counts)
		}
		if o.Mode == verify.ReadData && (res.Counts.ObjectsRead != res.Counts.Objects || res.BytesRead == 0) {
			t.Errorf("%+v: read %d of %d objects, %d bytes", o, res.Counts.ObjectsRead, res.Counts.Objects, res.BytesRead)
		}
	}
	last, err := f.r.LastVerifyRun(t.Context())
	if err != nil || last == nil || !last.OK || last.Mode != string(verify.ReadData) || !strings.Contains(last.Scope, "every cluster") {
		t.Fatalf("last run recorded: %+v, %v", last, err)
	}
}

// objectsOf lists a repository's objects under prefix.
func objectsOf(t *testing.T, st repo.Storage, prefix string) []string {
	t.Helper()
	var out []string
	if err := st.List(t.Context(), prefix, func(o repo.ObjectInfo) error { out = append(out, o.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// rewrite replaces an object's bytes (objects are written once: delete, then put).
func rewrite(t *testing.T, st repo.Storage, name string, change func([]byte) []byte) {
	t.Helper()
	rc, err := st.Get(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(rc)
	rc.Close()
	data = change(bytes.Clone(data))
	if err := st.Delete(t.Context(), name); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(t.Context(), name, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
}

func flipAt(off int) func([]byte) []byte {
	return func(b []byte) []byte {
		if off < 0 {
			off = len(b) / 2
		}
		b[off] ^= 0x40
		return b
	}
}

// entryOf finds a chosen pack entry of the given kind.
func entryOf(t *testing.T, r *repo.Repo, kind uint8) repo.IndexEntry {
	t.Helper()
	s, err := contents.Load(t.Context(), r, func(string, error) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	var es []repo.IndexEntry
	for k, e := range s.Chosen {
		if k.Kind == kind {
			es = append(es, e)
		}
	}
	if len(es) == 0 {
		t.Fatalf("no entry of kind %d", kind)
	}
	slices.SortFunc(es, func(a, b repo.IndexEntry) int { return strings.Compare(a.ID.String(), b.ID.String()) })
	return es[0]
}

// Every kind of damage is found and named, with the backups it hurts.
func TestFindsDamage(t *testing.T) {
	type damage struct {
		name   string
		do     func(t *testing.T, f *fixture) (object string)
		kind   string
		backup bool // some backup must be named
	}
	firstOf := func(t *testing.T, f *fixture, prefix string) string {
		objs := objectsOf(t, f.mem, prefix)
		if len(objs) == 0 {
			t.Fatalf("nothing under %s", prefix)
		}
		return objs[0]
	}
	flip := func(prefix string) func(t *testing.T, f *fixture) string {
		return func(t *testing.T, f *fixture) string {
			name := firstOf(t, f, prefix)
			rewrite(t, f.mem, name, flipAt(-1))
			return name
		}
	}
	cases := []damage{
		{"whole chunk", flip(repo.ChunkPrefix), verify.KindChunk, true},
		{"pack entry", func(t *testing.T, f *fixture) string {
			e := entryOf(t, f.r, repo.KindChunk)
			rewrite(t, f.mem, e.Pack, flipAt(int(e.Offset+e.Length/2)))
			return e.Pack
		}, verify.KindPackEntry, true},
		{"page delta", func(t *testing.T, f *fixture) string {
			e := entryOf(t, f.r, repo.KindDelta)
			rewrite(t, f.mem, e.Pack, flipAt(int(e.Offset+e.Length-3)))
			return e.Pack
		}, verify.KindPackEntry, true},
		{"index", flip(repo.IndexPrefix), verify.KindIndex, false},
		{"manifest", flip("clusters/main/backups/"), verify.KindManifest, true},
		{"WAL segment", flip("clusters/main/wal/"), verify.KindWAL, true},
		{"WAL summary", flip("clusters/main/wal-summary/"), verify.KindWALSummary, false},
		{"pin", flip("clusters/main/pins/"), verify.KindPin, true},
		{"identity", flip("clusters/main/identity"), verify.KindIdentity, false},
		{"deleted chunk", func(t *testing.T, f *fixture) string {
			name := firstOf(t, f, repo.ChunkPrefix)
			if err := f.mem.Delete(t.Context(), name); err != nil {
				t.Fatal(err)
			}
			return name
		}, verify.KindMissingChunk, true},
		{"deleted pack", func(t *testing.T, f *fixture) string {
			e := entryOf(t, f.r, repo.KindChunk)
			if err := f.mem.Delete(t.Context(), e.Pack); err != nil {
				t.Fatal(err)
			}
			return e.Pack
		}, verify.KindMissingChunk, true},
		{"deleted WAL segment", func(t *testing.T, f *fixture) string {
			names := objectsOf(t, f.mem, "clusters/main/wal/")
			if err := f.mem.Delete(t.Context(), names[1]); err != nil {
				t.Fatal(err)
			}
			return names[1]
		}, verify.KindWALGap, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, 4)
			object := c.do(t, f)
			res := f.verify(t, verify.Options{All: true, Mode: verify.ReadData})
			if res.OK {
				t.Fatalf("verify passed a repository with a damaged %s", c.name)
			}
			var found *repo.VerifyProblem
			for i, p := range res.Problems {
				if p.Kind == c.kind && p.Object == object {
					found = &res.Problems[i]
				}
			}
			if found == nil {
				t.Fatalf("no %s problem names %s: %+v", c.kind, object, res.Problems)
			}
			if c.backup && len(found.Backups) == 0 {
				t.Errorf("the problem names no backup: %+v", found)
			}
			t.Logf("%s: %d problem(s), e.g. %s %s: %s (backups %v)", c.name, len(res.Problems), found.Kind, found.Object, found.Error, found.Backups)
			// The structure check alone finds what is missing.
			if c.kind == verify.KindMissingChunk || c.kind == verify.KindManifest || c.kind == verify.KindIndex {
				if f.verify(t, verify.Options{}).OK {
					t.Errorf("verify without --read-data passed a repository with a %s", c.name)
				}
			}
		})
	}
}

// A WAL segment a backup needs to reach consistency, missing from the archive and not in the
// backup, is named with the backup.
func TestMissingBackupWAL(t *testing.T) {
	f := newFixture(t, 2)
	names := objectsOf(t, f.mem, "clusters/main/wal/")
	last := names[len(names)-1]
	if err := f.mem.Delete(t.Context(), last); err != nil {
		t.Fatal(err)
	}
	res := f.verify(t, verify.Options{})
	if res.OK || len(res.Problems) != 1 || res.Problems[0].Kind != verify.KindMissingWAL || res.Problems[0].Object != last ||
		!slices.Equal(res.Problems[0].Backups, []string{"main/" + f.ids[1]}) {
		t.Fatalf("problems %+v, want one missing-wal of %s for backup %s", res.Problems, last, f.ids[1])
	}
}

// The ledger makes a --read-data-subset 0% run read only what was never verified, and a run
// after the verification period read everything again.
func TestIncremental(t *testing.T) {
	f := newFixture(t, 3)
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	subset := verify.Options{Mode: verify.ReadSubset, Subset: 0, Now: clock}
	data := []string{repo.ChunkPrefix, repo.PackPrefix, "clusters/main/wal/", "clusters/main/wal-summary/", "clusters/main/pins/"}

	first := f.verify(t, subset)
	read1 := f.rec.take(data...)
	if !first.OK || first.Counts.ObjectsRead != first.Counts.Objects || first.Counts.Objects == 0 || len(read1) != first.Counts.Objects {
		t.Fatalf("first run read %d of %d objects (%d distinct names): %+v", first.Counts.ObjectsRead, first.Counts.Objects, len(read1), first.Problems)
	}

	now = now.Add(time.Hour)
	second := f.verify(t, subset)
	if read := f.rec.take(data...); second.Counts.ObjectsRead != 0 || len(read) != 0 || second.Counts.ObjectsSkipped != first.Counts.Objects {
		t.Fatalf("second run read %d objects (%v), skipped %d", second.Counts.ObjectsRead, read, second.Counts.ObjectsSkipped)
	}

	// A new backup: only its objects are read (and, to rebuild its page deltas, their bases).
	before := map[string]bool{}
	for _, p := range data {
		for _, n := range objectsOf(t, f.mem, p) {
			before[n] = true
		}
	}
	f.w.Backup(repotest.Files(3))
	var added []string
	for _, p := range data {
		for _, n := range objectsOf(t, f.mem, p) {
			if !before[n] {
				added = append(added, n)
			}
		}
	}
	now = now.Add(time.Hour)
	third := f.verify(t, subset)
	read := f.rec.take(data...)
	bases := deltaBases(t, f.r, added)
	for _, n := range read {
		if !slices.Contains(added, n) && !bases[n] {
			t.Errorf("the run after a new backup read %s, which is neither new nor the base of a new page delta", n)
		}
	}
	if third.Counts.ObjectsRead != len(added) {
		t.Errorf("the run after a new backup read %d objects; %d are new: %v", third.Counts.ObjectsRead, len(added), added)
	}

	// 50%: nothing is due, so the longest unverified objects are read until half the bytes.
	now = now.Add(time.Hour)
	half := f.verify(t, verify.Options{Mode: verify.ReadSubset, Subset: 50, Now: clock})
	if half.Counts.ObjectsRead == 0 || half.Counts.ObjectsRead == half.Counts.Objects {
		t.Errorf("a 50%% subset read %d of %d objects", half.Counts.ObjectsRead, half.Counts.Objects)
	}

	// Past the period every object is due again.
	now = now.Add(verify.DefaultPeriod + time.Minute)
	late := f.verify(t, subset)
	if late.Counts.ObjectsRead != late.Counts.Objects {
		t.Errorf("after the verification period a run read %d of %d objects", late.Counts.ObjectsRead, late.Counts.Objects)
	}
	f.rec.take()
}

// deltaBases returns the objects read to rebuild the page deltas stored in the given packs:
// the objects of their bases, transitively.
func deltaBases(t *testing.T, r *repo.Repo, packs []string) map[string]bool {
	t.Helper()
	s, err := contents.Load(t.Context(), r, func(string, error) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	var ids []repo.Hash
	for k, e := range s.Chosen {
		if k.Kind == repo.KindDelta && slices.Contains(packs, e.Pack) {
			ids = append(ids, e.Base)
		}
	}
	out := map[string]bool{}
	err = s.Walk(t.Context(), r, ids, map[repo.Hash]bool{}, contents.Visitor{Piece: func(k contents.Key) { out[s.Object(k)] = true }})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Two runs that overlap lose nothing of each other's ledger, and only the newest 20 run
// results are kept.
func TestLedgerMergeAndRuns(t *testing.T) {
	f := newFixture(t, 2)
	ctx := t.Context()
	if err := f.r.PutLedger(ctx, map[string]int64{"a": 1, "b": 5}); err != nil {
		t.Fatal(err)
	}
	if err := f.r.PutLedger(ctx, map[string]int64{"a": 3, "c": 2}); err != nil {
		t.Fatal(err)
	}
	merged, loaded, err := f.r.LoadLedger(ctx, func(string, error) { t.Fatal("a sound ledger reported damaged") })
	if err != nil || len(loaded) != 2 || merged["a"] != 3 || merged["b"] != 5 || merged["c"] != 2 {
		t.Fatalf("merged %v from %v: %v", merged, loaded, err)
	}
	for range 25 {
		f.verify(t, verify.Options{})
	}
	if runs := objectsOf(t, f.mem, "verify/runs/"); len(runs) != repo.KeepVerifyRuns {
		t.Errorf("%d run results kept, want %d", len(runs), repo.KeepVerifyRuns)
	}
	// A read run merges the ledger objects into one; entries of objects that do not exist in
	// what it listed ("a", "b", "c" are no object names) stay, the ones it read are added.
	f.verify(t, verify.Options{Mode: verify.ReadData})
	merged, loaded, err = f.r.LoadLedger(ctx, func(string, error) {})
	if err != nil || len(loaded) != 1 || merged["b"] != 5 || len(merged) < 10 {
		t.Fatalf("after a run: %d ledger objects, %d entries: %v", len(loaded), len(merged), err)
	}
}

// verify holds the shared repository lock: a garbage collection sweep holding the exclusive
// lock makes it wait, then fail with one sentence.
func TestWaitsForSweep(t *testing.T) {
	f := newFixture(t, 1)
	l, err := f.r.TakeLock(t.Context(), repo.LockRequest{Mode: repo.ModeExclusive, Purpose: "expire"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock(t.Context())
	_, err = verify.Run(t.Context(), f.r, verify.Options{Cluster: "main"})
	if err == nil || !strings.Contains(err.Error(), "expire") {
		t.Fatalf("verify under an exclusive lock: %v", err)
	}
}

// In an encrypted repository every byte is authenticated: a flip anywhere in a WAL segment,
// even in the framing of its long runs of zeros, is found.
func TestEncrypted(t *testing.T) {
	mem := storagetest.NewMemory()
	kdf, err := crypt.DefaultKDFParams()
	if err != nil {
		t.Fatal(err)
	}
	kdf.N = 1 << 14
	r, err := repo.Init(t.Context(), mem, repo.InitOptions{Passphrase: []byte("secret"), KDF: &kdf, ChunkSize: repotest.ChunkSize,
		PackThreshold: 32 << 10, PackSize: 20 << 10, MaxDeltaDepth: 3})
	if err != nil {
		t.Fatal(err)
	}
	w := &repotest.Writer{T: t, R: r}
	for v := range 3 {
		w.Backup(repotest.Files(v))
	}
	if res, err := verify.Run(t.Context(), r, verify.Options{All: true, Mode: verify.ReadData}); err != nil || !res.OK {
		t.Fatalf("a sound encrypted repository: %v %+v", err, res)
	}
	seg := objectsOf(t, mem, "clusters/main/wal/")[0]
	for _, at := range []int{100, 2000, -1} {
		rewrite(t, mem, seg, flipAt(at))
		res, err := verify.Run(t.Context(), r, verify.Options{All: true, Mode: verify.ReadData})
		if err != nil || res.OK || res.Problems[0].Object != seg || res.Problems[0].Kind != verify.KindWAL {
			t.Errorf("flip at %d of %s: %v %+v", at, seg, err, res.Problems)
		}
		rewrite(t, mem, seg, flipAt(at))
	}
}

// After backups are removed and the garbage collected, the repository verifies, and the
// ledger forgets the objects that went.
func TestAfterCollection(t *testing.T) {
	f := newFixture(t, 4)
	ctx := t.Context()
	f.verify(t, verify.Options{All: true, Mode: verify.ReadData})
	for _, id := range f.ids[1:3] {
		if err := f.r.DeleteManifest(ctx, "main", id); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := gc.Collect(ctx, f.r, repo.LockRequest{Purpose: "test"}, gc.Options{}); err != nil {
		t.Fatal(err)
	}
	res := f.verify(t, verify.Options{All: true, Mode: verify.ReadSubset})
	if !res.OK || res.Counts.Backups != 2 {
		t.Fatalf("after a collection: %+v", res)
	}
	ledger, _, err := f.r.LoadLedger(ctx, func(string, error) {})
	if err != nil {
		t.Fatal(err)
	}
	for name := range ledger {
		if _, err := f.mem.Stat(ctx, name); err != nil {
			t.Errorf("the ledger still lists %s: %v", name, err)
		}
	}
}
