package repo

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
)

// What garbage collection and verify need to see of the object store beyond what backups and
// restores use: the names of the kinds of objects, entries as sealed bytes, and the index
// as written (docs/repository-format.md, "Garbage collection").

// Object name prefixes of the content store.
const (
	ChunkPrefix = "chunks/"
	PackPrefix  = packPrefix
	IndexPrefix = indexPrefix
)

// ChunkObjectName is where a chunk stored whole lives.
func ChunkObjectName(id Hash) string { return chunkName(id) }

// ParseChunkObjectName returns the chunk a name under ChunkPrefix holds; ok is false for
// any other name.
func ParseChunkObjectName(name string) (Hash, bool) {
	rest, ok := strings.CutPrefix(name, ChunkPrefix)
	if !ok || len(rest) != 67 || rest[2] != '/' || rest[:2] != rest[3:5] {
		return Hash{}, false
	}
	var h Hash
	if _, err := hex.Decode(h[:], []byte(rest[3:])); err != nil || h.String() != rest[3:] {
		return Hash{}, false
	}
	return h, true
}

// ReadSealedEntry reads a pack entry and verifies its envelope (tag, checksum or hash, and
// for a whole chunk that it holds the chunk its ID names). It returns the sealed bytes, as a
// repack copies them into a new pack unchanged.
func (r *Repo) ReadSealedEntry(ctx context.Context, e IndexEntry) ([]byte, error) {
	rc, err := r.st.GetRange(ctx, e.Pack, int64(e.Offset), int64(e.Length))
	if err != nil {
		return nil, fmt.Errorf("pack %s in %s: %w", e.Pack, r.st, err)
	}
	defer rc.Close()
	obj := make([]byte, e.Length)
	if _, err := io.ReadFull(rc, obj); err != nil {
		return nil, fmt.Errorf("pack %s in %s: reading %d bytes at %d: %w", e.Pack, r.st, e.Length, e.Offset, err)
	}
	if err := r.verifySealed(e, obj); err != nil {
		return nil, err
	}
	return obj, nil
}

// verifySealed checks a sealed entry against what the index says it is.
func (r *Repo) verifySealed(e IndexEntry, obj []byte) error {
	plain, h, _, err := r.Open(nil, obj, r.cfg.ChunkSize+r.cfg.ChunkSize/8+1024, nil)
	if err != nil {
		return fmt.Errorf("%s of %s in pack %s at %d: %w", kindName(e.Kind), e.ID, e.Pack, e.Offset, err)
	}
	switch e.Kind {
	case KindChunk:
		if h != e.ID {
			return fmt.Errorf("chunk %s in pack %s at %d: %w: it holds chunk %s", e.ID, e.Pack, e.Offset, ErrCorrupt, h)
		}
	case KindDelta:
		d, err := decodeDelta(plain)
		if err != nil {
			return fmt.Errorf("page delta of %s in pack %s at %d: %w", e.ID, e.Pack, e.Offset, err)
		}
		if e.Base != (Hash{}) && d.Base != e.Base {
			return fmt.Errorf("page delta of %s in pack %s at %d: %w: its base is %s, the index says %s", e.ID, e.Pack, e.Offset, ErrCorrupt, d.Base, e.Base)
		}
	case KindDigest:
		if _, err := decodeDigest(plain, e.ID); err != nil {
			return fmt.Errorf("page digest of %s in pack %s at %d: %w", e.ID, e.Pack, e.Offset, err)
		}
	}
	return nil
}

func kindName(k uint8) string {
	switch k {
	case KindChunk:
		return "chunk"
	case KindDelta:
		return "page delta"
	case KindDigest:
		return "page digest"
	}
	return fmt.Sprintf("entry of kind %d", k)
}

// BaseOf returns the base chunk of a page delta entry: from the index when it records it
// (index version 2), else by reading the delta.
func (r *Repo) BaseOf(ctx context.Context, e IndexEntry) (Hash, error) {
	if e.Base != (Hash{}) {
		return e.Base, nil
	}
	var b ChunkBuffers
	plain, _, err := r.readEntry(ctx, e, nil, &b)
	if err != nil {
		return Hash{}, fmt.Errorf("page delta of %s: %w", e.ID, err)
	}
	d, err := decodeDelta(plain)
	if err != nil {
		return Hash{}, fmt.Errorf("page delta of %s in pack %s: %w", e.ID, e.Pack, err)
	}
	return d.Base, nil
}

// WriteIndex stores one index object naming entries and makes it durable before it returns
// (garbage collection deletes the index objects it replaces right after).
func (r *Repo) WriteIndex(ctx context.Context, entries []IndexEntry) error {
	if err := r.writeIndex(ctx, entries); err != nil {
		return err
	}
	if err := r.st.SyncDeferred(ctx); err != nil {
		return fmt.Errorf("making the new index durable in %s: %w", r.st, err)
	}
	return nil
}

// ReadObject reads a whole sealed object (anything but the config) and verifies its envelope; for a chunk object, also that
// it holds the chunk its name says. It is what verify calls for objects that are not pack
// entries; the plaintext is returned for callers that check more (a manifest decodes).
func (r *Repo) ReadObject(ctx context.Context, name string) ([]byte, error) {
	obj, err := r.getRaw(ctx, name, maxMetaSize)
	if err != nil {
		return nil, fmt.Errorf("%s in %s: %w", name, r.st, err)
	}
	plain, h, _, err := r.Open(nil, obj, maxMetaSize, nil)
	if err == nil && h != r.ContentHash(plain) {
		err = fmt.Errorf("%w: content hash mismatch", ErrCorrupt)
	}
	if id, ok := ParseChunkObjectName(name); ok && err == nil && h != id {
		err = fmt.Errorf("%w: it holds chunk %s", ErrCorrupt, h)
	}
	if err != nil {
		return nil, fmt.Errorf("%s in %s: %w", name, r.st, err)
	}
	return plain, nil
}

// DeleteManifest removes a backup's manifest: the backup is no longer listed or restorable.
// What only it referenced becomes garbage.
func (r *Repo) DeleteManifest(ctx context.Context, cluster, id string) error {
	if err := r.st.Delete(ctx, manifestPrefix(cluster)+id); err != nil {
		return fmt.Errorf("deleting the manifest of backup %s from %s: %w", id, r.st, err)
	}
	return nil
}

// ManifestObjectName is where a backup's manifest lives.
func ManifestObjectName(cluster, id string) string { return manifestPrefix(cluster) + id }

// ManifestRef names one committed backup.
type ManifestRef struct {
	Cluster, ID string
}

// AllManifests lists the committed backups of every cluster, by cluster and ID: the roots
// of garbage collection. It lists the objects themselves, so a backup of a cluster whose
// identity object is damaged still counts.
func (r *Repo) AllManifests(ctx context.Context) ([]ManifestRef, error) {
	var refs []ManifestRef
	err := r.st.List(ctx, "clusters/", func(o ObjectInfo) error {
		parts := strings.Split(o.Name, "/")
		if len(parts) == 4 && parts[2] == "backups" {
			refs = append(refs, ManifestRef{Cluster: parts[1], ID: parts[3]})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the backups in %s: %w", r.st, err)
	}
	return refs, nil
}
