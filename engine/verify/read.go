package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/contents"
	"github.com/pgward/pgward/wal"
)

// readData reads the chosen objects with a bounded pool of workers and records what it
// found in the ledger.
func (v *run) readData(ctx context.Context) error {
	v.collectUnits()
	ledger, loaded, err := v.r.LoadLedger(ctx, func(name string, err error) {
		v.probs.add(repo.VerifyProblem{Object: name, Kind: KindLedger, Error: err.Error()})
	})
	if err != nil {
		return err
	}
	units := make([]*unit, 0, len(v.units))
	for _, u := range v.units {
		units = append(units, u)
	}
	todo := choose(units, ledger, v.o.Mode, v.o.Subset, v.o.Period, v.o.Now())
	v.attachEntries(todo)
	v.res.Counts.Objects = len(units)
	v.res.Counts.ObjectsSkipped = len(units) - len(todo)
	v.o.Log.Debug("verify: reading", "repo", v.r.String(), "objects", len(todo), "of", len(units), "jobs", v.o.Jobs)

	var mu sync.Mutex
	sound, damaged := map[string]int64{}, map[string]bool{}
	// Objects are read whole into fresh buffers: they differ in size by three orders of
	// magnitude (a pin, a pack, a WAL segment), and each is garbage once checked.
	err = each(ctx, v.o.Jobs, todo, func() struct{} { return struct{}{} }, func(_ struct{}, u *unit) {
		n, ok, read := v.read(ctx, u)
		mu.Lock()
		defer mu.Unlock()
		if !read {
			return
		}
		v.res.Counts.ObjectsRead++
		v.res.BytesRead += n
		if ok {
			sound[u.name] = v.o.Now().Unix()
		} else {
			damaged[u.name] = true
		}
	})
	if err != nil {
		return err
	}
	if v.indexDamaged() {
		// Every rebuild would fail on the index, which is reported; the packs whose deltas
		// went unchecked are read again next time.
		for _, e := range v.deltas.entries {
			delete(sound, e.Pack)
		}
	} else if err := v.rebuildDeltas(ctx); err != nil {
		return err
	}
	// A pack whose delta does not rebuild is not sound: it is read again next time.
	for _, p := range v.probs.list() {
		if p.Kind == KindDelta {
			delete(sound, p.Object)
			damaged[p.Object] = true
		}
	}
	return v.updateLedger(ctx, ledger, loaded, sound, damaged)
}

// read reads and checks one object. It returns the bytes read, whether the object is sound,
// and whether it was read at all (an object that vanished, as expire may make a pin or WAL
// vanish, was not).
func (v *run) read(ctx context.Context, u *unit) (n int64, ok, read bool) {
	if u.kind == unitPack {
		return v.readPack(ctx, u)
	}
	plain, err := v.r.ReadObject(ctx, u.name)
	if errors.Is(err, repo.ErrNotFound) && v.vanished(ctx, u) {
		return 0, false, false
	}
	if err == nil {
		err = v.checkContent(u, plain)
	}
	if err != nil {
		v.reportUnit(u, err)
		return u.size, false, true
	}
	return u.size, true, true
}

// checkContent checks what an object's plaintext says beyond its envelope.
func (v *run) checkContent(u *unit, plain []byte) error {
	switch u.kind {
	case unitWAL, unitStreamed:
		n, err := wal.ParseName(u.file)
		if err != nil {
			return nil // not a WAL file name: a stray object, sound as an object
		}
		switch n.Kind {
		case wal.Segment, wal.Partial:
			var sysid uint64
			var major int
			if id := u.cluster.ident; id != nil {
				sysid, _ = strconv.ParseUint(id.SystemIdentifier, 10, 64)
				major = id.PGMajor
			}
			_, err = wal.ValidateSegment(n, plain, int64(len(plain)), sysid, major)
		case wal.History:
			var entries []wal.HistoryEntry
			if entries, err = wal.ParseHistory(plain); err == nil {
				err = wal.CheckHistoryOwner(n.Timeline, entries)
			}
		}
		return err
	case unitSummary:
		return decodeJSON(plain, &repo.WALSummary{})
	case unitPin:
		return decodeJSON(plain, &repo.Pin{})
	}
	return nil // a chunk object: ReadObject checked that it holds the chunk its name says
}

func decodeJSON(plain []byte, v any) error {
	if err := json.Unmarshal(plain, v); err != nil {
		return fmt.Errorf("%w: %v", repo.ErrCorrupt, err)
	}
	return nil
}

// vanished tells whether a missing object went away as the repository's life allows (expire
// removed a pin, WAL below its window or a backup, wal-receive an older partial), rather
// than being lost: nothing still in the repository needs it.
func (v *run) vanished(ctx context.Context, u *unit) bool {
	switch u.kind {
	case unitPin, unitSummary, unitStreamed:
		return true
	case unitWAL:
		for _, b := range u.cluster.walNeeds[u.name] {
			id := b[strings.IndexByte(b, '/')+1:]
			if _, err := v.r.Storage().Stat(ctx, repo.ManifestObjectName(u.cluster.name, id)); !errors.Is(err, repo.ErrNotFound) {
				return false
			}
		}
		return true
	}
	return false // content objects are protected by the shared lock
}

// reportUnit records a damaged object that is not a pack.
func (v *run) reportUnit(u *unit, err error) {
	vp := repo.VerifyProblem{Object: u.name, Error: err.Error()}
	switch u.kind {
	case unitChunk:
		id, _ := repo.ParseChunkObjectName(u.name)
		vp.Kind, vp.Chunk = KindChunk, id.String()
		v.probs.addPieces([]contents.Key{{ID: id, Kind: contents.Whole}}, vp)
		return
	case unitWAL:
		vp.Kind, vp.Backups = KindWAL, u.cluster.walNeeds[u.name]
	case unitSummary:
		vp.Kind = KindWALSummary
	case unitStreamed:
		vp.Kind = KindWALPartial
	case unitPin:
		vp.Kind, vp.Backups = KindPin, []string{backupName(u.cluster.name, u.file)}
	}
	v.probs.add(vp)
}

// readPack reads a pack whole, checks every entry the index names in it, and queues for
// rebuilding the page deltas in it that count (chosen) and are needed (or all of them, with
// --all).
func (v *run) readPack(ctx context.Context, u *unit) (int64, bool, bool) {
	ok := true
	bad := map[repo.IndexEntry]bool{}
	n, err := v.r.CheckPack(ctx, u.name, u.entries, func(e repo.IndexEntry, err error) {
		ok, bad[e] = false, true
		v.probs.addPieces([]contents.Key{{ID: e.ID, Kind: e.Kind}}, repo.VerifyProblem{Object: u.name, Kind: KindPackEntry, Chunk: e.ID.String(), Error: err.Error()})
	})
	if err != nil {
		var keys []contents.Key
		for _, e := range u.entries {
			if k := (contents.Key{ID: e.ID, Kind: e.Kind}); v.store.Chosen[k] == e {
				keys = append(keys, k)
			}
		}
		v.probs.addPieces(keys, repo.VerifyProblem{Object: u.name, Kind: KindPack, Error: err.Error()})
		return n, false, true
	}
	for _, e := range u.entries {
		k := contents.Key{ID: e.ID, Kind: e.Kind}
		if e.Kind == repo.KindDelta && !bad[e] && v.store.Chosen[k] == e && (v.o.All || v.pieces[k]) {
			v.deltas.add(e)
		}
	}
	return n, ok, true
}

// indexDamaged tells whether an index object could not be read.
func (v *run) indexDamaged() bool {
	v.probs.mu.Lock()
	defer v.probs.mu.Unlock()
	for _, p := range v.probs.all {
		if p.Kind == KindIndex {
			return true
		}
	}
	return false
}

// attribute names, for every problem about a stored piece or a chunk kept nowhere, the
// backups that need it: each backup's chunks are followed again, on their own.
func (v *run) attribute(ctx context.Context) error {
	if !v.probs.needsAttribution() {
		return nil
	}
	for _, b := range v.backups {
		m, err := v.r.Manifest(ctx, b.cluster, b.id)
		if err != nil {
			continue // expired meanwhile, or damaged (reported)
		}
		name := backupName(b.cluster, b.id)
		err = v.store.Walk(ctx, v.r, contents.Chunks(m), map[repo.Hash]bool{}, contents.Visitor{
			Piece: func(k contents.Key) {
				if p := v.probs.byPiece[k]; p != nil {
					p.backups[name] = true
				}
			},
			Missing: func(id repo.Hash) {
				if p := v.probs.byChunk[id]; p != nil {
					p.backups[name] = true
				}
			},
			BaseUnknown: func(repo.Hash, error) error { return nil },
		})
		if err != nil {
			return err
		}
	}
	return nil
}
