// Package repotest writes backups into a repository without a PostgreSQL server, the way
// the engine's chunk store does, for tests and benchmarks of what reads repositories
// (garbage collection, expire, verify). It is not for end-to-end proofs: those take real
// backups of real clusters.
package repotest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pgward/pgward/compress"
	"github.com/pgward/pgward/repo"
)

// Writer stores backups of one cluster: chunks below the pack threshold packed, a changed
// chunk of a file as a page delta over the chunk that held the same range in the previous
// backup when at most half its pages changed and the chain is short enough, else whole.
type Writer struct {
	TB      testing.TB
	R       *repo.Repo
	Cluster string // default "main"
	// N numbers the backups; their IDs are made from it.
	N int

	prev map[string][]repo.Hash
}

var codec, _ = compress.Parse("lz4")

// Backup commits a backup of files (path → content) and returns its manifest.
func (w *Writer) Backup(files map[string][]byte) *repo.Manifest {
	w.TB.Helper()
	m := w.Store(files)
	if err := w.R.PutManifest(w.TB.Context(), m); err != nil {
		w.TB.Fatal(err)
	}
	return m
}

// Store writes the objects of a backup of files and returns the manifest that would name
// them, uncommitted (what a backup killed before its commit leaves).
func (w *Writer) Store(files map[string][]byte) *repo.Manifest {
	w.TB.Helper()
	ctx := w.TB.Context()
	if w.Cluster == "" {
		w.Cluster = "main"
	}
	cs := w.R.Config().ChunkSize
	p := w.R.NewPacker()
	var b repo.ChunkBuffers
	w.N++
	stop := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(w.N) * time.Hour)
	m := &repo.Manifest{ID: stop.Format("20060102T150405Z"), Cluster: w.Cluster, ChunkSize: cs, Timeline: 1,
		StartLSN: "0/1000000", StopLSN: "0/1000100", StartTime: stop.Add(-time.Minute), StopTime: stop}
	next := map[string][]repo.Hash{}
	paths := make([]string, 0, len(files))
	for path := range files {
		paths = append(paths, path)
	}
	slices.Sort(paths)
	for _, path := range paths {
		data := files[path]
		f := repo.File{Path: path, Type: repo.TypeFile, Mode: 0o600, Size: int64(len(data))}
		for i := 0; i*cs < len(data); i++ {
			chunk := data[i*cs : min((i+1)*cs, len(data))]
			id := w.R.ContentHash(chunk)
			f.Chunks = append(f.Chunks, id)
			if has, err := w.R.HasChunk(ctx, id); err != nil || has {
				continue
			}
			w.store(ctx, p, &b, id, chunk, w.prev[path], i)
		}
		next[path] = f.Chunks
		m.Files = append(m.Files, f)
	}
	if p != nil {
		if _, err := p.Finish(ctx); err != nil {
			w.TB.Fatal(err)
		}
	} else if err := w.R.Storage().SyncDeferred(ctx); err != nil {
		w.TB.Fatal(err)
	}
	w.prev = next
	return m
}

func (w *Writer) store(ctx context.Context, p *repo.Packer, b *repo.ChunkBuffers, id repo.Hash, chunk []byte, prev []repo.Hash, i int) {
	cfg := w.R.Config()
	add := func(e repo.IndexEntry, obj []byte, err error) {
		if err == nil {
			_, err = p.Add(ctx, e, obj)
		}
		if err != nil {
			w.TB.Fatal(err)
		}
	}
	if p != nil && len(chunk) < cfg.PackThreshold {
		obj, err := w.R.SealChunk(id, chunk, codec, b)
		add(repo.IndexEntry{ID: id, Kind: repo.KindChunk}, obj, err)
		return
	}
	if p != nil && len(chunk)%repo.PageSize == 0 {
		d := repo.DigestOf(id, chunk)
		obj, err := w.R.SealDigest(d, codec, b)
		add(repo.IndexEntry{ID: id, Kind: repo.KindDigest}, obj, err)
		if base, ok := w.deltaBase(ctx, b, chunk, prev, i); ok {
			bd, _, _ := w.R.GetDigest(ctx, base, b)
			depth, _ := w.R.Depth(ctx, base)
			pages := repo.ChangedPages(chunk, bd)
			obj, err := w.R.SealDelta(base, chunk, pages, codec, b)
			add(repo.IndexEntry{ID: id, Kind: repo.KindDelta, Depth: uint8(depth + 1), Base: base}, obj, err)
			return
		}
	}
	if _, err := w.R.PutChunk(ctx, id, chunk, codec, b); err != nil {
		w.TB.Fatal(err)
	}
}

// deltaBase is the chunk a page delta of chunk i would be stored over, if one is worth it.
func (w *Writer) deltaBase(ctx context.Context, b *repo.ChunkBuffers, chunk []byte, prev []repo.Hash, i int) (repo.Hash, bool) {
	if i >= len(prev) {
		return repo.Hash{}, false
	}
	base := prev[i]
	bd, found, err := w.R.GetDigest(ctx, base, b)
	if err != nil || !found {
		return repo.Hash{}, false
	}
	depth, err := w.R.Depth(ctx, base)
	if err != nil || depth >= w.R.Config().MaxDeltaDepth {
		return repo.Hash{}, false
	}
	pages := repo.ChangedPages(chunk, bd)
	return base, 2*len(pages) <= len(chunk)/repo.PageSize
}

// String names the writer for messages.
func (w *Writer) String() string { return fmt.Sprintf("repotest.Writer(%s, %d backups)", w.R, w.N) }
