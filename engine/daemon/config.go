package daemon

import (
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/pgward/pgward/internal/config"
	"github.com/robfig/cron/v3"
)

// Config is a loaded daemon config: the daemon's own settings and one resolved set of
// options per [cluster.NAME] table.
type Config struct {
	Path     string
	Listen   string
	Location *time.Location
	Clusters []*ClusterConfig
}

// ClusterConfig is one cluster's resolved options and its parsed schedules.
type ClusterConfig struct {
	Name    string
	Options *config.Options
	// Backup, Verify and Drill are nil when the cluster has no such schedule.
	Backup, Verify, Drill cron.Schedule
}

// Load reads the config file and resolves every cluster in it. Every problem is reported,
// not only the first.
func Load(path string, env func(string) (string, bool)) (*Config, error) {
	f, err := config.ReadFile(path)
	if err != nil {
		return nil, err
	}
	top, err := config.Resolve(config.Input{Command: "daemon", Flags: map[string][]string{"config": {path}}, Env: env, File: f})
	if err != nil {
		return nil, err
	}
	c := &Config{Path: path, Listen: top.Daemon.Listen, Location: time.Local}
	if top.Daemon.TimeZone != "" {
		if c.Location, err = time.LoadLocation(top.Daemon.TimeZone); err != nil {
			return nil, err
		}
	}
	names := f.Clusters()
	if len(names) == 0 {
		return nil, fmt.Errorf("config file %s has no [cluster.NAME] table: the daemon has nothing to do", path)
	}
	var errs []error
	for _, name := range names {
		cc, err := loadCluster(path, name, f, env)
		if err != nil {
			errs = append(errs, fmt.Errorf("[cluster.%s]: %w", name, err))
			continue
		}
		c.Clusters = append(c.Clusters, cc)
	}
	return c, errors.Join(errs...)
}

func loadCluster(path, name string, f *config.File, env func(string) (string, bool)) (*ClusterConfig, error) {
	o, err := config.Resolve(config.Input{Flags: map[string][]string{"config": {path}, "cluster": {name}}, Env: env, File: f})
	if err != nil {
		return nil, err
	}
	if len(o.Repos) == 0 {
		return nil, errors.New("no repository: set repo at the top of the file or in the table")
	}
	cc := &ClusterConfig{Name: name, Options: o}
	d := o.Daemon
	for _, s := range []struct {
		spec string
		to   *cron.Schedule
	}{{d.BackupSchedule, &cc.Backup}, {d.VerifySchedule, &cc.Verify}, {d.DrillSchedule, &cc.Drill}} {
		if s.spec == "" {
			continue
		}
		if *s.to, err = cron.ParseStandard(s.spec); err != nil {
			return nil, err
		}
	}
	if (cc.Backup != nil || d.WALStream) && o.Conn == "" {
		return nil, errors.New("conn is needed for backup-schedule and wal-stream")
	}
	return cc, nil
}

// same reports whether two resolved configs of a cluster are equal, so a reload leaves an
// unchanged cluster running.
func (c *ClusterConfig) same(other *ClusterConfig) bool {
	return other != nil && reflect.DeepEqual(c.Options.Daemon, other.Options.Daemon) &&
		fmt.Sprintf("%+v", *c.Options) == fmt.Sprintf("%+v", *other.Options)
}
