package expire

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/pgward/pgward/engine/retention"
	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/gc"
)

// Options say what to expire and how.
type Options struct {
	Cluster string
	Policy  retention.Policy
	DryRun  bool
	// Now is the clock the time rules measure from (default time.Now); Location the zone of
	// the calendar rules (default time.Local).
	Now      time.Time
	Location *time.Location
	Log      *slog.Logger
}

// Result is what expire did (or, in a dry run, would do) in one repository.
type Result struct {
	Repository string          `json:"repository"`
	Cluster    string          `json:"cluster"`
	Policy     string          `json:"policy"`
	DryRun     bool            `json:"dry_run"`
	Backups    []BackupVerdict `json:"backups"`
	// Expired are the backups removed, oldest first.
	Expired   []string  `json:"expired"`
	WAL       WALResult `json:"wal"`
	StalePins []string  `json:"stale_pins,omitempty"`
	Sweep     Sweep     `json:"sweep"`
	// FreedBytes is what the removed manifests, WAL and garbage held.
	FreedBytes int64 `json:"freed_bytes"`
}

// BackupVerdict is the policy's decision on one backup.
type BackupVerdict struct {
	ID       string    `json:"id"`
	StopTime time.Time `json:"stop_time"`
	Keep     bool      `json:"keep"`
	Reasons  []string  `json:"reasons,omitempty"`
	Pinned   bool      `json:"pinned,omitempty"`
}

// Sweep is what the garbage collection did or would do.
type Sweep struct {
	gc.Stats
	// Skipped says why the sweep did not run (running backups held the repository).
	Skipped string `json:"skipped,omitempty"`
	// MissingChunks counts chunks a kept backup needs that are stored nowhere (see verify).
	MissingChunks int `json:"missing_chunks,omitempty"`
}

// Run expires one repository.
func Run(ctx context.Context, r *repo.Repo, o Options) (*Result, error) {
	if err := o.Policy.Validate(); err != nil {
		return nil, err
	}
	if err := repo.ValidClusterName(o.Cluster); err != nil {
		return nil, err
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.Location == nil {
		o.Location = time.Local
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	res := &Result{Repository: r.String(), Cluster: o.Cluster, Policy: o.Policy.String(), DryRun: o.DryRun, Expired: []string{}}
	p, err := plan(ctx, r, o, res)
	if err != nil {
		return nil, err
	}
	if o.DryRun {
		return res, dryRunSweep(ctx, r, p, o, res)
	}
	if err := forget(ctx, r, p, o, res); err != nil {
		return res, err
	}
	return res, sweep(ctx, r, o, res)
}

// dryRunSweep estimates the sweep as if the expired backups were gone.
func dryRunSweep(ctx context.Context, r *repo.Repo, p *plannedRemoval, o Options, res *Result) error {
	exclude := map[repo.ManifestRef]bool{}
	for _, id := range p.expired {
		exclude[repo.ManifestRef{Cluster: o.Cluster, ID: id}] = true
	}
	gp, err := gc.MakePlan(ctx, r, gc.Options{Exclude: exclude, Log: o.Log})
	if err != nil {
		return err
	}
	res.Sweep.DeletedChunks = len(gp.DeadChunks)
	res.Sweep.DeletedPacks = len(gp.DeadPacks) + len(gp.Repack)
	res.Sweep.RepackedPacks = len(gp.Repack)
	res.Sweep.RepackedBytes = gp.RepackBytes
	res.Sweep.LeftoversRemoved = len(gp.Leftovers)
	res.Sweep.FreedBytes = gp.Freed
	res.Sweep.MissingChunks = gp.MissingCount
	if gp.Reindex {
		res.Sweep.IndexDeleted = len(gp.OldIndex)
	}
	res.FreedBytes += gp.Freed
	return nil
}

// sweep collects the garbage under the exclusive lock.
func sweep(ctx context.Context, r *repo.Repo, o Options, res *Result) error {
	gp, st, err := gc.Collect(ctx, r, repo.LockRequest{Purpose: "expire of " + o.Cluster}, gc.Options{Log: o.Log})
	if errors.Is(err, repo.ErrLocked) {
		res.Sweep.Skipped = err.Error()
		o.Log.Warn("garbage collection skipped: the next expire does it", "repo", r.String(), "reason", err)
		return nil
	}
	res.Sweep.Stats = st
	res.FreedBytes += st.FreedBytes
	if gp != nil {
		res.Sweep.MissingChunks = gp.MissingCount
		if gp.MissingCount > 0 {
			o.Log.Warn("kept backups need chunks that are stored nowhere; run 'pgward verify --all' to name them", "repo", r.String(), "chunks", gp.MissingCount)
		}
	}
	if err != nil {
		return fmt.Errorf("garbage collection in %s: %w (a rerun of expire finishes it; nothing a kept backup needs was deleted)", r, err)
	}
	return nil
}
