package repo

import (
	"context"
	"fmt"
)

// What verify reads beyond what restores read: a pack whole, every entry the index names in
// it checked against its envelope, and a page delta rebuilt over a base the caller holds
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

// ApplyDelta rebuilds the chunk page delta e stores over base, the plaintext of chunk
// baseID, into dst (reused when large enough), and checks that the result is the chunk e's id
// names. Verify rebuilds chains of deltas this way, each over the one before, reading every
// delta once instead of every chain once per delta.
func (r *Repo) ApplyDelta(ctx context.Context, e IndexEntry, baseID Hash, base, dst []byte, b *ChunkBuffers) ([]byte, error) {
	plain, _, err := r.readEntry(ctx, e, nil, b)
	if err != nil {
		return nil, fmt.Errorf("page delta of %s: %w", e.ID, err)
	}
	d, err := decodeDelta(plain)
	if err != nil {
		return nil, fmt.Errorf("page delta of %s in pack %s: %w", e.ID, e.Pack, err)
	}
	if d.Base != baseID {
		return nil, fmt.Errorf("page delta of %s in pack %s: %w: its base is %s, not %s", e.ID, e.Pack, ErrCorrupt, d.Base, baseID)
	}
	out := d.apply(append(dst[:0], base...))
	if got := r.ContentHash(out); got != e.ID {
		return nil, fmt.Errorf("chunk %s: %w: rebuilt from its page delta in pack %s over chunk %s, it does not match its id", e.ID, ErrCorrupt, e.Pack, baseID)
	}
	return out, nil
}

// PinPrefix is where a cluster's pins live, one object per pinned backup ID.
func PinPrefix(cluster string) string { return pinPrefix(cluster) }

// IdentityObjectName is where a cluster's identity lives.
func IdentityObjectName(cluster string) string { return identityObject(cluster) }
