package engine

import (
	"context"
	"sync"
	"sync/atomic"

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
	// known[r] holds the chunk IDs repository r is known to have: seeded from its
	// previous backup's manifest (a manifest is written only after its chunks)
	// and from this backup's own chunks.
	known []*sync.Map
	// stored[r] counts the bytes newly written to repository r.
	stored []atomic.Int64
}

func newChunkStore(repos []*repo.Repo, codec compress.Codec, jobs int) *chunkStore {
	cs := &chunkStore{repos: repos, codec: codec, jobs: jobs, known: make([]*sync.Map, len(repos)), stored: make([]atomic.Int64, len(repos))}
	for i := range cs.known {
		cs.known[i] = new(sync.Map)
	}
	return cs
}

// seed records the chunks of a repository's previous backup as present.
func (cs *chunkStore) seed(ri int, m *repo.Manifest) {
	for _, f := range m.Files {
		for _, c := range f.Chunks {
			cs.known[ri].Store(c, struct{}{})
		}
	}
}

type storeJob struct {
	ri  int
	id  repo.Hash
	buf *repo.ChunkBuffers
}

// start runs the workers and writers in g until jobs is closed and drained; each
// chunk's buffer goes back to pool, and its IDs into its file's entry.
func (cs *chunkStore) start(ctx context.Context, g *errgroup.Group, jobs <-chan chunkJob, pool chan<- *[]byte) {
	writers := max(4, 2*cs.jobs)
	stores := make(chan storeJob, writers)
	sealPool := make(chan *repo.ChunkBuffers, cs.jobs+writers)
	for range cap(sealPool) {
		sealPool <- new(repo.ChunkBuffers)
	}
	for range writers {
		g.Go(func() error {
			for s := range stores {
				n, err := cs.repos[s.ri].StoreChunk(ctx, s.id, s.buf.Sealed())
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
			for j := range jobs {
				if err := cs.chunk(ctx, j, sealPool, stores); err != nil {
					return err
				}
				pool <- j.buf
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
		has, err := r.HasChunk(ctx, h)
		if err != nil {
			return err
		}
		if has {
			continue
		}
		var sb *repo.ChunkBuffers
		select {
		case sb = <-sealPool:
		case <-ctx.Done():
			return ctx.Err()
		}
		if _, err := r.SealChunk(h, data, cs.codec, sb); err != nil {
			return err
		}
		select {
		case stores <- storeJob{ri: ri, id: h, buf: sb}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
