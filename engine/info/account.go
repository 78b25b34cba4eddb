package info

import (
	"context"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/contents"
)

// account counts, for every stored piece, how many backups need it, to tell what each
// backup needs and what only it needs.
type account struct {
	store *contents.Store
	sizes map[string]int64 // objects under clusters/, for manifests
	// refs counts the backups that need a piece; owner is the last of them (the only one
	// when refs is 1).
	refs  map[contents.Key]int32
	owner map[contents.Key]usageKey
	usage map[usageKey]*usage
	// perCluster holds the pieces some backup of a cluster needs.
	perCluster   map[string]map[contents.Key]bool
	clusterBytes map[string]int64
}

type usageKey struct{ cluster, id string }

type usage struct {
	referenced, unique int64
}

func newAccount(s *contents.Store, sizes map[string]int64) *account {
	return &account{store: s, sizes: sizes, refs: map[contents.Key]int32{}, owner: map[contents.Key]usageKey{},
		usage: map[usageKey]*usage{}, perCluster: map[string]map[contents.Key]bool{}, clusterBytes: map[string]int64{}}
}

// add follows what one backup needs.
func (a *account) add(ctx context.Context, r *repo.Repo, m *repo.Manifest) error {
	k := usageKey{m.Cluster, m.ID}
	manifest := a.sizes[repo.ManifestObjectName(m.Cluster, m.ID)]
	u := &usage{referenced: manifest, unique: manifest}
	a.usage[k] = u
	if a.perCluster[m.Cluster] == nil {
		a.perCluster[m.Cluster] = map[contents.Key]bool{}
	}
	cl := a.perCluster[m.Cluster]
	a.clusterBytes[m.Cluster] += manifest
	return a.store.Walk(ctx, r, contents.Chunks(m), map[repo.Hash]bool{}, contents.Visitor{
		Piece: func(p contents.Key) {
			size := a.store.Size(p)
			u.referenced += size
			a.refs[p]++
			a.owner[p] = k
			if !cl[p] {
				cl[p] = true
				a.clusterBytes[m.Cluster] += size
			}
		},
		BaseUnknown: func(repo.Hash, error) error { return nil }, // verify names it; the delta still counts
	})
}

// addCluster follows what every readable backup of a cluster needs, reading the manifests
// one at a time (for a cluster whose catalog cannot be loaded).
func (a *account) addCluster(ctx context.Context, r *repo.Repo, cluster string) error {
	ids, err := r.BackupIDs(ctx, cluster)
	if err != nil {
		return err
	}
	for _, id := range ids {
		m, err := r.Manifest(ctx, cluster, id)
		if err != nil {
			continue // damaged or expired: counts for nothing
		}
		if err := a.add(ctx, r, m); err != nil {
			return err
		}
	}
	return nil
}

// finish adds to each backup what only it needs.
func (a *account) finish() {
	for p, n := range a.refs {
		if n == 1 {
			a.usage[a.owner[p]].unique += a.store.Size(p)
		}
	}
	a.perCluster = nil
}

// content returns what the content store occupies, its object count, and the part no
// backup needs.
func (a *account) content() (bytes int64, objects int, unreferenced int64) {
	s := a.store
	for id, size := range s.Whole {
		bytes += size
		if a.refs[contents.Key{ID: id, Kind: contents.Whole}] == 0 {
			unreferenced += size
		}
	}
	live := map[string]int64{}
	for k, e := range s.Chosen {
		if a.refs[k] > 0 {
			live[e.Pack] += int64(e.Length)
		}
	}
	for pack, size := range s.Packs {
		bytes += size
		unreferenced += size - live[pack]
	}
	for _, x := range s.Indexes {
		bytes += x.Size
	}
	return bytes, len(s.Whole) + len(s.Packs) + len(s.Indexes), unreferenced
}
