package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/pgward/pgward/internal/config"
	"github.com/pgward/pgward/repo"
)

// Options start a daemon.
type Options struct {
	// ConfigPath is the config file (the daemon needs one: its clusters are its tables).
	ConfigPath string
	// Env looks up environment variables (os.LookupEnv).
	Env func(string) (string, bool)
	// Reload receives a value for every SIGHUP.
	Reload <-chan struct{}
	// Grace is how long a running job may go on after shutdown began (default 20 s).
	Grace time.Duration
	// Verify runs an incremental verify of a cluster's repositories and summarizes it; nil
	// makes verify-schedule an error.
	Verify func(ctx context.Context, repos []*repo.Repo, o *config.Options) (string, error)
	// LastVerify is when the repositories were last verified (zero: unknown).
	LastVerify func(ctx context.Context, repos []*repo.Repo) time.Time
	Version    string
	Log        *slog.Logger
}

// Daemon is a running daemon.
type Daemon struct {
	o       Options
	log     *slog.Logger
	metrics *metrics
	started time.Time
	// hooksRunning counts hooks still running; a shutdown waits for them (each is bounded
	// by hook-timeout), so the events of the last jobs are delivered.
	hooksRunning sync.WaitGroup

	mu       sync.Mutex
	config   *Config
	clusters map[string]*cluster
	sizes    []RepoSize
}

// Run loads the config, serves HTTP, runs every cluster, reloads on o.Reload, and returns
// nil once ctx is canceled and everything has stopped.
func Run(ctx context.Context, o Options) error {
	if o.Grace <= 0 {
		o.Grace = 20 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	cfg, err := Load(o.ConfigPath, o.Env)
	if err != nil {
		return err
	}
	d := &Daemon{o: o, log: o.Log, metrics: newMetrics(), started: time.Now(), config: cfg, clusters: map[string]*cluster{}}
	if err := d.checkVerify(cfg); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("the daemon cannot listen on %s (listen in [daemon]): %w", cfg.Listen, err)
	}
	srv := &http.Server{Handler: d.handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	for _, cc := range cfg.Clusters {
		d.startCluster(ctx, cc, nil)
	}
	measured := make(chan struct{})
	go func() {
		defer close(measured)
		d.measureRepos(ctx)
	}()
	d.log.Info("daemon started", "listen", ln.Addr().String(), "clusters", len(cfg.Clusters), "config", o.ConfigPath)
	notifySystemd("READY=1")
	for {
		select {
		case <-ctx.Done():
			d.log.Info("daemon stopping: no new jobs; running jobs get a grace period", "grace", o.Grace)
			notifySystemd("STOPPING=1")
			d.stopAll(d.allClusters())
			<-measured
			d.hooksRunning.Wait()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = srv.Shutdown(sctx)
			cancel()
			d.log.Info("daemon stopped")
			return nil
		case <-o.Reload:
			d.reload(ctx)
		}
	}
}

func (d *Daemon) cfg() *Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.config
}

func (d *Daemon) checkVerify(cfg *Config) error {
	for _, cc := range cfg.Clusters {
		if cc.Verify != nil && d.o.Verify == nil {
			return fmt.Errorf("[cluster.%s]: verify-schedule is set, but this build has no verify", cc.Name)
		}
	}
	return nil
}

// startCluster starts a cluster; prev is the same cluster under its previous config (nil:
// none), whose status carries over, so a reload neither forgets the last jobs' outcomes nor
// reports a breached objective a second time.
func (d *Daemon) startCluster(ctx context.Context, cc *ClusterConfig, prev *cluster) {
	c := newCluster(d, cc)
	if prev != nil {
		c.inherit(prev)
	}
	d.mu.Lock()
	d.clusters[cc.Name] = c
	d.mu.Unlock()
	c.start(ctx)
}

func (d *Daemon) allClusters() []*cluster {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*cluster
	for _, c := range d.clusters {
		out = append(out, c)
	}
	return out
}

// stopAll stops clusters in parallel, each with the grace period.
func (d *Daemon) stopAll(cs []*cluster) {
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.stop(d.o.Grace)
		}()
	}
	wg.Wait()
}

// reload reads the config again: a config that does not load is refused and the running
// one kept; clusters whose settings changed are restarted, new ones started, removed ones
// stopped, unchanged ones left alone.
func (d *Daemon) reload(ctx context.Context) {
	cfg, err := Load(d.o.ConfigPath, d.o.Env)
	if err == nil {
		err = d.checkVerify(cfg)
	}
	if err != nil {
		d.log.Error("reload refused: the config file does not load; the running config stays", "error", err)
		return
	}
	old := d.cfg()
	if cfg.Listen != old.Listen {
		d.log.Warn("listen changed; it takes effect at the next start", "listen", old.Listen)
		cfg.Listen = old.Listen
	}
	keep := map[string]bool{}
	for _, cc := range cfg.Clusters {
		d.mu.Lock()
		c := d.clusters[cc.Name]
		d.mu.Unlock()
		if c != nil && c.cfg.same(cc) {
			keep[cc.Name] = true
		}
	}
	var stop []*cluster
	d.mu.Lock()
	for name, c := range d.clusters {
		if !keep[name] {
			stop = append(stop, c)
			delete(d.clusters, name)
		}
	}
	d.config = cfg
	d.mu.Unlock()
	d.stopAll(stop)
	prev := map[string]*cluster{}
	for _, c := range stop {
		prev[c.cfg.Name] = c
	}
	for _, cc := range cfg.Clusters {
		if !keep[cc.Name] {
			d.startCluster(ctx, cc, prev[cc.Name])
			delete(prev, cc.Name)
		}
	}
	for name := range prev {
		d.metrics.forget(name) // removed from the config
	}
	d.log.Info("config reloaded", "clusters", len(cfg.Clusters), "restarted_or_started", len(cfg.Clusters)-len(keep), "stopped", len(stop))
}

func (d *Daemon) verifier(ctx context.Context, repos []*repo.Repo, o *config.Options) (string, error) {
	if d.o.Verify == nil {
		return "", errors.New("this build has no verify")
	}
	return d.o.Verify(ctx, repos, o)
}

func (d *Daemon) lastVerify(ctx context.Context, repos []*repo.Repo) time.Time {
	if d.o.LastVerify == nil {
		return time.Time{}
	}
	return d.o.LastVerify(ctx, repos)
}

// notifySystemd tells systemd (Type=notify) about the daemon's state, when it started us.
func notifySystemd(state string) {
	sock := os.Getenv("NOTIFY_SOCKET")
	if sock == "" {
		return
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return
	}
	defer conn.Close()
	_, _ = conn.Write([]byte(state))
}
