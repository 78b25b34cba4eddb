package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/location"
	"github.com/pgward/pgward/wal/receive"
	"github.com/robfig/cron/v3"
)

// cluster runs one cluster's schedules, receiver and objective checks.
type cluster struct {
	d      *Daemon
	cfg    *ClusterConfig
	log    *slog.Logger
	status *statusBox

	// jobs serializes the cluster's jobs: one at a time.
	jobs sync.Mutex
	// stopLoops ends scheduling; jobCtx is what running jobs see (canceled only at the end
	// of a shutdown's grace, or when the cluster is removed by a reload).
	stopLoops context.CancelFunc
	jobCtx    context.Context
	stopJobs  context.CancelFunc
	loops     sync.WaitGroup

	mu    sync.Mutex
	repos []*repo.Repo

	// evalMu serializes objective evaluations.
	evalMu sync.Mutex

	// pos is the supervised receiver's position; it outlives the receiver's restarts.
	pos *receive.Position
}

func newCluster(d *Daemon, cfg *ClusterConfig) *cluster {
	c := &cluster{d: d, cfg: cfg, log: d.log.With("cluster", cfg.Name), status: &statusBox{}, pos: &receive.Position{}}
	c.status.s = ClusterStatus{Name: cfg.Name, RPOSeconds: -1, NextRuns: map[string]time.Time{}, Objectives: map[string]*Objective{}, Healthy: true}
	return c
}

// inherit takes over the status of the cluster's previous incarnation (before a reload
// changed its config): the last jobs' outcomes, the objectives that still apply, the
// receiver's position.
func (c *cluster) inherit(prev *cluster) {
	s := prev.status.snapshot()
	s.Running, s.NextRuns = "", map[string]time.Time{}
	d := c.cfg.Options.Daemon
	for name, applies := range map[string]bool{"rpo": d.RPOTarget > 0, "rto": d.RTOTarget > 0, "backup_age": c.cfg.Backup != nil} {
		if !applies {
			delete(s.Objectives, name)
		}
	}
	if s.Receiver != nil {
		s.Receiver.Running = false
	}
	c.status.s = s
	c.pos = prev.pos
}

// start begins the cluster's loops.
func (c *cluster) start(ctx context.Context) {
	lctx, stop := context.WithCancel(ctx)
	c.stopLoops = stop
	c.jobCtx, c.stopJobs = context.WithCancel(context.WithoutCancel(ctx))
	for _, j := range []struct {
		kind  string
		sched cron.Schedule
		run   func(context.Context)
	}{{"backup", c.cfg.Backup, c.backup}, {"verify", c.cfg.Verify, c.verify}, {"drill", c.cfg.Drill, c.drill}} {
		if j.sched == nil {
			continue
		}
		c.loops.Add(1)
		go func() {
			defer c.loops.Done()
			c.schedule(lctx, j.kind, j.sched, j.run)
		}()
	}
	if c.cfg.Options.Daemon.WALStream {
		c.loops.Add(1)
		go func() {
			defer c.loops.Done()
			c.superviseReceiver(lctx)
		}()
	}
	c.loops.Add(1)
	go func() {
		defer c.loops.Done()
		c.watchObjectives(lctx)
	}()
}

// stop ends scheduling, lets a running job finish within grace, then cancels it, and
// waits for everything (receivers upload their partial segment on the way out).
func (c *cluster) stop(grace time.Duration) {
	c.stopLoops()
	done := make(chan struct{})
	go func() {
		c.jobs.Lock() // waits for the running job, if any
		c.jobs.Unlock()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(grace):
		c.log.Warn("a job still runs after the shutdown grace period: canceling it (a canceled backup commits nothing)", "grace", grace)
	}
	c.stopJobs()
	c.loops.Wait()
}

// openRepos opens the cluster's repositories once and keeps them; a failure is retried on
// the next use.
func (c *cluster) openRepos(ctx context.Context) ([]*repo.Repo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.repos != nil {
		return c.repos, nil
	}
	repos, err := location.OpenConfigured(ctx, c.cfg.Options)
	if err != nil {
		return nil, fmt.Errorf("opening the repositories of cluster %s: %w", c.cfg.Name, err)
	}
	c.repos = repos
	return repos, nil
}

// schedule runs job at the schedule's times. A time missed while the daemon was down runs
// once at the start; a job that outlasts its interval is not run twice, the next run is
// the next scheduled time after it ends.
func (c *cluster) schedule(ctx context.Context, kind string, sched cron.Schedule, job func(context.Context)) {
	loc := c.d.cfg().Location
	now := time.Now().In(loc)
	next := sched.Next(now)
	if last := c.lastRun(ctx, kind); !last.IsZero() && sched.Next(last.In(loc)).Before(now) {
		c.log.Info("a scheduled run was missed while the daemon was down: running it now", "job", kind, "last", last)
		next = now
	}
	for {
		c.status.update(func(s *ClusterStatus) { s.NextRuns[kind] = next })
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(next)):
		}
		c.run(ctx, kind, job)
		next = sched.Next(time.Now().In(loc))
	}
}

// run runs one job under the cluster's job lock, unless scheduling stopped (ctx, the
// loop's) while it waited for the lock: a shutdown that waits for a running backup must not
// see a drill start after it.
func (c *cluster) run(ctx context.Context, kind string, job func(context.Context)) {
	c.jobs.Lock()
	defer c.jobs.Unlock()
	if ctx.Err() != nil || c.jobCtx.Err() != nil {
		return
	}
	c.status.update(func(s *ClusterStatus) { s.Running = kind })
	defer c.status.update(func(s *ClusterStatus) { s.Running = "" })
	job(c.jobCtx)
}
