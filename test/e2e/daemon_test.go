package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pgward/pgward/test/pgtest"
)

// daemonProc is a running 'pgward daemon'.
type daemonProc struct {
	cmd    *exec.Cmd
	url    string
	output *logBuffer
	done   chan error
}

// logBuffer collects the daemon's log while the test reads it.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startDaemon starts the daemon as the postgres OS user (which writes the repository, like
// the archive_command) with the config text.
func startDaemon(t *testing.T, work, configText string) *daemonProc {
	t.Helper()
	cfg := filepath.Join(work, "pgward.toml")
	if err := os.WriteFile(cfg, []byte(configText), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := regexp.MustCompile(`listen = "([^"]+)"`).FindStringSubmatch(configText)[1]
	cmd := exec.Command(pgwardBin, "daemon", "--config", cfg)
	cmd.Env = cleanEnv()
	asPostgresUser(cmd)
	d := &daemonProc{cmd: cmd, url: "http://" + addr, output: &logBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = d.output, d.output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			t.Logf("daemon log:\n%s", tail(d.output.String(), 60))
		}
	})
	return d
}

func (d *daemonProc) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(d.url + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric returns the value of the series whose line starts with prefix (name{labels}).
func (d *daemonProc) metric(t *testing.T, prefix string) (float64, bool) {
	t.Helper()
	_, body := d.get(t, "/metrics")
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, prefix+" ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, prefix)), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// waitWithin polls cond until it holds or the timeout passes.
func waitWithin(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (d *daemonProc) stop(t *testing.T, within time.Duration) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		if err != nil {
			t.Fatalf("daemon exited with %v after SIGTERM", err)
		}
	case <-time.After(within):
		t.Fatalf("daemon still running %s after SIGTERM", within)
	}
}

// TestDaemon: a daemon with a 10-second backup schedule and a 20-second drill schedule on
// a pgbench cluster: within 100 s the metrics show a successful backup and a drill with an
// RTO above 0; keep-last holds; SIGTERM exits 0 within 30 s; the newest backup restores
// with the rows committed before it.
func TestDaemon(t *testing.T) {
	a := startEvents(t, 15)
	c := a.c
	c.Pgbench(t, "postgres", "-i", "-q", "-s", "2")
	insertRows(t, c, 1, 10)
	hooks := filepath.Join(a.work, "hooks.log")
	os.WriteFile(hooks, nil, 0o666)
	os.Chmod(hooks, 0o666)
	d := startDaemon(t, a.work, fmt.Sprintf(`repo = %q
[daemon]
listen = %q
[cluster.main]
conn = %q
checkpoint = "fast"
backup-schedule = "@every 10s"
drill-schedule = "@every 20s"
keep-last = 2
pg-bin = %q
scratch-dir = %q
rpo-target = "1h"
rto-target = "30m"
on-success = ["echo $PGWARD_EVENT $PGWARD_CLUSTER >> %s"]
`, a.repo, freeAddr(t), c.ConnString("postgres"), pgtest.BinDir(t, 15), a.work, hooks))
	waitWithin(t, 100*time.Second, "a successful backup and a drill in the metrics", func() bool {
		b, _ := d.metric(t, `pgward_backup_last_success_timestamp_seconds{cluster="main"}`)
		r, _ := d.metric(t, `pgward_drill_rto_seconds{cluster="main",part="total"}`)
		return b > 0 && r > 0
	})
	if code, body := d.get(t, "/healthz"); code != 200 {
		t.Errorf("/healthz %d: %s", code, body)
	}
	code, body := d.get(t, "/status")
	if code != 200 || !strings.Contains(body, `"name": "main"`) {
		t.Errorf("/status %d: %s", code, body)
	}
	if code, page := d.get(t, "/"); code != 200 || !strings.Contains(page, `data-cluster="main"`) {
		t.Errorf("status page %d: %s", code, page)
	}
	insertRows(t, c, 11, 20)
	// Two more backups, then retention keeps two.
	first, _ := d.metric(t, `pgward_backup_last_success_timestamp_seconds{cluster="main"}`)
	waitWithin(t, 60*time.Second, "two more backups", func() bool {
		v, _ := d.metric(t, `pgward_events_total{cluster="main",event="backup",outcome="success"}`)
		return v >= 3
	})
	last, _ := d.metric(t, `pgward_backup_last_success_timestamp_seconds{cluster="main"}`)
	if last <= first {
		t.Errorf("the backup time did not move: %v → %v", first, last)
	}
	start := time.Now()
	d.stop(t, 30*time.Second)
	t.Logf("daemon stopped %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	if ids := backupIDs(t, a.repo); len(ids) > 2 {
		t.Errorf("keep-last 2 left %d backups: %v", len(ids), ids)
	}
	if b, _ := os.ReadFile(hooks); !strings.Contains(string(b), "backup main") || !strings.Contains(string(b), "drill main") {
		t.Errorf("hooks log:\n%s", b)
	}
	switchAndWait(t, c)
	if got, _ := a.restoreAndCount(t, "r-after", nil); got != "1-20" {
		t.Errorf("restore after the daemon: rows %s, want 1-20", got)
	}
}
