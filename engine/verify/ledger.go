package verify

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/pgward/pgward/repo"
)

// choose picks the units a run reads. ReadData reads them all. ReadSubset reads those the
// ledger has never seen or saw longer than period ago, then the others by the age of their
// verification, oldest first, until pct percent of the bytes in scope are read (so every
// object is read at least once per period, and a run reads about pct percent of the
// repository even when nothing is due).
func choose(units []*unit, ledger map[string]int64, mode Mode, pct float64, period time.Duration, now time.Time) []*unit {
	slices.SortFunc(units, func(a, b *unit) int { return strings.Compare(a.name, b.name) })
	if mode == ReadData {
		return units
	}
	var total, read int64
	var todo, rest []*unit
	cutoff := now.Add(-period).Unix()
	for _, u := range units {
		total += u.size
		if t, ok := ledger[u.name]; !ok || t < cutoff {
			todo = append(todo, u)
			read += u.size
		} else {
			rest = append(rest, u)
		}
	}
	slices.SortStableFunc(rest, func(a, b *unit) int { return cmp.Compare(ledger[a.name], ledger[b.name]) })
	target := int64(pct / 100 * float64(total))
	for _, u := range rest {
		if read >= target {
			break
		}
		todo = append(todo, u)
		read += u.size
	}
	return todo
}

// updateLedger records what this run read (sound: now; damaged: forgotten, so it is read
// again), forgets objects that no longer exist in the parts of the repository this run
// listed completely, writes the merged ledger, and deletes the ledger objects it merged.
func (v *run) updateLedger(ctx context.Context, ledger map[string]int64, loaded []string, sound map[string]int64, damaged map[string]bool) error {
	for name, t := range sound {
		ledger[name] = t
	}
	for name := range damaged {
		delete(ledger, name)
	}
	for name := range ledger {
		if listed, exists := v.exists(name); listed && !exists {
			delete(ledger, name)
		}
	}
	if len(ledger) == 0 && len(loaded) == 0 {
		return nil
	}
	if err := v.r.PutLedger(ctx, ledger); err != nil {
		return err
	}
	return v.r.DeleteLedger(ctx, loaded)
}

// exists tells whether the run listed the part of the repository an object name belongs to
// in full, and if so whether the object was there.
func (v *run) exists(name string) (listed, exists bool) {
	s := v.store
	if id, ok := repo.ParseChunkObjectName(name); ok {
		_, exists = s.Whole[id]
		return true, exists
	}
	if strings.HasPrefix(name, repo.PackPrefix) {
		_, exists = s.Packs[name]
		return true, exists
	}
	for _, c := range v.clusters {
		base := "clusters/" + c.name + "/"
		rest, ok := strings.CutPrefix(name, base)
		if !ok {
			continue
		}
		switch {
		case strings.HasPrefix(rest, "wal/") || strings.HasPrefix(rest, "wal-summary/") || strings.HasPrefix(rest, "wal-partial/"):
			_, exists = c.wal[name]
			return true, exists
		case strings.HasPrefix(rest, "pins/") && c.every:
			_, exists = c.pins[name]
			return true, exists
		}
	}
	return false, false
}
