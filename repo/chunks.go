package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/pgward/pgward/compress"
)

// Chunks live at chunks/<first two hex digits>/<64 hex digits>: 256 fan-out
// directories keep local directories small and spread S3 key prefixes.
func chunkName(id Hash) string {
	s := id.String()
	return "chunks/" + s[:2] + "/" + s
}

// ChunkBuffers is per-worker scratch space, reused across chunks so the
// pipeline allocates nothing per chunk in the steady state.
type ChunkBuffers struct {
	obj, scratch, plain []byte
}

// UsePlain makes GetChunk decode into buf's array: every codec decodes in
// place when the buffer has room for a chunk, so the caller controls where the
// plaintext lives (a restore writing with O_DIRECT needs it page-aligned).
func (b *ChunkBuffers) UsePlain(buf []byte) { b.plain = buf[:0] }

// Sealed returns the object SealChunk last built in b.
func (b *ChunkBuffers) Sealed() []byte { return b.obj }

// HasChunk reports whether the chunk is stored.
func (r *Repo) HasChunk(ctx context.Context, id Hash) (bool, error) {
	_, err := r.st.Stat(ctx, chunkName(id))
	if err == nil {
		return true, nil
	}
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return false, fmt.Errorf("chunk %s: %w", id, err)
}

// PutChunk compresses, seals and stores a chunk whose keyed hash is id. It
// returns the number of bytes written to storage; a chunk that another writer
// stored first counts as zero (same content, same id: nothing is lost).
func (r *Repo) PutChunk(ctx context.Context, id Hash, plain []byte, codec compress.Codec, b *ChunkBuffers) (int64, error) {
	obj, err := r.SealChunk(id, plain, codec, b)
	if err != nil {
		return 0, err
	}
	return r.StoreChunk(ctx, id, obj)
}

// SealChunk builds the object of a chunk (compressed, sealed) in b and returns
// it; it is valid until b is used again. Sealing and storing are separate so a
// pipeline can keep the CPUs sealing while other goroutines wait on storage.
func (r *Repo) SealChunk(id Hash, plain []byte, codec compress.Codec, b *ChunkBuffers) ([]byte, error) {
	var err error
	b.obj, b.scratch, err = r.Seal(b.obj[:0], plain, id, codec, b.scratch)
	if err != nil {
		return nil, fmt.Errorf("chunk %s: %w", id, err)
	}
	return b.obj, nil
}

// StoreChunk writes a sealed chunk object (create-only). It returns the bytes
// written, zero when the chunk was already there.
//
// The chunk's name is made durable by the next SyncDeferred (local storage:
// one directory fsync per fan-out directory per backup instead of one per
// chunk), which PutManifest calls before it commits: what a manifest names is
// durable before the manifest exists.
func (r *Repo) StoreChunk(ctx context.Context, id Hash, obj []byte) (int64, error) {
	err := r.st.PutDeferred(ctx, chunkName(id), bytes.NewReader(obj), int64(len(obj)))
	if errors.Is(err, ErrExists) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("storing chunk %s in %s: %w", id, r.st, err)
	}
	return int64(len(obj)), nil
}

// GetChunk reads and verifies a chunk and returns its plaintext, which is valid
// until the buffers are used again. Any mismatch (bad tag, bad hash, an object
// whose content is not the one its name promises) is an error naming the chunk.
func (r *Repo) GetChunk(ctx context.Context, id Hash, b *ChunkBuffers) ([]byte, error) {
	var err error
	limit := int64(r.cfg.ChunkSize) + headerSize + 1024
	b.obj, err = r.readInto(ctx, chunkName(id), b.obj, limit+int64(r.cfg.ChunkSize/64))
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("chunk %s is missing from %s: %w", chunkName(id), r.st, err)
		}
		return nil, fmt.Errorf("chunk %s: %w", chunkName(id), err)
	}
	var h Hash
	b.plain, h, b.scratch, err = r.Open(b.plain[:0], b.obj, r.cfg.ChunkSize, b.scratch)
	if err != nil {
		return nil, fmt.Errorf("chunk %s in %s: %w", chunkName(id), r.st, err)
	}
	if h != id {
		return nil, fmt.Errorf("chunk %s in %s: %w: it holds chunk %s", chunkName(id), r.st, ErrCorrupt, h)
	}
	return b.plain, nil
}
