package verify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/contents"
)

// Mode says how much verify reads.
type Mode string

const (
	// Structure reads metadata only: manifests, the index, listings.
	Structure Mode = "structure"
	// ReadData reads every object in scope.
	ReadData Mode = "read-data"
	// ReadSubset reads the objects the ledger says are due, then the longest unverified until
	// Subset percent of the bytes in scope.
	ReadSubset Mode = "read-data-subset"
)

// DefaultPeriod is how long a verification counts before ReadSubset reads the object again.
const DefaultPeriod = 30 * 24 * time.Hour

// Options say what to verify and how.
type Options struct {
	// Cluster is the cluster to verify; ignored with All.
	Cluster string
	// Backup limits the check to one backup of Cluster (an ID or "latest"); "" checks every
	// backup of the cluster.
	Backup string
	// All verifies every cluster, every backup, the whole WAL archive and, reading data,
	// every object of the repository.
	All bool
	// WAL adds the whole WAL archive of the cluster: gaps, history files, and reading data,
	// every WAL file, summary and streamed partial.
	WAL    bool
	Mode   Mode
	Subset float64 // percent of the bytes in scope, with ReadSubset
	// Period is how long a verification counts (default DefaultPeriod).
	Period time.Duration
	// Jobs is how many objects are read at once (default: the number of CPUs).
	Jobs int
	// Now is the clock (default time.Now); tests move it.
	Now func() time.Time
	Log *slog.Logger
}

func (o *Options) defaults() error {
	if o.Mode == "" {
		o.Mode = Structure
	}
	switch o.Mode {
	case Structure, ReadData, ReadSubset:
	default:
		return fmt.Errorf("verify: unknown mode %q", o.Mode)
	}
	if o.Subset < 0 || o.Subset > 100 {
		return fmt.Errorf("verify: a subset of %g%% is not a share: give 0%% to 100%%", o.Subset)
	}
	if o.All && o.Backup != "" {
		return errors.New("verify: give --backup ID or --all, not both")
	}
	if !o.All {
		if err := repo.ValidClusterName(o.Cluster); err != nil {
			return err
		}
	}
	if o.Period <= 0 {
		o.Period = DefaultPeriod
	}
	if o.Jobs <= 0 {
		o.Jobs = runtime.NumCPU()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Result is what one run found in one repository: the stable shape of 'verify --json'
// (docs/verify.md).
type Result struct {
	Repository string `json:"repository"`
	// Scope says what was checked, e.g. "cluster main, every backup, WAL archive".
	Scope string `json:"scope"`
	Mode  Mode   `json:"mode"`
	// SubsetPercent is the share asked for with read-data-subset (absent in other modes).
	SubsetPercent *float64 `json:"subset_percent,omitempty"`
	// OK is true when no problem was found.
	OK              bool    `json:"ok"`
	Counts          Counts  `json:"counts"`
	BytesRead       int64   `json:"bytes_read"`
	DurationSeconds float64 `json:"duration_seconds"`
	// Problems are every problem found, by kind and object.
	Problems []repo.VerifyProblem `json:"problems"`
}

// Counts say how much was checked.
type Counts struct {
	Clusters int `json:"clusters"`
	Backups  int `json:"backups"`
	// Chunks are the distinct chunks the backups need, delta bases included, followed to
	// where they are kept.
	Chunks int `json:"chunks"`
	// WALSegments are the segments the backups need to reach consistency.
	WALSegments int `json:"wal_segments"`
	// Objects are the objects in scope for reading; ObjectsRead those read this time,
	// ObjectsSkipped those not read because the ledger has them verified recently enough.
	Objects        int `json:"objects"`
	ObjectsRead    int `json:"objects_read"`
	ObjectsSkipped int `json:"objects_skipped"`
	Problems       int `json:"problems"`
}

// run is one verification in progress.
type run struct {
	r     *repo.Repo
	o     Options
	store *contents.Store
	probs *problems
	res   *Result

	// backups are the readable backups in scope.
	backups []backupRef
	// clusters are the clusters in scope, with what was learned of each.
	clusters []*clusterScope
	// pieces are the stored pieces the backups need.
	pieces map[contents.Key]bool
	// units are the objects to read, by name (data modes).
	units map[string]*unit
	// deltas are the page deltas to rebuild, from the packs read.
	deltas deltaForest
}

type backupRef struct {
	cluster, id string
}

// Run verifies one repository. It returns an error when it could not do its job (the
// repository lock, a listing that fails); damage it finds is in Result.Problems, and
// Result.OK is false.
func Run(ctx context.Context, r *repo.Repo, o Options) (*Result, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	start := o.Now()
	lock, err := r.TakeLock(ctx, repo.LockRequest{Mode: repo.ModeShared, Purpose: "verify"})
	if err != nil {
		return nil, fmt.Errorf("verify of %s: %w", r, err)
	}
	defer lock.Unlock(context.WithoutCancel(ctx))
	// What this process loaded of the index before may predate a sweep or new backups.
	r.InvalidateIndex(r.IndexGeneration())
	v := &run{r: r, o: o, probs: newProblems(), pieces: map[contents.Key]bool{}, units: map[string]*unit{},
		res: &Result{Repository: r.String(), Mode: o.Mode, Problems: []repo.VerifyProblem{}}}
	if o.Mode == ReadSubset {
		v.res.SubsetPercent = &o.Subset
	}
	if err := v.check(ctx); err != nil {
		return nil, err
	}
	// A sweep that took the repository after our lock was lost may have moved what we
	// found missing: then the problems are not evidence of damage.
	if err := lock.Check(ctx); err != nil {
		return nil, fmt.Errorf("verify of %s: %w; its findings may be a garbage collection's doing, so they are not reported: run verify again", r, err)
	}
	v.res.Problems = v.probs.list()
	v.res.Counts.Problems = len(v.res.Problems)
	v.res.OK = len(v.res.Problems) == 0
	v.res.DurationSeconds = o.Now().Sub(start).Seconds()
	err = r.PutVerifyRun(ctx, repo.VerifyRun{Time: start.UTC(), DurationSeconds: v.res.DurationSeconds, OK: v.res.OK,
		Scope: v.res.Scope, Mode: string(o.Mode), ObjectsRead: v.res.Counts.ObjectsRead, BytesRead: v.res.BytesRead,
		ProblemCount: len(v.res.Problems), Problems: v.res.Problems})
	if err != nil {
		return v.res, err
	}
	o.Log.Debug("verify done", "repo", r.String(), "scope", v.res.Scope, "mode", o.Mode, "problems", len(v.res.Problems),
		"objects_read", v.res.Counts.ObjectsRead, "bytes_read", v.res.BytesRead)
	return v.res, nil
}

// check runs the passes.
func (v *run) check(ctx context.Context) error {
	if err := v.scope(ctx); err != nil {
		return err
	}
	var err error
	v.store, err = contents.Load(ctx, v.r, func(name string, err error) error {
		v.probs.add(repo.VerifyProblem{Object: name, Kind: KindIndex, Error: err.Error()})
		return nil
	})
	if err != nil {
		return err
	}
	if err := v.structure(ctx); err != nil {
		return err
	}
	if v.o.WAL || v.o.All {
		if err := v.archives(ctx); err != nil {
			return err
		}
	}
	if v.o.Mode != Structure {
		if err := v.readData(ctx); err != nil {
			return err
		}
	}
	return v.attribute(ctx)
}
