package gc

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/pgward/pgward/repo"
)

// maxIndexEntries bounds one index object (78 bytes an entry: 39 MB).
const maxIndexEntries = 500_000

// Stats is what a collection did.
type Stats struct {
	DeletedChunks    int   `json:"deleted_chunks"`
	DeletedPacks     int   `json:"deleted_packs"`
	RepackedPacks    int   `json:"repacked_packs"`
	RepackedBytes    int64 `json:"repacked_bytes"`
	IndexWritten     int   `json:"index_objects_written"`
	IndexDeleted     int   `json:"index_objects_deleted"`
	LeftoversRemoved int   `json:"leftovers_removed"`
	FreedBytes       int64 `json:"freed_bytes"`
}

// Apply carries out a plan made under the exclusive lock that is still held, in the order
// that keeps every live entry reachable at every step (package doc). held is called before
// each step that deletes; its error (the lock was lost) stops the collection there.
func Apply(ctx context.Context, r *repo.Repo, p *Plan, held func(context.Context) error) (Stats, error) {
	var st Stats
	moved, err := p.repack(ctx, r, &st)
	if err != nil {
		return st, err
	}
	if p.Reindex {
		if err := p.reindex(ctx, r, moved, &st); err != nil {
			return st, err
		}
	}
	// From here on only deletions: each of an object nothing live names any more.
	del := r.Storage()
	if err := held(ctx); err != nil {
		return st, err
	}
	if p.Reindex {
		for _, name := range p.OldIndex {
			if err := del.Delete(ctx, name); err != nil {
				return st, fmt.Errorf("deleting replaced index object %s: %w", name, err)
			}
			st.IndexDeleted++
		}
		// Readers that loaded the old index find the entries' new places.
		r.InvalidateIndex(r.IndexGeneration())
	}
	if err := held(ctx); err != nil {
		return st, err
	}
	for _, pack := range slices.Concat(p.DeadPacks, p.Repack) {
		if err := del.Delete(ctx, pack); err != nil {
			return st, fmt.Errorf("deleting pack %s: %w", pack, err)
		}
		st.DeletedPacks++
	}
	st.RepackedPacks = len(p.Repack)
	for _, id := range p.DeadChunks {
		if err := del.Delete(ctx, repo.ChunkObjectName(id)); err != nil {
			return st, fmt.Errorf("deleting chunk %s: %w", id, err)
		}
		st.DeletedChunks++
	}
	for _, l := range p.Leftovers {
		if err := del.RemoveLeftover(ctx, l); err != nil {
			return st, fmt.Errorf("removing what an interrupted write of %s left: %w", l.Name, err)
		}
		st.LeftoversRemoved++
	}
	st.FreedBytes = p.Freed
	return st, nil
}

// repack copies the live entries of the packs to repack into new packs, verifying each on
// the way, and returns their new places.
func (p *Plan) repack(ctx context.Context, r *repo.Repo, st *Stats) (map[entryKey]repo.IndexEntry, error) {
	moved := map[entryKey]repo.IndexEntry{}
	if len(p.Repack) == 0 {
		return moved, nil
	}
	repacked := map[string]bool{}
	for _, pk := range p.Repack {
		repacked[pk] = true
	}
	var todo []repo.IndexEntry
	for k := range p.live.entries {
		if e := p.store.Chosen[k]; repacked[e.Pack] {
			todo = append(todo, e)
		}
	}
	// Pack order, then offset: each old pack is read front to back.
	slices.SortFunc(todo, func(a, b repo.IndexEntry) int {
		if c := strings.Compare(a.Pack, b.Pack); c != 0 {
			return c
		}
		return int(a.Offset) - int(b.Offset)
	})
	pk := r.NewPacker()
	for _, e := range todo {
		obj, err := r.ReadSealedEntry(ctx, e)
		if err != nil {
			return nil, fmt.Errorf("repacking: %w (a damaged live entry is not copied; run 'pgward verify')", err)
		}
		if _, err := pk.Add(ctx, repo.IndexEntry{ID: e.ID, Kind: e.Kind, Depth: e.Depth, Base: e.Base}, obj); err != nil {
			return nil, err
		}
		st.RepackedBytes += int64(len(obj))
	}
	_, entries, err := pk.Flush(ctx)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		moved[entryKey{ID: e.ID, Kind: e.Kind}] = e
	}
	return moved, nil
}

// reindex writes index objects naming every live entry at its current place (the new one
// for moved entries); they are durable when it returns.
func (p *Plan) reindex(ctx context.Context, r *repo.Repo, moved map[entryKey]repo.IndexEntry, st *Stats) error {
	all := make([]repo.IndexEntry, 0, len(p.live.entries))
	for k := range p.live.entries {
		e, ok := moved[k]
		if !ok {
			e = p.store.Chosen[k]
		}
		if e.Kind == repo.KindDelta && e.Base == (repo.Hash{}) {
			base, err := r.BaseOf(ctx, e)
			if err != nil {
				return err
			}
			e.Base = base // index version 2 records it
		}
		all = append(all, e)
	}
	for chunk := range slices.Chunk(all, maxIndexEntries) {
		if err := r.WriteIndex(ctx, chunk); err != nil {
			return err
		}
		st.IndexWritten++
	}
	return nil
}
