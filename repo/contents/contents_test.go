package contents_test

import (
	"testing"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/contents"
	"github.com/pgward/pgward/repo/repotest"
)

// A backup stored as page deltas needs, through its deltas' bases, the chunks of the backup
// before it; a pack that is gone leaves its chunks kept nowhere, and the index still says
// where they were.
func TestWalkThroughDeltas(t *testing.T) {
	r, _, mem := repotest.NewRepo(t)
	ctx := t.Context()
	w := &repotest.Writer{T: t, R: r}
	first := w.Backup(repotest.Files(0))
	second := w.Backup(repotest.Files(1))
	s, err := contents.Load(ctx, r, func(name string, err error) error { return err })
	if err != nil {
		t.Fatal(err)
	}
	need := func(m *repo.Manifest) map[contents.Key]bool {
		out := map[contents.Key]bool{}
		err := s.Walk(ctx, r, contents.Chunks(m), map[repo.Hash]bool{}, contents.Visitor{
			Piece:   func(k contents.Key) { out[k] = true },
			Missing: func(id repo.Hash) { t.Errorf("chunk %s missing", id) },
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	a, b := need(first), need(second)
	deltas, shared := 0, 0
	for k := range b {
		if k.Kind == repo.KindDelta {
			deltas++
		}
		if a[k] {
			shared++
		}
	}
	for k := range a {
		if k.Kind == contents.Whole && !b[k] {
			t.Errorf("chunk object %s of the first backup is not needed by the second, whose deltas are over it", k.ID)
		}
	}
	if deltas == 0 || shared == 0 {
		t.Fatalf("the second backup needs %d deltas, %d pieces of the first", deltas, shared)
	}

	// A pack deleted: its entries are no longer chosen, and Unplaced names the pack.
	var gone repo.IndexEntry
	for _, e := range s.Chosen {
		gone = e
		break
	}
	if err := mem.Delete(ctx, gone.Pack); err != nil {
		t.Fatal(err)
	}
	s, err = contents.Load(ctx, r, func(name string, err error) error { return err })
	if err != nil {
		t.Fatal(err)
	}
	k := contents.Key{ID: gone.ID, Kind: gone.Kind}
	if _, ok := s.Chosen[k]; ok || s.Unplaced[k].Pack != gone.Pack {
		t.Fatalf("after pack %s went: chosen %v, unplaced %+v", gone.Pack, ok, s.Unplaced[k])
	}
}
