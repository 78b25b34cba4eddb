package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/pgward/pgward/engine"
	"github.com/pgward/pgward/engine/drill"
	"github.com/pgward/pgward/engine/expire"
	"github.com/pgward/pgward/engine/retention"
)

// backup takes a backup (engine.Backup, as the CLI's backup does) and applies the
// cluster's retention after it.
func (c *cluster) backup(ctx context.Context) {
	began := time.Now()
	st := &JobStatus{Time: began.UTC()}
	repos, err := c.openRepos(ctx)
	var res *engine.BackupResult
	if err == nil {
		res, err = engine.Backup(ctx, repos, engine.BackupOptionsFrom(c.cfg.Options))
	}
	st.DurationSeconds = time.Since(began).Seconds()
	st.OK = err == nil
	if err != nil {
		st.Error = err.Error()
		c.log.Error("scheduled backup failed", "error", err)
	} else {
		st.Backup, st.ReadBytes, st.StoredBytes = res.Manifests[0].ID, res.Received, res.Stored
		st.StageSeconds = map[string]float64{"read": res.Stages.Read.Seconds(), "seal": res.Stages.Seal.Seconds(), "store": res.Stages.Store.Seconds()}
		c.log.Info("scheduled backup committed", "backup", st.Backup, "read_bytes", st.ReadBytes, "stored_bytes", st.StoredBytes, "seconds", st.DurationSeconds)
	}
	c.status.update(func(s *ClusterStatus) { s.LastBackup = st })
	c.d.metrics.backup(c.cfg.Name, st, res)
	c.event("backup", st.OK, st.Error, st.Backup, st)
	if err == nil {
		c.expire(ctx)
		c.refresh(ctx)
	}
	c.evaluate()
}

// expire applies the cluster's retention policy, when it has one.
func (c *cluster) expire(ctx context.Context) {
	policy := retention.FromConfig(c.cfg.Options.Keep)
	if policy.Empty() {
		return
	}
	began := time.Now()
	repos, err := c.openRepos(ctx)
	var results []*expire.Result
	if err == nil {
		results, err = expire.All(ctx, repos, c.cfg.Name, policy, false, c.log)
	}
	st := &JobStatus{Time: began.UTC(), DurationSeconds: time.Since(began).Seconds(), OK: err == nil}
	n, freed := 0, int64(0)
	for _, r := range results {
		n += len(r.Expired)
		freed += r.FreedBytes
	}
	st.Summary = fmt.Sprintf("%d backups expired, %d bytes freed (%s)", n, freed, policy)
	if err != nil {
		st.Error = err.Error()
		c.log.Error("retention after the backup failed", "error", err)
	}
	c.status.update(func(s *ClusterStatus) { s.LastExpire = st })
	c.event("expire", st.OK, st.Error, "", st)
}

// drill runs a restore drill (drill.Run, as the CLI's drill does) of the newest backup.
func (c *cluster) drill(ctx context.Context) {
	repos, err := c.openRepos(ctx)
	if err != nil {
		c.log.Error("scheduled drill failed", "error", err)
		c.event("drill", false, err.Error(), "", nil)
		return
	}
	do, err := drill.OptionsFrom(c.cfg.Options)
	if err != nil {
		c.event("drill", false, err.Error(), "", nil)
		return
	}
	do.Backup, do.Log = "latest", c.d.log // the drill names the cluster itself
	if c.cfg.Options.Daemon.DrillTarget == "random" {
		do.Target = "random"
	}
	rec, err := drill.Run(ctx, repos, do)
	if err != nil {
		c.log.Error("scheduled drill failed", "error", err)
	} else {
		c.log.Info("scheduled drill passed", "backup", rec.Backup, "rto_seconds", rec.RTOSeconds)
	}
	c.status.update(func(s *ClusterStatus) { s.LastDrill = rec })
	c.d.metrics.drill(c.cfg.Name, rec)
	errText := ""
	if err != nil {
		errText = err.Error()
	}
	c.event("drill", err == nil, errText, rec.Backup, rec)
	c.evaluate()
}

// verify runs an incremental verify of the cluster's repositories.
func (c *cluster) verify(ctx context.Context) {
	began := time.Now()
	repos, err := c.openRepos(ctx)
	st := &JobStatus{Time: began.UTC()}
	if err == nil {
		st.Summary, err = c.d.verifier(ctx, repos, c.cfg.Options)
	}
	st.DurationSeconds = time.Since(began).Seconds()
	st.OK = err == nil
	if err != nil {
		st.Error = err.Error()
		c.log.Error("scheduled verify found problems or failed", "error", err)
	}
	c.status.update(func(s *ClusterStatus) { s.LastVerify = st })
	c.d.metrics.verify(c.cfg.Name, st)
	c.event("verify", st.OK, st.Error, "", st)
	c.evaluate()
}

// lastRun is when a job of the kind last ran, as the repository records it (zero: never,
// or unknown).
func (c *cluster) lastRun(ctx context.Context, kind string) time.Time {
	repos, err := c.openRepos(ctx)
	if err != nil || len(repos) == 0 {
		return time.Time{}
	}
	switch kind {
	case "backup":
		ids, err := repos[0].BackupIDs(ctx, c.cfg.Name)
		if err != nil || len(ids) == 0 {
			return time.Time{}
		}
		m, err := repos[0].Manifest(ctx, c.cfg.Name, ids[len(ids)-1])
		if err != nil {
			return time.Time{}
		}
		return m.StartTime
	case "drill":
		recs, err := repos[0].DrillRecords(ctx, c.cfg.Name, 1)
		if err != nil || len(recs) == 0 {
			return time.Time{}
		}
		c.status.update(func(s *ClusterStatus) { s.LastDrill = &recs[0] })
		return recs[0].Time
	case "verify":
		return c.d.lastVerify(ctx, repos)
	}
	return time.Time{}
}
