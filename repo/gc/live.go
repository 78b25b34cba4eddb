package gc

import (
	"context"
	"fmt"
	"slices"

	"github.com/pgward/pgward/repo"
)

// store is what the content store holds, as listed and indexed at the start of a plan.
type store struct {
	// whole maps the chunks stored as their own object to the object's size.
	whole map[repo.Hash]int64
	// packs maps each pack object to its size.
	packs map[string]int64
	// chosen is the one entry per (id, kind) that counts: the first, in index-name order,
	// whose pack exists.
	chosen map[entryKey]repo.IndexEntry
	// from is the index object (position in indexes) each chosen entry was taken from.
	from map[entryKey]int
	// indexes are the index objects, in name order, and the entries each names.
	indexes []indexObject
}

type entryKey struct {
	id   repo.Hash
	kind uint8
}

type indexObject struct {
	name    string
	size    int64
	entries []repo.IndexEntry
}

// load lists chunks, packs and index objects and reads every index object.
func load(ctx context.Context, r *repo.Repo) (*store, error) {
	s := &store{whole: map[repo.Hash]int64{}, packs: map[string]int64{}, chosen: map[entryKey]repo.IndexEntry{}, from: map[entryKey]int{}}
	st := r.Storage()
	err := st.List(ctx, repo.ChunkPrefix, func(o repo.ObjectInfo) error {
		if id, ok := repo.ParseChunkObjectName(o.Name); ok {
			s.whole[id] = o.Size
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing chunks in %s: %w", st, err)
	}
	if err := st.List(ctx, repo.PackPrefix, func(o repo.ObjectInfo) error { s.packs[o.Name] = o.Size; return nil }); err != nil {
		return nil, fmt.Errorf("listing packs in %s: %w", st, err)
	}
	sizes := map[string]int64{}
	if err := st.List(ctx, repo.IndexPrefix, func(o repo.ObjectInfo) error { sizes[o.Name] = o.Size; return nil }); err != nil {
		return nil, fmt.Errorf("listing the index in %s: %w", st, err)
	}
	names, err := r.IndexObjects(ctx)
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		entries, err := r.ReadIndex(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("%w (an unreadable index object stops garbage collection: what it names is unknown; run 'pgward verify')", err)
		}
		s.indexes = append(s.indexes, indexObject{name: name, size: sizes[name], entries: entries})
	}
	// An entry listed twice (a sweep that stopped between writing the new index and deleting
	// the old) is chosen from the index object with the most entries, which is the merged one a
	// sweep writes: the rerun then keeps the new packs and drops the old, as the first run would
	// have. Ties go by name.
	order := make([]int, len(s.indexes))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return len(s.indexes[b].entries) - len(s.indexes[a].entries) })
	for _, i := range order {
		for _, e := range s.indexes[i].entries {
			k := entryKey{e.ID, e.Kind}
			if _, done := s.chosen[k]; done {
				continue
			}
			if size, ok := s.packs[e.Pack]; ok && int64(e.Offset)+int64(e.Length) <= size {
				s.chosen[k] = e
				s.from[k] = i
			}
		}
	}
	return s, nil
}

// live is the result of marking: the chosen entries and whole objects that are needed.
type live struct {
	entries map[entryKey]bool
	whole   map[repo.Hash]bool
	// missing are chunks a manifest or a delta needs that are stored nowhere: damage, which
	// verify reports; collection goes on (deleting garbage cannot make it worse).
	missing map[repo.Hash]bool
}

// mark computes what the given chunks need: each chunk's whole object and packed entry,
// the base of its page delta (transitively), and its page digest.
func (s *store) mark(ctx context.Context, r *repo.Repo, roots map[repo.Hash]bool) (*live, error) {
	l := &live{entries: map[entryKey]bool{}, whole: map[repo.Hash]bool{}, missing: map[repo.Hash]bool{}}
	stack := make([]repo.Hash, 0, len(roots))
	for id := range roots {
		stack = append(stack, id)
	}
	seen := map[repo.Hash]bool{}
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[id] {
			continue
		}
		seen[id] = true
		found := false
		if _, ok := s.whole[id]; ok {
			l.whole[id], found = true, true
		}
		if _, ok := s.chosen[entryKey{id, repo.KindChunk}]; ok {
			l.entries[entryKey{id, repo.KindChunk}], found = true, true
		}
		if e, ok := s.chosen[entryKey{id, repo.KindDelta}]; ok {
			l.entries[entryKey{id, repo.KindDelta}], found = true, true
			base, err := r.BaseOf(ctx, e)
			if err != nil {
				return nil, fmt.Errorf("%w (the base of a live page delta must be known before anything is deleted)", err)
			}
			stack = append(stack, base)
		}
		if _, ok := s.chosen[entryKey{id, repo.KindDigest}]; ok {
			l.entries[entryKey{id, repo.KindDigest}] = true
		}
		if !found {
			l.missing[id] = true
		}
	}
	return l, nil
}
