package engine

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgward/pgward/compress"
	"github.com/pgward/pgward/repo"
	"golang.org/x/sync/errgroup"
)

// The chunk store stage of a backup: N workers hash each chunk (per repository:
// the hash is keyed), skip chunks the repository already has, compress and seal
// the new ones; a pool of writers stores them. Sealing is CPU and storing is I/O
// (local Puts wait on fsync, S3 Puts on the network), so the writers are more
// numerous than the CPU workers and the CPUs keep sealing while writes wait.
//
// Memory is bounded by construction: the chunk buffers are the source's pool, and
// each sealed object travels in a buffer from a pool of jobs+writers, so at most
// that many sealed objects exist at once.
type chunkStore struct {
	repos []*repo.Repo
	codec compress.Codec
	jobs  int
	// packers[r] collects repository r's small objects (nil: format 1).
	packers []*repo.Packer
	// prev[r] maps each file of repository r's previous backup to its entry:
	// its chunks are the bases page deltas are made against.
	prev []map[string]repo.File
	// known[r] holds the chunk IDs repository r is known to have: seeded from its
	// previous backup's manifest (a manifest is written only after its chunks)
	// and from this backup's own chunks.
	known []*sync.Map
	// stored[r] counts the bytes newly written to repository r.
	stored []atomic.Int64
	// sealBusy and storeBusy sum the time (ns) the workers spent hashing and sealing,
	// and the writers storing, without their waits for each other: where a slow
	// backup's time went (StageTimes).
	sealBusy, storeBusy atomic.Int64
}

// StageTimes is where a backup's time went: the busy time of each stage of the
// pipeline, without its waits for the others. Seal and Store are summed over the
// stage's goroutines (--jobs workers; the writers), so they may exceed the backup's
// duration; a stage whose time comes near duration × goroutines is the bottleneck.
type StageTimes struct {
	// Read is receiving the server's stream and cutting it into chunks (one goroutine).
	Read time.Duration
	// Seal is hashing chunks, looking them up, compressing and encrypting new ones.
	Seal time.Duration
	// Store is writing sealed objects and packs to the repositories.
	Store time.Duration
}

// busy adds the time since began to a stage's total.
func busy(total *atomic.Int64, began time.Time) { total.Add(int64(time.Since(began))) }

func newChunkStore(repos []*repo.Repo, codec compress.Codec, jobs int) *chunkStore {
	cs := &chunkStore{repos: repos, codec: codec, jobs: jobs, known: make([]*sync.Map, len(repos)), stored: make([]atomic.Int64, len(repos)),
		packers: make([]*repo.Packer, len(repos)), prev: make([]map[string]repo.File, len(repos))}
	for i, r := range repos {
		cs.known[i] = new(sync.Map)
		cs.packers[i] = r.NewPacker()
		cs.prev[i] = map[string]repo.File{}
	}
	return cs
}

// seed records the chunks of a repository's previous backup as present, and as
// the bases of the next version of each file.
func (cs *chunkStore) seed(ri int, m *repo.Manifest) {
	for _, f := range m.Files {
		for _, c := range f.Chunks {
			cs.known[ri].Store(c, struct{}{})
		}
		if f.Type == repo.TypeFile {
			cs.prev[ri][f.Path] = f
		}
	}
}

// checkpoint writes what the packers hold and an index object for it, once the
// relation data has arrived (Packer.Checkpoint): the packs of a backup of many
// small files are then written while the WAL streams, and finish is left with
// the few chunks that came after. It runs in the pipeline's group, beside the
// workers, so the pipeline ends only once it has.
func (cs *chunkStore) checkpoint(ctx context.Context) error {
	return cs.eachPacker(ctx, (*repo.Packer).Checkpoint)
}

// finish writes what the packers still hold and their index objects: after the
// pipeline, while commit seals the manifests, and before it stores them.
func (cs *chunkStore) finish(ctx context.Context) error {
	return cs.eachPacker(ctx, (*repo.Packer).Finish)
}

// eachPacker runs write on each repository's packer, counting the bytes it stored.
func (cs *chunkStore) eachPacker(ctx context.Context, write func(*repo.Packer, context.Context) (int64, error)) error {
	defer busy(&cs.storeBusy, time.Now())
	for ri, p := range cs.packers {
		if p == nil {
			continue
		}
		n, err := write(p, ctx)
		if err != nil {
			return err
		}
		cs.stored[ri].Add(n)
	}
	return nil
}

// storeJob is a sealed object for the writers: a whole chunk object, or an entry
// for the repository's packer.
type storeJob struct {
	ri int
	// entry is the pack entry to add (Kind 0: a whole chunk object named entry.ID).
	entry repo.IndexEntry
	buf   *repo.ChunkBuffers
}

// start runs the workers and writers in g until jobs is closed and drained; each
// chunk's buffer goes back to pool, and its IDs into its file's entry.
func (cs *chunkStore) start(ctx context.Context, g *errgroup.Group, jobs <-chan chunkJob, pool *bufferPool) {
	writers := max(4, 2*cs.jobs)
	stores := make(chan storeJob, writers)
	sealPool := make(chan *repo.ChunkBuffers, cs.jobs+writers)
	for range cap(sealPool) {
		sealPool <- new(repo.ChunkBuffers)
	}
	for range writers {
		g.Go(func() error {
			for s := range stores {
				began := time.Now()
				var n int64
				var err error
				if s.entry.Kind == 0 {
					n, err = cs.repos[s.ri].StoreChunk(ctx, s.entry.ID, s.buf.Sealed())
				} else {
					n, err = cs.packers[s.ri].Add(ctx, s.entry, s.buf.Sealed())
				}
				busy(&cs.storeBusy, began)
				sealPool <- s.buf
				if err != nil {
					return err
				}
				cs.stored[s.ri].Add(n)
			}
			return nil
		})
	}
	var workers sync.WaitGroup
	for range cs.jobs {
		workers.Add(1)
		g.Go(func() error {
			defer workers.Done()
			var prev repo.ChunkBuffers // previous versions of incremental chunks
			for j := range jobs {
				began := time.Now()
				if j.fill != nil {
					if err := j.fill.apply(ctx, (*j.buf)[:j.size], &prev); err != nil {
						return fmt.Errorf("%s: %w", j.f.entry.Path, err)
					}
				}
				if err := cs.chunk(ctx, j, sealPool, stores); err != nil {
					return err
				}
				busy(&cs.sealBusy, began)
				pool.put(j.buf)
			}
			return nil
		})
	}
	// The writers stop when every worker is done.
	go func() {
		workers.Wait()
		close(stores)
	}()
}

// chunk hashes one chunk for every repository and seals it for those that lack it.
func (cs *chunkStore) chunk(ctx context.Context, j chunkJob, sealPool chan *repo.ChunkBuffers, stores chan<- storeJob) error {
	data := (*j.buf)[:j.size]
	for ri, r := range cs.repos {
		h := r.ContentHash(data)
		j.f.ids[ri][j.idx] = h
		if _, seen := cs.known[ri].LoadOrStore(h, struct{}{}); seen {
			continue
		}
		has, err := r.HasChunkOfSize(ctx, h, len(data))
		if err != nil {
			return err
		}
		if has {
			continue
		}
		w := sealer{cs: cs, ri: ri, id: h, sealPool: sealPool, stores: stores}
		if cs.packers[ri] == nil {
			err = w.seal(ctx, 0, 0, func(b *repo.ChunkBuffers) ([]byte, error) { return r.SealChunk(h, data, cs.codecOf(j), b) })
		} else {
			err = cs.format2(ctx, w, j, data)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// format2 stores a new chunk in a format-2 repository: small chunks into a pack;
// a large chunk of a relation file as a page delta over the chunk that held the
// same range in the previous backup, when few of its pages changed and the chain
// is short enough; else whole. Chunks of relation files get a page digest, the
// base of the next backup's deltas.
func (cs *chunkStore) format2(ctx context.Context, w sealer, j chunkJob, data []byte) error {
	r := cs.repos[w.ri]
	cfg := r.Config()
	relation := isRelationFile(j.f.entry) && len(data)%repo.PageSize == 0
	if relation && len(data) >= minDigested {
		d := repo.DigestOf(w.id, data)
		if err := w.seal(ctx, repo.KindDigest, 0, func(b *repo.ChunkBuffers) ([]byte, error) { return r.SealDigest(d, cs.codec, b) }); err != nil {
			return err
		}
	}
	if len(data) < cfg.PackThreshold {
		codec := cs.codecOf(j)
		if len(data) <= tinyObject && codec.ID() == compress.Zstd {
			codec = lz4Codec
		}
		return w.seal(ctx, repo.KindChunk, 0, func(b *repo.ChunkBuffers) ([]byte, error) { return r.SealChunk(w.id, data, codec, b) })
	}
	if relation {
		if base, ok := cs.base(w.ri, j); ok {
			var db repo.ChunkBuffers
			digest, found, err := r.GetDigest(ctx, base, &db)
			if err != nil {
				return err
			}
			depth, err := r.Depth(ctx, base)
			if err != nil {
				return err
			}
			if found && depth < cfg.MaxDeltaDepth {
				pages := repo.ChangedPages(data, digest)
				if 2*len(pages) <= (len(data)+repo.PageSize-1)/repo.PageSize {
					w.base = base
					return w.seal(ctx, repo.KindDelta, uint8(depth+1), func(b *repo.ChunkBuffers) ([]byte, error) {
						return r.SealDelta(base, data, pages, cs.codec, b)
					})
				}
			}
		}
	}
	return w.seal(ctx, 0, 0, func(b *repo.ChunkBuffers) ([]byte, error) { return r.SealChunk(w.id, data, cs.codecOf(j), b) })
}

// codecOf is the codec of a job's chunk: its file's, else the backup's.
func (cs *chunkStore) codecOf(j chunkJob) compress.Codec {
	if j.f.codec != nil {
		return j.f.codec
	}
	return cs.codec
}

// tinyObject: up to this size a zstd encoder's fixed cost per call (building its
// tables, ~13 µs for an 8 kB page here) is five times lz4's, and a cluster of
// thousands of one-page relation files spends its backup in it; such objects are a
// small share of the stored bytes, so they take lz4 whatever zstd level was asked.
const tinyObject = 64 << 10

var lz4Codec, _ = compress.Parse("lz4")

// minDigested is the smallest chunk worth a page digest: smaller ones are stored
// whole (in a pack) whatever changed in them.
const minDigested = 64 << 10

// base is the chunk that held the job's file range in the previous backup.
func (cs *chunkStore) base(ri int, j chunkJob) (repo.Hash, bool) {
	prev := cs.prev[ri][j.f.entry.Path].Chunks
	if j.idx >= len(prev) {
		return repo.Hash{}, false
	}
	return prev[j.idx], prev[j.idx] != j.f.ids[ri][j.idx]
}

// isRelationFile reports whether a file holds relation pages: those change a page
// at a time, and are worth page deltas.
func isRelationFile(f repo.File) bool {
	p := f.Path
	return f.Size%repo.PageSize == 0 && (strings.HasPrefix(p, "base/") || strings.HasPrefix(p, "global/") || strings.HasPrefix(p, "pg_tblspc/"))
}

// sealer seals one object of a chunk into a buffer of the pool and hands it to
// the writers.
type sealer struct {
	cs       *chunkStore
	ri       int
	id       repo.Hash
	base     repo.Hash // of a page delta
	sealPool chan *repo.ChunkBuffers
	stores   chan<- storeJob
}

func (w sealer) seal(ctx context.Context, kind, depth uint8, seal func(*repo.ChunkBuffers) ([]byte, error)) error {
	waited := time.Now()
	var sb *repo.ChunkBuffers
	select {
	case sb = <-w.sealPool:
	case <-ctx.Done():
		return ctx.Err()
	}
	w.cs.sealBusy.Add(-int64(time.Since(waited))) // waiting for a writer is not sealing
	if _, err := seal(sb); err != nil {
		w.sealPool <- sb
		return err
	}
	waited = time.Now()
	select {
	case w.stores <- storeJob{ri: w.ri, entry: repo.IndexEntry{ID: w.id, Kind: kind, Depth: depth, Base: w.base}, buf: sb}:
	case <-ctx.Done():
		return ctx.Err()
	}
	w.cs.sealBusy.Add(-int64(time.Since(waited)))
	return nil
}

// times is the stages' busy times once the pipeline has finished.
func (cs *chunkStore) times(read time.Duration) StageTimes {
	return StageTimes{Read: read, Seal: time.Duration(cs.sealBusy.Load()), Store: time.Duration(cs.storeBusy.Load())}
}
