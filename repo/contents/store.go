package contents

import (
	"context"
	"fmt"

	"github.com/pgward/pgward/repo"
)

// Whole is the Kind of a Key that names a chunk kept as its own object (chunks/<hh>/<id>);
// the other kinds are the index's (repo.KindChunk, repo.KindDelta, repo.KindDigest).
const Whole uint8 = 0

// Key names one stored piece of the content store: a whole chunk object, or the pack entry
// of a (chunk id, kind).
type Key struct {
	ID   repo.Hash
	Kind uint8
}

// IndexObject is one index object and the entries it names.
type IndexObject struct {
	Name    string
	Size    int64
	Entries []repo.IndexEntry
}

// Store is what the content store holds, as listed and indexed when Load ran.
type Store struct {
	// Whole maps the chunks stored as their own object to the object's size.
	Whole map[repo.Hash]int64
	// Packs maps each pack object to its size.
	Packs map[string]int64
	// Chosen is the one entry per (id, kind) that counts (package doc).
	Chosen map[Key]repo.IndexEntry
	// Indexes are the readable index objects, in name order, with their entries.
	Indexes []IndexObject
	// Unplaced holds, per (id, kind) that no pack holds, the first entry an index names for
	// it: its pack is gone, or shorter than the entry. Verify names the pack when the chunk
	// turns out to be needed.
	Unplaced map[Key]repo.IndexEntry

	needs map[repo.Hash]memo
}

// Load lists chunks, packs and index objects and reads every index object. An index
// object that cannot be read is passed to badIndex: its error stops the load (garbage
// collection cannot know what the object named), nil leaves it out (verify reports it and
// goes on).
func Load(ctx context.Context, r *repo.Repo, badIndex func(name string, err error) error) (*Store, error) {
	s := &Store{Whole: map[repo.Hash]int64{}, Packs: map[string]int64{}, Chosen: map[Key]repo.IndexEntry{},
		Unplaced: map[Key]repo.IndexEntry{}, needs: map[repo.Hash]memo{}}
	st := r.Storage()
	err := st.List(ctx, repo.ChunkPrefix, func(o repo.ObjectInfo) error {
		if id, ok := repo.ParseChunkObjectName(o.Name); ok {
			s.Whole[id] = o.Size
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing chunks in %s: %w", st, err)
	}
	if err := st.List(ctx, repo.PackPrefix, func(o repo.ObjectInfo) error { s.Packs[o.Name] = o.Size; return nil }); err != nil {
		return nil, fmt.Errorf("listing packs in %s: %w", st, err)
	}
	var index []IndexObject
	if err := st.List(ctx, repo.IndexPrefix, func(o repo.ObjectInfo) error {
		index = append(index, IndexObject{Name: o.Name, Size: o.Size})
		return nil
	}); err != nil {
		return nil, fmt.Errorf("listing the index in %s: %w", st, err)
	}
	for _, x := range index {
		entries, err := r.ReadIndex(ctx, x.Name)
		if err != nil {
			if err := badIndex(x.Name, err); err != nil {
				return nil, err
			}
			continue
		}
		x.Entries = entries
		s.Indexes = append(s.Indexes, x)
		for _, e := range entries {
			s.place(e)
		}
	}
	return s, nil
}

// place makes e the chosen entry of its (id, kind) when none is chosen yet and its pack
// holds it.
func (s *Store) place(e repo.IndexEntry) {
	k := Key{e.ID, e.Kind}
	if _, done := s.Chosen[k]; done {
		return
	}
	if size, ok := s.Packs[e.Pack]; ok && int64(e.Offset)+int64(e.Length) <= size {
		s.Chosen[k] = e
		delete(s.Unplaced, k)
		return
	}
	if _, seen := s.Unplaced[k]; !seen {
		s.Unplaced[k] = e
	}
}

// Size is the stored bytes of a piece: a whole object's size, or a pack entry's length.
func (s *Store) Size(k Key) int64 {
	if k.Kind == Whole {
		return s.Whole[k.ID]
	}
	return int64(s.Chosen[k].Length)
}

// Object is the name of the object a piece lives in: chunks/<hh>/<id>, or its pack.
func (s *Store) Object(k Key) string {
	if k.Kind == Whole {
		return repo.ChunkObjectName(k.ID)
	}
	return s.Chosen[k].Pack
}
