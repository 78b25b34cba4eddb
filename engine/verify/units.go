package verify

import (
	"slices"
	"strings"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/contents"
)

// unitKind says how an object is read and checked.
type unitKind int

const (
	unitChunk    unitKind = iota // a whole chunk object
	unitPack                     // a pack, every entry the index names in it
	unitWAL                      // an archived WAL file
	unitSummary                  // a WAL summary
	unitStreamed                 // a streamed partial segment
	unitPin                      // a pin
)

// unit is one object to read: the ledger's unit of account. Manifests, index objects and
// identities are no units: every run reads them whole for its structure pass.
type unit struct {
	name string
	size int64
	kind unitKind
	// cluster is the cluster a WAL object, pin or identity belongs to; file the PostgreSQL
	// file name of a WAL object (for summaries and streamed partials, the segment's).
	cluster *clusterScope
	file    string
	// entries are a pack's entries, as index objects name them.
	entries []repo.IndexEntry
}

// collectUnits gathers the objects in scope for reading: what the backups in scope need
// (every object, with --all), and the WAL, pins and identities of their clusters.
func (v *run) collectUnits() {
	add := func(u *unit) {
		if _, ok := v.units[u.name]; !ok {
			v.units[u.name] = u
		}
	}
	s := v.store
	if v.o.All {
		for id, size := range s.Whole {
			add(&unit{name: repo.ChunkObjectName(id), size: size, kind: unitChunk})
		}
		for _, x := range s.Indexes {
			for _, e := range x.Entries {
				if size, ok := s.Packs[e.Pack]; ok {
					add(&unit{name: e.Pack, size: size, kind: unitPack})
				}
			}
		}
	} else {
		for k := range v.pieces {
			if k.Kind == contents.Whole {
				add(&unit{name: s.Object(k), size: s.Size(k), kind: unitChunk})
			} else {
				add(&unit{name: s.Object(k), size: s.Packs[s.Object(k)], kind: unitPack})
			}
		}
	}
	for _, c := range v.clusters {
		for name, size := range c.pins {
			add(&unit{name: name, size: size, kind: unitPin, cluster: c, file: name[strings.LastIndexByte(name, '/')+1:]})
		}
		for _, w := range c.wal {
			if v.o.WAL || v.o.All || c.neededWAL(w) {
				add(&unit{name: w.Name, size: w.Size, kind: walUnitKind(w.Area), cluster: c, file: w.File})
			}
		}
	}
}

func walUnitKind(a repo.WALArea) unitKind {
	switch a {
	case repo.WALSummaryArea:
		return unitSummary
	case repo.WALStreamed:
		return unitStreamed
	}
	return unitWAL
}

// neededWAL tells whether a WAL object belongs to what the backups in scope need: a segment
// between a backup's start and its consistency point, or that segment's summary.
func (c *clusterScope) neededWAL(w repo.WALObject) bool {
	switch w.Area {
	case repo.WALFile:
		return len(c.walNeeds[w.Name]) > 0
	case repo.WALSummaryArea:
		return len(c.walNeeds[repo.WALObjectName(c.name, w.File)]) > 0
	}
	return false
}

// attachEntries gives each pack to read the entries every index object names in it (once
// each), in offset order.
func (v *run) attachEntries(todo []*unit) {
	packs := map[string]*unit{}
	for _, u := range todo {
		if u.kind == unitPack {
			packs[u.name] = u
		}
	}
	if len(packs) == 0 {
		return
	}
	seen := map[repo.IndexEntry]bool{}
	for _, x := range v.store.Indexes {
		for _, e := range x.Entries {
			if u := packs[e.Pack]; u != nil && !seen[e] {
				seen[e] = true
				u.entries = append(u.entries, e)
			}
		}
	}
	for _, u := range packs {
		slices.SortFunc(u.entries, func(a, b repo.IndexEntry) int { return int(a.Offset) - int(b.Offset) })
	}
}
