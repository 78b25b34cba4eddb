package gc

import (
	"context"
	"fmt"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/contents"
)

// store is what the content store holds, as listed and indexed at the start of a plan.
type store = contents.Store

type entryKey = contents.Key

// load lists chunks, packs and index objects and reads every index object; an unreadable
// index object stops the collection.
func load(ctx context.Context, r *repo.Repo) (*store, error) {
	return contents.Load(ctx, r, func(_ string, err error) error {
		return fmt.Errorf("%w (an unreadable index object stops garbage collection: what it names is unknown; run 'pgward verify')", err)
	})
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
func mark(ctx context.Context, r *repo.Repo, s *store, roots map[repo.Hash]bool) (*live, error) {
	l := &live{entries: map[entryKey]bool{}, whole: map[repo.Hash]bool{}, missing: map[repo.Hash]bool{}}
	ids := make([]repo.Hash, 0, len(roots))
	for id := range roots {
		ids = append(ids, id)
	}
	err := s.Walk(ctx, r, ids, map[repo.Hash]bool{}, contents.Visitor{
		Piece: func(k entryKey) {
			if k.Kind == contents.Whole {
				l.whole[k.ID] = true
			} else {
				l.entries[k] = true
			}
		},
		Missing: func(id repo.Hash) { l.missing[id] = true },
	})
	if err != nil {
		return nil, fmt.Errorf("%w (nothing is deleted before it is)", err)
	}
	return l, nil
}
