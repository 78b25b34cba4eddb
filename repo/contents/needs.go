package contents

import (
	"context"
	"fmt"

	"github.com/pgward/pgward/repo"
)

// Needs is what reading one chunk takes directly from the content store.
type Needs struct {
	// Pieces are the stored pieces of the chunk: its whole object, its packed entry, its page
	// delta and its page digest, those that exist.
	Pieces []Key
	// Found is false when the chunk is kept nowhere (no whole object, no packed chunk, no
	// page delta): damage, unless a writer has not finished.
	Found bool
	// Base is the chunk a page delta is rebuilt over, when HasBase.
	Base    repo.Hash
	HasBase bool
}

// Needs returns what reading chunk id takes, remembering the answer: a page delta's base is
// read from the delta itself when an index of version 1 does not record it. When that read
// fails, the error comes with the rest of the answer (the delta counts as found, its base is
// unknown).
func (s *Store) Needs(ctx context.Context, r *repo.Repo, id repo.Hash) (Needs, error) {
	if m, ok := s.needs[id]; ok {
		return m.Needs, m.err
	}
	var n Needs
	var err error
	if _, ok := s.Whole[id]; ok {
		n.Pieces, n.Found = append(n.Pieces, Key{id, Whole}), true
	}
	if _, ok := s.Chosen[Key{id, repo.KindChunk}]; ok {
		n.Pieces, n.Found = append(n.Pieces, Key{id, repo.KindChunk}), true
	}
	if e, ok := s.Chosen[Key{id, repo.KindDelta}]; ok {
		n.Pieces, n.Found = append(n.Pieces, Key{id, repo.KindDelta}), true
		var base repo.Hash
		if base, err = r.BaseOf(ctx, e); err == nil {
			n.Base, n.HasBase = base, true
		}
	}
	if _, ok := s.Chosen[Key{id, repo.KindDigest}]; ok {
		n.Pieces = append(n.Pieces, Key{id, repo.KindDigest})
	}
	s.needs[id] = memo{n, err}
	return n, err
}

type memo struct {
	Needs
	err error
}

// Visitor is told what a walk meets.
type Visitor struct {
	// Piece is called for every stored piece, once per walk's seen set.
	Piece func(Key)
	// Missing is called for every chunk kept nowhere.
	Missing func(repo.Hash)
	// BaseUnknown is called when the base of chunk id's page delta cannot be learned; its
	// error stops the walk, nil goes on without that base. Nil stops the walk.
	BaseUnknown func(id repo.Hash, err error) error
}

// Walk visits every piece the chunks ids need, transitively through page delta bases, and
// every chunk in that closure that is kept nowhere. seen holds the chunks already walked (by
// this call or earlier ones sharing it) and is updated: a caller accounting per backup
// passes one set per backup, a caller marking everything one set for all. A chunk is walked
// once per seen set, so each piece is visited once.
func (s *Store) Walk(ctx context.Context, r *repo.Repo, ids []repo.Hash, seen map[repo.Hash]bool, v Visitor) error {
	stack := append([]repo.Hash(nil), ids...)
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[id] {
			continue
		}
		seen[id] = true
		n, err := s.Needs(ctx, r, id)
		if err != nil {
			if v.BaseUnknown == nil {
				return fmt.Errorf("%w (the base of a page delta must be known to follow what a backup needs)", err)
			}
			if err := v.BaseUnknown(id, err); err != nil {
				return err
			}
		}
		if !n.Found && v.Missing != nil {
			v.Missing(id)
		}
		for _, k := range n.Pieces {
			if v.Piece != nil {
				v.Piece(k)
			}
		}
		if n.HasBase {
			stack = append(stack, n.Base)
		}
	}
	return nil
}

// Chunks returns the chunk ids a manifest names, each once, in the order it names them.
func Chunks(m *repo.Manifest) []repo.Hash {
	seen := map[repo.Hash]bool{}
	var ids []repo.Hash
	for _, f := range m.Files {
		for _, c := range f.Chunks {
			if !seen[c] {
				seen[c] = true
				ids = append(ids, c)
			}
		}
	}
	return ids
}
