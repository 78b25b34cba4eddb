package drill

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/restore"
)

// Options say which backup to drill and where.
type Options struct {
	Cluster string
	// Backup is a backup ID or "latest" (default).
	Backup string
	// Target is "" (recover all archived WAL), "random" (a random point in the recoverable
	// window after the backup), or a time in PostgreSQL's syntax.
	Target string
	// PGBin is the directory of the server's binaries; empty: found for the cluster's major
	// version (see FindBinaries).
	PGBin string
	// ScratchDir is where the scratch data directory is made (default: the system's
	// temporary directory). It needs room for the whole restored cluster.
	ScratchDir string
	// RestoreCommand is the restore_command the copy fetches WAL with.
	RestoreCommand string
	Jobs           int
	// Timeout bounds the whole drill (default one hour).
	Timeout time.Duration
	// Rand picks the random target (default: a random source).
	Rand *rand.Rand
	Log  *slog.Logger
}

// Run drills one backup and records the result in every repository that can be written.
// The error is the drill's failure (also in the result), or a failure to record it.
func Run(ctx context.Context, repos []*repo.Repo, o Options) (*repo.DrillRecord, error) {
	o.defaults()
	rec := &repo.DrillRecord{Cluster: o.Cluster, Time: time.Now().UTC(), Requested: o.Backup, Target: o.Target}
	err := run(ctx, repos, o, rec)
	rec.OK = err == nil
	if err != nil {
		rec.Error = err.Error()
	}
	if rerr := record(context.WithoutCancel(ctx), repos, rec); rerr != nil {
		return rec, errors.Join(err, rerr)
	}
	return rec, err
}

func (o *Options) defaults() {
	if o.Backup == "" {
		o.Backup = "latest"
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Hour
	}
	if o.ScratchDir == "" {
		o.ScratchDir = os.TempDir()
	}
	if o.Rand == nil {
		o.Rand = rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// run is the drill itself; it fills in rec as it goes.
func run(ctx context.Context, repos []*repo.Repo, o Options, rec *repo.DrillRecord) error {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	plan, target, err := prepare(ctx, repos, o)
	if err != nil {
		return err
	}
	rec.Backup, rec.Target = plan.Backup.ID, target.Time
	rec.PGVersion = plan.Backup.PGVersion
	bin, err := FindBinaries(o.PGBin, plan.Backup.PGVersion/10000)
	if err != nil {
		return err
	}
	owner, err := serverUser()
	if err != nil {
		return err
	}
	scratch, err := os.MkdirTemp(o.ScratchDir, "pgward-drill-"+o.Cluster+"-")
	if err != nil {
		return fmt.Errorf("making the drill's scratch directory in %s: %w", o.ScratchDir, err)
	}
	defer os.RemoveAll(scratch)
	if err := owner.chown(scratch); err != nil {
		return err
	}
	pgdata := filepath.Join(scratch, "data")
	o.Log.Info("drill: restoring", "cluster", o.Cluster, "backup", plan.Backup.ID, "target", describeTarget(target), "into", pgdata)
	began := time.Now()
	res, err := restore.Run(ctx, repos, restore.Options{Cluster: o.Cluster, BackupID: plan.Backup.ID, PGData: pgdata,
		TablespaceMap: scratchTablespaces(plan.Backup, scratch), Jobs: o.Jobs, UID: owner.uid, GID: owner.gid,
		Recovery: plan.Settings(o.RestoreCommand, target, false), Log: o.Log})
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	restored := time.Now()
	rec.RestoreSeconds = restored.Sub(began).Seconds()
	rec.RestoredBytes = res.Written
	srv, err := start(ctx, bin, pgdata, scratch, owner, o.Log)
	if err != nil {
		return err
	}
	defer srv.stop()
	promoted, lsn, err := srv.waitPromoted(ctx)
	if err != nil {
		return err
	}
	rec.ReplaySeconds = promoted.Sub(restored).Seconds()
	if start, err := parseLSN(plan.Backup.StartLSN); err == nil && lsn > start {
		rec.WALBytesReplayed = int64(lsn - start)
	}
	accepted, err := srv.writeTransaction(ctx)
	if err != nil {
		return err
	}
	rec.AcceptSeconds = accepted.Sub(promoted).Seconds()
	rec.RTOSeconds = accepted.Sub(began).Seconds()
	o.Log.Info("drill: promoted", "cluster", o.Cluster, "rto_seconds", rec.RTOSeconds, "restore_seconds", rec.RestoreSeconds,
		"replay_seconds", rec.ReplaySeconds, "wal_bytes", rec.WALBytesReplayed)
	checked := time.Now()
	rec.Checks, err = srv.check(ctx)
	rec.CheckSeconds = time.Since(checked).Seconds()
	if err != nil {
		return fmt.Errorf("checking the restored cluster: %w", err)
	}
	return nil
}

// prepare plans the restore: the backup, and the target (a random one drawn from the window
// the backup starts).
func prepare(ctx context.Context, repos []*repo.Repo, o Options) (*restore.Plan, restore.Target, error) {
	target := restore.Target{} // the default action at a target is to promote
	if o.Target != "" && o.Target != "random" {
		target.Time = o.Target
	}
	if err := target.Validate(); err != nil {
		return nil, target, err
	}
	req := restore.Request{Cluster: o.Cluster, BackupID: o.Backup, Target: target}
	plan, err := restore.Prepare(ctx, repos, req)
	if err != nil || o.Target != "random" {
		return plan, target, err
	}
	at, ok, err := randomPoint(ctx, plan, o.Rand)
	if err != nil || !ok {
		return plan, target, err // no transaction after the backup: recover all WAL
	}
	target.Time = at.UTC().Format("2006-01-02 15:04:05.000000+00")
	req.Target, req.BackupID = target, plan.Backup.ID
	plan, err = restore.Prepare(ctx, repos, req)
	return plan, target, err
}

// randomPoint draws a time between the backup's end and the last transaction its window
// reaches.
func randomPoint(ctx context.Context, plan *restore.Plan, rng *rand.Rand) (time.Time, bool, error) {
	ws, err := plan.Catalog.Windows(ctx)
	if err != nil {
		return time.Time{}, false, err
	}
	m := plan.Backup
	stop, err := parseLSN(m.StopLSN)
	if err != nil {
		return time.Time{}, false, err
	}
	for _, w := range ws {
		if w.Timeline != plan.Timeline || stop < w.FromLSN || stop > w.End {
			continue
		}
		from, to := m.StopTime, w.ToTime()
		if !to.After(from) {
			return time.Time{}, false, nil
		}
		return from.Add(time.Duration(rng.Int64N(int64(to.Sub(from))) + 1)), true, nil
	}
	return time.Time{}, false, nil
}

func describeTarget(t restore.Target) string {
	if t.Time == "" {
		return "end of the archived WAL"
	}
	return t.Time
}

// scratchTablespaces maps every tablespace of the backup into the scratch directory: a
// drill on the source's host must never write where the source's tablespaces live.
func scratchTablespaces(m *repo.Manifest, scratch string) map[uint32]string {
	out := map[uint32]string{}
	for _, ts := range m.Tablespaces {
		out[ts.OID] = filepath.Join(scratch, fmt.Sprintf("ts-%d", ts.OID))
	}
	return out
}

// record stores the drill's result in every repository; it fails only when none took it.
func record(ctx context.Context, repos []*repo.Repo, rec *repo.DrillRecord) error {
	var errs []error
	for _, r := range repos {
		if err := r.PutDrillRecord(ctx, rec); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == len(repos) {
		return fmt.Errorf("recording the drill: %w", errors.Join(errs...))
	}
	return nil
}
