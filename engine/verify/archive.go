package verify

import (
	"context"
	"fmt"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/wal/inventory"
)

// archives checks the whole WAL archive of every cluster in scope: runs of segments missing
// inside a timeline, and history files recovery could not use. It reuses the inventory that
// list and restore build, so verify reports the gaps they would meet.
func (v *run) archives(ctx context.Context) error {
	for _, c := range v.clusters {
		if c.ident == nil {
			continue // reported: without the segment size the archive cannot be read
		}
		inv, err := inventory.Load(ctx, []*repo.Repo{v.r}, c.name, c.ident.WALSegSize)
		if err != nil {
			v.probs.add(repo.VerifyProblem{Object: repo.WALPrefix(c.name), Kind: KindWAL,
				Error: fmt.Sprintf("the WAL archive of cluster %s cannot be taken stock of: %v", c.name, err)})
			continue
		}
		for _, id := range inv.IDs() {
			t := inv.Timelines[id]
			if t.HistoryErr != nil {
				v.probs.add(repo.VerifyProblem{Object: repo.WALObjectName(c.name, fmt.Sprintf("%08X.history", id)), Kind: KindWALHistory,
					Error: fmt.Sprintf("the history file of timeline %d cannot be used: %v", id, t.HistoryErr)})
			}
			for _, g := range inv.Gaps(t) {
				first, last := g.Names(inv.SegSize)
				p := repo.VerifyProblem{Object: repo.WALObjectName(c.name, first), Kind: KindWALGap,
					Error: fmt.Sprintf("WAL segment %s is missing on timeline %d, with WAL archived after it: recovery cannot pass it", first, id)}
				if g.Count() > 1 {
					p.Last = repo.WALObjectName(c.name, last)
					p.Error = fmt.Sprintf("WAL segments %s to %s (%d) are missing on timeline %d, with WAL archived after them: recovery cannot pass them", first, last, g.Count(), id)
				}
				v.probs.add(p)
			}
		}
	}
	return nil
}
