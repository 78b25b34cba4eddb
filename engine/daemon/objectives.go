package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/pgward/pgward/restore"
	"github.com/robfig/cron/v3"
)

// checkEvery is how often a cluster's repository facts are refreshed and its objectives
// evaluated.
const checkEvery = 15 * time.Second

// watchObjectives refreshes what the repository says about the cluster and evaluates its
// objectives, until ctx ends.
func (c *cluster) watchObjectives(ctx context.Context) {
	for {
		c.refresh(ctx)
		c.evaluate()
		select {
		case <-ctx.Done():
			return
		case <-time.After(checkEvery):
		}
	}
}

// refresh reads the backups and the recoverable window from the repositories: the newest
// backup, and the newest durable commit (the RPO).
func (c *cluster) refresh(ctx context.Context) {
	repos, err := c.openRepos(ctx)
	if err == nil {
		var cat *restore.Catalog
		if cat, err = restore.LoadCatalog(ctx, repos, c.cfg.Name); err == nil {
			err = c.fromCatalog(ctx, cat)
		}
	}
	c.status.update(func(s *ClusterStatus) {
		s.StatusError = ""
		if err != nil {
			s.StatusError = err.Error()
		}
	})
	if err != nil {
		c.log.Warn("reading the cluster's state from its repositories failed", "error", err)
	}
	snap := c.snapshot()
	c.d.metrics.state(c.cfg.Name, snap)
}

func (c *cluster) fromCatalog(ctx context.Context, cat *restore.Catalog) error {
	ws, err := cat.Windows(ctx)
	if err != nil {
		return err
	}
	c.status.update(func(s *ClusterStatus) {
		s.Backups = len(cat.Backups)
		if n := len(cat.Backups); n > 0 {
			m := cat.Backups[n-1]
			s.NewestBackup, s.NewestBackupID, s.PGMajor = m.StopTime, m.ID, m.PGVersion/10000
		}
		s.RPOSeconds, s.WindowFrom, s.WindowTo = -1, time.Time{}, time.Time{}
		var newest time.Time
		for _, w := range ws {
			if s.WindowFrom.IsZero() || w.FromTime.Before(s.WindowFrom) {
				s.WindowFrom = w.FromTime
			}
			if to := w.ToTime(); to.After(newest) {
				newest = to
			}
		}
		if !newest.IsZero() {
			s.WindowTo = newest
			s.RPOSeconds = time.Since(newest).Seconds()
		}
	})
	return nil
}

// evaluate sets each objective from the status and runs the hooks of those that changed.
func (c *cluster) evaluate() {
	// One evaluation at a time (the watcher's and a job's), so that an older snapshot
	// never undoes a newer verdict.
	c.evalMu.Lock()
	defer c.evalMu.Unlock()
	d := c.cfg.Options.Daemon
	s := c.snapshot()
	now := time.Now()
	verdicts := map[string]string{} // objective → reason when breached, "" when met
	if d.RPOTarget > 0 {
		switch {
		case s.RPOSeconds < 0:
			verdicts["rpo"] = "no durable commit is known in the repository"
		case s.RPOSeconds > d.RPOTarget.Seconds():
			verdicts["rpo"] = fmt.Sprintf("the newest durable commit is %s old, above the target %s", time.Duration(s.RPOSeconds*1e9).Round(time.Second), d.RPOTarget)
		default:
			verdicts["rpo"] = ""
		}
	}
	if d.RTOTarget > 0 && s.LastDrill != nil && s.LastDrill.OK {
		verdicts["rto"] = ""
		if rto := s.LastDrill.RTOSeconds; rto > d.RTOTarget.Seconds() {
			verdicts["rto"] = fmt.Sprintf("the last drill took %s to recover, above the target %s", time.Duration(rto*1e9).Round(time.Second), d.RTOTarget)
		}
	}
	if c.cfg.Backup != nil {
		verdicts["backup_age"] = ""
		if allowed := backupAgeAllowed(c.cfg.Backup, s, now); s.NewestBackup.IsZero() || now.Sub(s.NewestBackup) > allowed {
			verdicts["backup_age"] = fmt.Sprintf("the newest backup is older than its schedule allows (%s)", allowed.Round(time.Second))
			if s.NewestBackup.IsZero() && (s.LastBackup == nil || s.LastBackup.OK) {
				verdicts["backup_age"] = "" // the first backup is still to come
			}
		}
	}
	if s.LastVerify != nil {
		verdicts["verify"] = ""
		if !s.LastVerify.OK {
			verdicts["verify"] = "the last verify failed: " + s.LastVerify.Error
		}
	}
	if s.LastDrill != nil {
		verdicts["drill"] = ""
		if !s.LastDrill.OK {
			verdicts["drill"] = "the last drill failed: " + s.LastDrill.Error
		}
	}
	c.apply(verdicts, now)
}

// backupAgeAllowed is how old the newest backup may be: two intervals of the schedule (one
// missed run is no breach), plus the time the last backup took, plus a margin of one more
// interval, at most a minute (for the refresh and the job queue: a drill may hold the
// cluster's job lock when a backup is due).
func backupAgeAllowed(sched cron.Schedule, s ClusterStatus, now time.Time) time.Duration {
	a := sched.Next(now)
	interval := sched.Next(a).Sub(a)
	took := time.Duration(0)
	if s.LastBackup != nil {
		took = time.Duration(s.LastBackup.DurationSeconds * float64(time.Second))
	}
	return 2*interval + took + min(interval, time.Minute)
}

// apply records the verdicts; a change of state is logged and runs the hooks.
func (c *cluster) apply(verdicts map[string]string, now time.Time) {
	var changed []Event
	c.status.update(func(s *ClusterStatus) {
		for name, reason := range verdicts {
			o := s.Objectives[name]
			if o == nil {
				o = &Objective{}
				s.Objectives[name] = o
			}
			breached := reason != ""
			if breached != o.Breached {
				kind := "objective-recovered"
				if breached {
					kind, o.Since = "objective-breached", now.UTC()
				}
				changed = append(changed, Event{Event: kind, Cluster: c.cfg.Name, OK: !breached, Time: now.UTC(), Objective: name, Error: reason})
			}
			o.Breached, o.Reason = breached, reason
		}
		// An objective without a verdict now (rto while the last drill failed) keeps its
		// last state.
		s.Healthy = true
		for _, o := range s.Objectives {
			s.Healthy = s.Healthy && !o.Breached
		}
	})
	for _, ev := range changed {
		if ev.OK {
			c.log.Info("objective met again", "objective", ev.Objective)
		} else {
			c.log.Error("objective breached", "objective", ev.Objective, "reason", ev.Error)
		}
		c.d.metrics.event(c.cfg.Name, ev.Event, ev.OK)
		c.hooks(ev)
	}
	c.d.metrics.objectives(c.cfg.Name, c.snapshot())
}
