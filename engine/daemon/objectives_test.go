package daemon

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/internal/config"
	"github.com/pgward/pgward/repo"
	"github.com/robfig/cron/v3"
)

func testCluster(t *testing.T, d config.Daemon, backup string) *cluster {
	t.Helper()
	dm := &Daemon{log: slog.New(slog.DiscardHandler), metrics: newMetrics(), clusters: map[string]*cluster{}}
	cc := &ClusterConfig{Name: "main", Options: &config.Options{Daemon: d}}
	if backup != "" {
		s, err := cron.ParseStandard(backup)
		if err != nil {
			t.Fatal(err)
		}
		cc.Backup = s
	}
	c := newCluster(dm, cc)
	dm.clusters["main"] = c
	return c
}

// Each objective is judged from the status; a change runs the hooks once, with the event
// on stdin; /healthz names what is breached.
func TestObjectives(t *testing.T) {
	events := filepath.Join(t.TempDir(), "events")
	hook := "cat >> " + events + "; echo >> " + events
	c := testCluster(t, config.Daemon{RPOTarget: time.Minute, RTOTarget: 10 * time.Second, OnFailure: []string{hook}, OnSuccess: []string{hook}, HookTimeout: 10 * time.Second}, "@every 5s")
	now := time.Now()
	c.status.update(func(s *ClusterStatus) {
		s.WindowTo = now.Add(-2 * time.Minute)
		s.NewestBackup = now.Add(-5 * time.Second)
		s.LastBackup = &JobStatus{OK: true, DurationSeconds: 1}
		s.LastDrill = &repo.DrillRecord{OK: true, RTOSeconds: 30}
	})
	c.evaluate()
	s := c.snapshot()
	if s.Healthy || !s.Objectives["rpo"].Breached || !s.Objectives["rto"].Breached || s.Objectives["backup_age"].Breached || s.Objectives["drill"].Breached {
		t.Fatalf("objectives %+v", objectivesOf(s))
	}
	rec := httptestGet(t, c.d, "/healthz")
	if !strings.Contains(rec, "main: rpo breached") || !strings.Contains(rec, "main: rto breached") || strings.Contains(rec, "backup_age") {
		t.Errorf("/healthz: %s", rec)
	}

	// The RPO is met again, the backup is too old now (two intervals, the time the last
	// backup took, and one more interval: 16 s), the next drill failed.
	c.status.update(func(s *ClusterStatus) {
		s.WindowTo = time.Now()
		s.NewestBackup = now.Add(-17 * time.Second)
		s.LastDrill = &repo.DrillRecord{OK: false, Error: "restore: corrupted object"}
	})
	c.evaluate()
	c.evaluate() // no change: no second hook run
	s = c.snapshot()
	if s.Healthy || s.Objectives["rpo"].Breached || !s.Objectives["backup_age"].Breached || !s.Objectives["drill"].Breached || !s.Objectives["rto"].Breached {
		t.Fatalf("objectives %+v", objectivesOf(s))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(events)
		got := string(b)
		if strings.Count(got, `"objective-breached"`) == 4 && strings.Count(got, `"objective-recovered"`) == 1 {
			if !strings.Contains(got, `"objective":"drill"`) || !strings.Contains(got, "corrupted object") {
				t.Errorf("hook events:\n%s", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hook events:\n%s", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func objectivesOf(s ClusterStatus) map[string]Objective {
	out := map[string]Objective{}
	for k, v := range s.Objectives {
		out[k] = *v
	}
	return out
}

func TestBackupAgeAllowed(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	for spec, want := range map[string]time.Duration{"@every 5s": 15*time.Second + 2*time.Second, "0 1 * * *": 48*time.Hour + time.Minute + 2*time.Second} {
		s, _ := cron.ParseStandard(spec)
		if got := backupAgeAllowed(s, ClusterStatus{LastBackup: &JobStatus{DurationSeconds: 2}}, now); got != want {
			t.Errorf("%s: %s, want %s", spec, got, want)
		}
	}
}
