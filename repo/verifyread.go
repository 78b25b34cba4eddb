package repo

import (
	"context"
	"fmt"
)

// What verify reads beyond what restores read: a pack whole, every entry the index names in
// it checked against its envelope, and a page delta rebuilt over its base
// (docs/repository-format.md, "Format 2").

// CheckPack reads a whole pack with one request and checks each of entries (entries of this
// pack, as index objects name them) as ReadSealedEntry would: bad is called for each entry
// that is not sound. It returns the bytes read; an error means the pack itself could not be
// read (missing, unreadable, larger than a pack can be), and then no entry was checked.
func (r *Repo) CheckPack(ctx context.Context, name string, entries []IndexEntry, bad func(IndexEntry, error)) (int64, error) {
	// A pack is cut before it would pass PackSize, so only a first entry larger than
	// PackSize (a page delta of a large chunk) makes it longer.
	limit := int64(r.cfg.PackSize) + 2*int64(r.cfg.ChunkSize) + 1<<20
	obj, err := r.getRaw(ctx, name, limit)
	if err != nil {
		return 0, fmt.Errorf("pack %s in %s: %w", name, r.st, err)
	}
	for _, e := range entries {
		end := int64(e.Offset) + int64(e.Length)
		if end > int64(len(obj)) {
			bad(e, fmt.Errorf("%s of %s in pack %s at %d: %w: the entry ends at %d but the pack holds %d bytes", kindName(e.Kind), e.ID, name, e.Offset, ErrCorrupt, end, len(obj)))
			continue
		}
		if err := r.verifySealed(e, obj[e.Offset:end]); err != nil {
			bad(e, err)
		}
	}
	return int64(len(obj)), nil
}

// CheckDelta rebuilds the chunk a page delta entry stores, over its chain of bases, and
// checks that the result is the chunk its id names. It reads the delta and every base.
func (r *Repo) CheckDelta(ctx context.Context, e IndexEntry, b *ChunkBuffers) error {
	if e.Kind != KindDelta {
		return fmt.Errorf("%s of %s is not a page delta", kindName(e.Kind), e.ID)
	}
	_, err := r.materialize(ctx, e, b)
	return err
}

// PinPrefix is where a cluster's pins live, one object per pinned backup ID.
func PinPrefix(cluster string) string { return pinPrefix(cluster) }

// IdentityObjectName is where a cluster's identity lives.
func IdentityObjectName(cluster string) string { return identityObject(cluster) }
