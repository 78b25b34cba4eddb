package expire

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/pgward/pgward/engine/retention"
	"github.com/pgward/pgward/repo"
)

// plannedRemoval is what the forget phase deletes.
type plannedRemoval struct {
	expired   []string         // backup IDs, oldest first
	wal       []repo.WALObject // oldest first within each area
	stalePins []string
}

// plan reads the manifests and pins, applies the policy and decides the WAL; it fills in
// the result's verdicts and the bytes the manifests and WAL hold.
func plan(ctx context.Context, r *repo.Repo, o Options, res *Result) (*plannedRemoval, error) {
	ids, err := r.BackupIDs(ctx, o.Cluster)
	if err != nil {
		return nil, err
	}
	pins, err := r.Pins(ctx, o.Cluster)
	if err != nil {
		return nil, err
	}
	manifests := map[string]*repo.Manifest{}
	var backups []retention.Backup
	for _, id := range ids {
		m, err := r.Manifest(ctx, o.Cluster, id)
		if err != nil {
			if errors.Is(err, repo.ErrNoBackup) {
				continue // removed meanwhile
			}
			return nil, fmt.Errorf("%w (expire decides from every manifest: repair or remove a damaged one first; 'pgward verify' names it)", err)
		}
		manifests[id] = m
		_, pinned := pins[id]
		backups = append(backups, retention.Backup{ID: id, Stop: m.StopTime, Pinned: pinned})
	}
	p := &plannedRemoval{}
	for id := range pins {
		if manifests[id] == nil {
			p.stalePins = append(p.stalePins, id)
		}
	}
	sort.Strings(p.stalePins)
	res.StalePins = p.stalePins
	decisions := retention.Apply(o.Policy, backups, o.Now, o.Location)
	var kept []keptBackup
	for _, d := range decisions {
		res.Backups = append(res.Backups, BackupVerdict{ID: d.ID, StopTime: d.Stop, Keep: d.Keep, Reasons: d.Reasons, Pinned: d.Pinned})
		if !d.Keep {
			p.expired = append(p.expired, d.ID)
			continue
		}
		kept = append(kept, keptBackup{m: manifests[d.ID], window: d.Window || !o.Policy.Windowed()})
	}
	sort.Strings(p.expired) // IDs sort by time: oldest first
	res.Expired = append(res.Expired, p.expired...)
	if len(kept) > 0 {
		if p.wal, err = planWAL(ctx, r, o.Cluster, kept, &res.WAL); err != nil {
			return nil, err
		}
	}
	for _, w := range p.wal {
		res.FreedBytes += w.Size
	}
	return p, nil
}

// forget deletes the expired manifests, then the WAL, then stale pins.
func forget(ctx context.Context, r *repo.Repo, p *plannedRemoval, o Options, res *Result) error {
	for _, id := range p.expired {
		if err := r.DeleteManifest(ctx, o.Cluster, id); err != nil {
			return err
		}
		o.Log.Info("backup expired", "repo", r.String(), "cluster", o.Cluster, "backup", id)
	}
	for _, w := range p.wal {
		if err := r.Storage().Delete(ctx, w.Name); err != nil {
			return fmt.Errorf("removing WAL %s from %s: %w", w.Name, r, err)
		}
	}
	if len(p.wal) > 0 {
		o.Log.Info("WAL removed", "repo", r.String(), "cluster", o.Cluster, "files", res.WAL.RemovedFiles, "bytes", res.WAL.RemovedBytes, "kept_from", res.WAL.KeptFrom)
	}
	for _, id := range p.stalePins {
		if err := r.DeletePin(ctx, o.Cluster, id); err != nil {
			return fmt.Errorf("removing the pin of the missing backup %s: %w", id, err)
		}
	}
	return nil
}
