package local

import (
	"context"
	"io"
	"testing"

	"github.com/pgward/pgward/compress"
	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/storagetest"
)

// passThrough stands in for a wrapper that only observes, such as a metrics wrapper: it
// forwards every method and adds nothing.
type passThrough struct{ st repo.Storage }

func (p passThrough) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	return p.st.Put(ctx, name, r, size)
}

func (p passThrough) PutDeferred(ctx context.Context, name string, r io.Reader, size int64) error {
	return p.st.PutDeferred(ctx, name, r, size)
}

func (p passThrough) SyncDeferred(ctx context.Context) error { return p.st.SyncDeferred(ctx) }

func (p passThrough) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	return p.st.Get(ctx, name)
}
func (p passThrough) GetRange(ctx context.Context, name string, off, n int64) (io.ReadCloser, error) {
	return p.st.GetRange(ctx, name, off, n)
}

func (p passThrough) Stat(ctx context.Context, name string) (repo.ObjectInfo, error) {
	return p.st.Stat(ctx, name)
}

func (p passThrough) List(ctx context.Context, prefix string, fn func(repo.ObjectInfo) error) error {
	return p.st.List(ctx, prefix, fn)
}

func (p passThrough) Delete(ctx context.Context, name string) error { return p.st.Delete(ctx, name) }

func (p passThrough) Leftovers(ctx context.Context, prefix string, fn func(repo.Leftover) error) error {
	return p.st.Leftovers(ctx, prefix, fn)
}

func (p passThrough) RemoveLeftover(ctx context.Context, l repo.Leftover) error {
	return p.st.RemoveLeftover(ctx, l)
}
func (p passThrough) String() string       { return p.st.String() }
func (p passThrough) Unwrap() repo.Storage { return p.st }

// Adding a wrapper changes no behaviour: local storage under one keeps the contract, and
// the directory fsyncs it defers for chunks still happen when a manifest is written through
// the wrapper (they used to be found by type assertion, which any wrapper defeated).
func TestPassThroughWrapper(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) repo.Storage { return passThrough{newStorage(t)} })

	ctx := t.Context()
	s := newStorage(t)
	r, err := repo.Init(ctx, passThrough{s}, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := repo.As[interface{ Dir() string }](r.Storage()); !ok || d.Dir() != s.Dir() {
		t.Fatalf("As[Dir] through the wrapper = %v, %v; want %s", d, ok, s.Dir())
	}
	codec, err := compress.Parse("none")
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("a page of a table")
	id := r.ContentHash(data)
	var bufs repo.ChunkBuffers
	if _, err := r.PutChunk(ctx, id, data, codec, &bufs); err != nil {
		t.Fatal(err)
	}
	if len(s.unsynced) != 1 {
		t.Fatalf("directories awaiting fsync after storing a chunk: %v, want its fan-out directory", s.unsynced)
	}
	m := &repo.Manifest{ID: "20261126T000000Z", Cluster: "main", ChunkSize: repo.DefaultChunkSize,
		Files: []repo.File{{Path: "base/1/1", Type: repo.TypeFile, Mode: 0o600, Size: int64(len(data)), Chunks: []repo.Hash{id}}}}
	if err := r.PutManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	if len(s.unsynced) != 0 {
		t.Fatalf("directories still awaiting fsync after the manifest was written: %v", s.unsynced)
	}
}
