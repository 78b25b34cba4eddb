package gc

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/pgward/pgward/repo"
)

// Options tune a collection.
type Options struct {
	// Exclude are backups not to count as roots: those expire is about to remove (a dry
	// run plans with them gone, before anything is deleted).
	Exclude map[repo.ManifestRef]bool
	// RepackThreshold is the share of a pack's bytes that must be dead before its live
	// entries are copied into new packs (default 0.25).
	RepackThreshold float64
	// LeftoverAge is how old a leftover outside the lock-protected names must be to be
	// collected (default one hour).
	LeftoverAge time.Duration
	// MaxIndexObjects: with more index objects than this, they are merged (default 64).
	MaxIndexObjects int
	Log             *slog.Logger
}

func (o *Options) defaults() {
	if o.RepackThreshold <= 0 {
		o.RepackThreshold = 0.25
	}
	if o.LeftoverAge <= 0 {
		o.LeftoverAge = time.Hour
	}
	if o.MaxIndexObjects <= 0 {
		o.MaxIndexObjects = 64
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// Plan is what a collection would do, and the bytes it would free.
type Plan struct {
	Backups      int // manifests counted as roots
	LiveChunks   int
	DeadChunks   []repo.Hash // whole chunk objects to delete
	DeadPacks    []string    // packs with no live entry
	Repack       []string    // packs whose live entries move to new packs
	RepackBytes  int64       // live bytes the repack copies
	Reindex      bool
	OldIndex     []string // index objects the new index replaces
	LiveEntries  int
	Leftovers    []repo.Leftover
	MissingCount int // chunks some backup needs that are stored nowhere

	// Freed is the bytes the collection frees: dead objects, the dead part of repacked
	// packs, leftovers where their size is known.
	Freed int64

	store *store
	live  *live
}

// Empty reports whether the plan changes nothing.
func (p *Plan) Empty() bool {
	return len(p.DeadChunks) == 0 && len(p.DeadPacks) == 0 && len(p.Repack) == 0 && !p.Reindex && len(p.Leftovers) == 0
}

// MakePlan computes what a collection would do now. Only under the repository's exclusive
// lock is the plan safe to apply; without it (a dry run) it is an estimate, since writers
// may be adding objects the plan takes for garbage.
func MakePlan(ctx context.Context, r *repo.Repo, o Options) (*Plan, error) {
	o.defaults()
	roots, n, err := roots(ctx, r, o.Exclude)
	if err != nil {
		return nil, err
	}
	s, err := load(ctx, r)
	if err != nil {
		return nil, err
	}
	l, err := mark(ctx, r, s, roots)
	if err != nil {
		return nil, err
	}
	p := &Plan{Backups: n, LiveChunks: len(roots), MissingCount: len(l.missing), store: s, live: l}
	for id, size := range s.Whole {
		if !l.whole[id] {
			p.DeadChunks = append(p.DeadChunks, id)
			p.Freed += size
		}
	}
	slices.SortFunc(p.DeadChunks, func(a, b repo.Hash) int { return strings.Compare(a.String(), b.String()) })
	p.planPacks(o)
	if err := p.planLeftovers(ctx, r, o); err != nil {
		return nil, err
	}
	return p, nil
}

// roots reads every manifest not excluded and returns the chunks they name.
func roots(ctx context.Context, r *repo.Repo, exclude map[repo.ManifestRef]bool) (map[repo.Hash]bool, int, error) {
	refs, err := r.AllManifests(ctx)
	if err != nil {
		return nil, 0, err
	}
	ids := map[repo.Hash]bool{}
	n := 0
	for _, ref := range refs {
		if exclude[ref] {
			continue
		}
		m, err := r.Manifest(ctx, ref.Cluster, ref.ID)
		if err != nil {
			return nil, 0, fmt.Errorf("%w (a backup whose manifest cannot be read stops garbage collection: what it needs is unknown; run 'pgward verify', and remove the backup if it is lost)", err)
		}
		n++
		for _, f := range m.Files {
			for _, c := range f.Chunks {
				ids[c] = true
			}
		}
	}
	return ids, n, nil
}

// planPacks decides, pack by pack, between keeping, deleting and repacking, and whether the
// index is rewritten.
func (p *Plan) planPacks(o Options) {
	s, l := p.store, p.live
	liveBytes := map[string]int64{}
	for k := range l.entries {
		e := s.Chosen[k]
		liveBytes[e.Pack] += int64(e.Length)
	}
	p.LiveEntries = len(l.entries)
	for pack, size := range s.Packs {
		lb := liveBytes[pack]
		switch {
		case lb == 0:
			p.DeadPacks = append(p.DeadPacks, pack)
			p.Freed += size
		case float64(size-lb) >= o.RepackThreshold*float64(size):
			p.Repack = append(p.Repack, pack)
			p.RepackBytes += lb
			p.Freed += size - lb
		}
	}
	slices.Sort(p.DeadPacks)
	slices.Sort(p.Repack)
	repacked := map[string]bool{}
	for _, pk := range p.Repack {
		repacked[pk] = true
	}
	// The index is rewritten when any index object names something not chosen and live (a
	// dead entry, a duplicate, an entry of a pack that is gone) or a pack that moves, or when
	// there are too many index objects. A duplicate may equal the chosen entry (a sweep that
	// stopped after writing the new index left the old one, naming the same places): it is
	// still a duplicate.
	p.Reindex = len(p.Repack) > 0 || len(s.Indexes) > o.MaxIndexObjects
	listed := map[entryKey]bool{}
	for _, x := range s.Indexes {
		for _, e := range x.Entries {
			k := entryKey{ID: e.ID, Kind: e.Kind}
			if !l.entries[k] || s.Chosen[k] != e || repacked[e.Pack] || listed[k] {
				p.Reindex = true
				break
			}
			listed[k] = true
		}
	}
	if p.Reindex {
		// Index objects are not counted in Freed: the new ones hold about what the old
		// ones held of live entries, and both are small beside the data.
		for _, x := range s.Indexes {
			p.OldIndex = append(p.OldIndex, x.Name)
		}
	}
}
