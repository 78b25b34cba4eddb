package verify

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/contents"
)

// Page deltas are checked after the packs holding them were read: each must rebuild the chunk
// its id names. Deltas form chains (a chunk stored over the same range of the backup before,
// up to the repository's depth), so they are rebuilt as a forest: the chunk at the root of a
// chain is read once, and each delta is applied over the chunk its base rebuilt to, one chunk
// hash per delta. Rebuilding each delta from scratch would read and hash the whole chain
// again for every delta in it.

// deltaForest is the page deltas to rebuild, by base.
type deltaForest struct {
	mu       sync.Mutex
	entries  []repo.IndexEntry
	children map[repo.Hash][]repo.IndexEntry
	done     map[repo.Hash]bool
}

// add queues a delta entry read sound from its pack.
func (f *deltaForest) add(e repo.IndexEntry) {
	f.mu.Lock()
	f.entries = append(f.entries, e)
	f.mu.Unlock()
}

// rebuildDeltas rebuilds every queued delta with a pool of workers, one chain root each.
func (v *run) rebuildDeltas(ctx context.Context) error {
	f := &v.deltas
	if len(f.entries) == 0 {
		return nil
	}
	f.children, f.done = map[repo.Hash][]repo.IndexEntry{}, map[repo.Hash]bool{}
	ids := map[repo.Hash]bool{}
	for _, e := range f.entries {
		base := e.Base
		if base == (repo.Hash{}) {
			var err error
			if base, err = v.r.BaseOf(ctx, e); err != nil {
				v.deltaProblem(e, err)
				continue
			}
		}
		f.children[base] = append(f.children[base], e)
		ids[e.ID] = true
	}
	var roots []repo.Hash
	for base := range f.children {
		if !ids[base] {
			roots = append(roots, base)
		}
	}
	slices.SortFunc(roots, func(a, b repo.Hash) int { return strings.Compare(a.String(), b.String()) })
	type scratch struct {
		b    repo.ChunkBuffers
		bufs [][]byte
	}
	err := each(ctx, v.o.Jobs, roots, func() *scratch {
		return &scratch{bufs: make([][]byte, v.r.Config().MaxDeltaDepth+2)}
	}, func(s *scratch, root repo.Hash) { v.rebuildTree(ctx, root, &s.b, s.bufs) })
	if err != nil {
		return err
	}
	// A delta never reached from a root lies on a cycle of bases: damage.
	for _, e := range f.entries {
		if ids[e.ID] && !f.done[e.ID] {
			v.deltaProblem(e, fmt.Errorf("%w: its chain of page deltas never reaches a whole chunk", repo.ErrCorrupt))
		}
	}
	return nil
}

// rebuildTree reads the chunk at a root and rebuilds every delta above it, depth first.
func (v *run) rebuildTree(ctx context.Context, root repo.Hash, b *repo.ChunkBuffers, bufs [][]byte) {
	plain, err := v.r.GetChunk(ctx, root, b)
	if err != nil {
		v.failTree(root, fmt.Errorf("its base chunk %s cannot be read: %w", root, err))
		return
	}
	bufs[0] = append(bufs[0][:0], plain...)
	v.rebuildAbove(ctx, root, bufs[0], 1, b, bufs)
}

func (v *run) rebuildAbove(ctx context.Context, id repo.Hash, plain []byte, depth int, b *repo.ChunkBuffers, bufs [][]byte) {
	for _, e := range v.deltas.children[id] {
		v.deltas.mu.Lock()
		v.deltas.done[e.ID] = true
		v.deltas.mu.Unlock()
		if depth >= len(bufs) {
			v.deltaProblem(e, fmt.Errorf("%w: its chain of page deltas is deeper than %d", repo.ErrCorrupt, v.r.Config().MaxDeltaDepth))
			continue
		}
		out, err := v.r.ApplyDelta(ctx, e, id, plain, bufs[depth], b)
		if err != nil {
			v.deltaProblem(e, err)
			v.failTree(e.ID, fmt.Errorf("it is stored over chunk %s, which does not rebuild", e.ID))
			continue
		}
		bufs[depth] = out
		v.rebuildAbove(ctx, e.ID, out, depth+1, b, bufs)
	}
}

// failTree reports every delta above id as not rebuildable, for why.
func (v *run) failTree(id repo.Hash, why error) {
	for _, e := range v.deltas.children[id] {
		v.deltas.mu.Lock()
		seen := v.deltas.done[e.ID]
		v.deltas.done[e.ID] = true
		v.deltas.mu.Unlock()
		if seen {
			continue
		}
		v.deltaProblem(e, fmt.Errorf("chunk %s cannot be rebuilt from its page delta: %w", e.ID, why))
		v.failTree(e.ID, fmt.Errorf("it is stored over chunk %s, which does not rebuild", e.ID))
	}
}

func (v *run) deltaProblem(e repo.IndexEntry, err error) {
	v.probs.addPieces([]contents.Key{{ID: e.ID, Kind: repo.KindDelta}}, repo.VerifyProblem{Object: e.Pack, Kind: KindDelta, Chunk: e.ID.String(), Error: err.Error()})
}
