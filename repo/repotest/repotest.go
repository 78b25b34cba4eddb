// Package repotest writes small format-2 repositories for the tests and benchmarks of the
// packages that read them whole (gc, verify, info): backups stored the way the engine's chunk
// store stores them — small chunks packed, a changed chunk as a page delta over the chunk
// that held the same range in the previous backup, else whole — without a PostgreSQL server.
// It is test support only; nothing in pgward's commands imports it.
package repotest

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/pgward/pgward/compress"
	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/storagetest"
	"github.com/pgward/pgward/wal"
	"github.com/pgward/pgward/wal/inventory"
	"github.com/pgward/pgward/wal/waltest"
)

// ChunkSize is the chunk size of the repositories NewRepo makes: 64 KiB chunks, chunks under
// 32 KiB packed into 20 KiB packs, page deltas up to 3 deep, so a few files exercise every way
// a chunk is kept.
const ChunkSize = 64 << 10

// NewRepo makes a repository in memory, behind a Faulty wrapper (for counting calls and
// injecting faults).
func NewRepo(t testing.TB) (*repo.Repo, *storagetest.Faulty, *storagetest.Memory) {
	t.Helper()
	mem := storagetest.NewMemory()
	f := storagetest.NewFaulty(mem)
	r, err := repo.Init(t.Context(), f, repo.InitOptions{ChunkSize: ChunkSize, PackThreshold: 32 << 10, PackSize: 20 << 10, MaxDeltaDepth: 3})
	if err != nil {
		t.Fatal(err)
	}
	return r, f, mem
}

var codec, _ = compress.Parse("lz4")

// The cluster a Writer's backups belong to: PostgreSQL 15 with 1 MiB WAL segments.
const (
	SegSize  = 1 << 20
	PGMajor  = 15
	SystemID = 7712474304306552568
)

// Writer stores backups of one cluster ("main" unless Cluster says otherwise) with the
// repository's chunk size, pack threshold and delta depth, each with the
// WAL segment it needs archived (and its summary): backup N starts and stops in segment N of
// timeline 1. Backup IDs are a minute apart from 2026-11-01 00:00 UTC, the N-th backup's N
// minutes after it. The cluster's identity is written with the first backup.
type Writer struct {
	T       testing.TB
	R       *repo.Repo
	Cluster string
	// Prev are the chunks of each file in the previous backup: the bases of page deltas.
	Prev map[string][]repo.Hash
	// N counts the backups written.
	N int
	// Codec compresses chunks and deltas of 64 KiB and more (default lz4); smaller objects
	// take lz4, as the engine's do.
	Codec compress.Codec
}

// Backup stores files as a new backup and commits its manifest.
func (w *Writer) Backup(files map[string][]byte) *repo.Manifest {
	w.T.Helper()
	ctx := w.T.Context()
	p := w.R.NewPacker()
	var b repo.ChunkBuffers
	w.N++
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(w.N) * time.Minute)
	cluster := w.Cluster
	if cluster == "" {
		cluster = "main"
	}
	seg := uint64(w.N) * SegSize
	size := w.R.Config().ChunkSize
	m := &repo.Manifest{ID: at.Format("20060102T150405Z"), Cluster: cluster, ChunkSize: size, Timeline: 1,
		SystemIdentifier: fmt.Sprint(uint64(SystemID)), PGVersion: PGMajor * 10000,
		StartLSN: wal.FormatLSN(seg + 0x28), StopLSN: wal.FormatLSN(seg + 0x100), StartTime: at, StopTime: at.Add(time.Second)}
	w.archive(cluster, uint64(w.N))
	next := map[string][]repo.Hash{}
	// In path order, so that the same files make the same packs: tests compare repositories
	// built twice.
	for _, path := range slices.Sorted(maps.Keys(files)) {
		data := files[path]
		f := repo.File{Path: path, Type: repo.TypeFile, Mode: 0o600, Size: int64(len(data))}
		for i := 0; i*size < len(data); i++ {
			chunk := data[i*size : min((i+1)*size, len(data))]
			id := w.R.ContentHash(chunk)
			f.Chunks = append(f.Chunks, id)
			if has, err := w.R.HasChunk(ctx, id); err != nil || has {
				continue
			}
			w.store(p, &b, id, chunk, w.Prev[path], i)
		}
		next[path] = f.Chunks
		m.Files = append(m.Files, f)
		m.DBBytes += f.Size
	}
	if _, err := p.Finish(ctx); err != nil {
		w.T.Fatal(err)
	}
	if err := w.R.PutManifest(ctx, m); err != nil {
		w.T.Fatal(err)
	}
	w.Prev = next
	return m
}

// archive stores segment segNo of timeline 1 (a few records) and its summary, and the
// cluster's identity first.
func (w *Writer) archive(cluster string, segNo uint64) {
	ctx := w.T.Context()
	err := w.R.EnsureIdentity(ctx, repo.Identity{Cluster: cluster, SystemIdentifier: fmt.Sprint(uint64(SystemID)), PGMajor: PGMajor, WALSegSize: SegSize})
	if err != nil {
		w.T.Fatal(err)
	}
	s := waltest.NewSegment(1, segNo, SegSize, PGMajor, SystemID)
	s.Filler(300)
	s.Commit(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(segNo) * time.Minute))
	data := s.Bytes()
	name := wal.SegmentName(1, segNo, SegSize)
	if _, err := w.R.PutWAL(ctx, cluster, name, data, codec); err != nil {
		w.T.Fatal(err)
	}
	sum, err := inventory.Summarize(data)
	if err == nil {
		err = w.R.PutWALSummary(ctx, cluster, name, sum)
	}
	if err != nil {
		w.T.Fatal(err)
	}
}

func (w *Writer) store(p *repo.Packer, b *repo.ChunkBuffers, id repo.Hash, chunk []byte, prev []repo.Hash, i int) {
	ctx := w.T.Context()
	codec := codec
	if w.Codec != nil && len(chunk) >= 64<<10 {
		codec = w.Codec
	}
	add := func(e repo.IndexEntry, obj []byte, err error) {
		if err == nil {
			_, err = p.Add(ctx, e, obj)
		}
		if err != nil {
			w.T.Fatal(err)
		}
	}
	cfg := w.R.Config()
	if len(chunk) < cfg.PackThreshold {
		obj, err := w.R.SealChunk(id, chunk, codec, b)
		add(repo.IndexEntry{ID: id, Kind: repo.KindChunk}, obj, err)
		return
	}
	d := repo.DigestOf(id, chunk)
	obj, err := w.R.SealDigest(d, codec, b)
	add(repo.IndexEntry{ID: id, Kind: repo.KindDigest}, obj, err)
	if i < len(prev) {
		base := prev[i]
		bd, found, err := w.R.GetDigest(ctx, base, b)
		depth, derr := w.R.Depth(ctx, base)
		if err == nil && derr == nil && found && depth < cfg.MaxDeltaDepth {
			if pages := repo.ChangedPages(chunk, bd); 2*len(pages) <= len(chunk)/repo.PageSize {
				obj, err := w.R.SealDelta(base, chunk, pages, codec, b)
				add(repo.IndexEntry{ID: id, Kind: repo.KindDelta, Depth: uint8(depth + 1), Base: base}, obj, err)
				return
			}
		}
	}
	if _, err := w.R.PutChunk(ctx, id, chunk, codec, b); err != nil {
		w.T.Fatal(err)
	}
}

// Files makes a cluster-like set of files: two relation files of a few chunks and small
// ones; version v changes a few pages of each relation file and one small file, and a third
// relation file exists only in versions 0 and 1 (a table dropped after the second backup).
func Files(v int) map[string][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	out := map[string][]byte{}
	for _, name := range []string{"base/1/100", "base/1/200"} {
		data := make([]byte, 3*ChunkSize+5*repo.PageSize)
		for i := range data {
			data[i] = byte(rng.IntN(7))
		}
		for k := 1; k <= v; k++ {
			for _, page := range []int{k % 12, 9 + k%12, 17 + k%12} {
				data[page*repo.PageSize+100+k/12] = byte(k)
			}
		}
		out[name] = data
	}
	for i := range 6 {
		out[fmt.Sprintf("global/%d", i)] = bytes.Repeat([]byte{byte(i)}, 3000+i)
	}
	out["global/changing"] = []byte(fmt.Sprintf("version %d", v))
	if v < 2 {
		data := make([]byte, 2*ChunkSize)
		for i := range data {
			data[i] = byte(rng.IntN(250))
		}
		data[0] = byte(v)
		out["base/1/300"] = data
	}
	return out
}
