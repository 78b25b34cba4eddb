package e2e

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/local"
	"github.com/pgward/pgward/test/pgtest"
)

// fleetStatus is the part of /status the fleet test reads.
type fleetStatus struct {
	Healthy  bool `json:"healthy"`
	Clusters []struct {
		Name       string `json:"name"`
		PGMajor    int    `json:"pg_major"`
		LastBackup *struct {
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		} `json:"last_backup"`
		Receiver *struct {
			Running  bool  `json:"running"`
			LagBytes int64 `json:"lag_bytes"`
		} `json:"receiver"`
		Objectives map[string]struct {
			Breached bool   `json:"breached"`
			Reason   string `json:"reason"`
		} `json:"objectives"`
	} `json:"clusters"`
	Repositories []struct {
		Location string `json:"location"`
		Bytes    int64  `json:"bytes"`
	} `json:"repositories"`
}

func (d *daemonProc) status(t *testing.T) fleetStatus {
	t.Helper()
	_, body := d.get(t, "/status")
	var st fleetStatus
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/status: %v\n%s", err, body)
	}
	return st
}

// otherMajor is a major version besides 15 for the fleet's second cluster: the oldest
// tested, else the newest.
func otherMajor(t *testing.T) int {
	edges := pgtest.EdgeVersions()
	for _, m := range edges {
		if m != 15 {
			return m
		}
	}
	t.Skipf("the fleet test needs a PostgreSQL major besides 15 (PGWARD_PG_VERSIONS=%q)", os.Getenv("PGWARD_PG_VERSIONS"))
	return 0
}

// commitEpoch is when row id of events was inserted, in Unix seconds (the server's clock).
func commitEpoch(t *testing.T, c *pgtest.Cluster, id int) float64 {
	t.Helper()
	var s string
	c.QueryRow(t, "postgres", fmt.Sprintf("SELECT extract(epoch FROM at)::text FROM events WHERE id = %d", id), &s)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestDaemonFleet: one daemon manages two clusters of different major versions (issue 15,
// acceptance 2 to 5, and reload):
//   - main (PostgreSQL 15) with a supervised wal-receive through a slot: the RPO metric
//     grows while the source is idle and drops once a new commit is streamed and uploaded;
//   - old (another major): its server is stopped; main's backups go on, old's failures show
//     in /status and turn its backup_age objective breached;
//   - SIGHUP with a bad config is refused and the running config kept; SIGHUP with a drill
//     schedule added to main takes effect: the drill of a backup with a corrupt chunk fails,
//     is recorded as failed, runs the on-failure hook (event JSON on stdin, PGWARD_* in the
//     environment), and /healthz answers 503 naming the drill objective;
//   - the status page, loaded in headless Chromium, shows both clusters.
func TestDaemonFleet(t *testing.T) {
	browser := chromium(t)
	a := startArchiving(t, 15)
	a.c.Exec(t, "postgres", eventsTable)
	// A table of a few MB: whole chunk objects that every backup shares, one to corrupt.
	a.c.Exec(t, "postgres", "CREATE TABLE filler AS SELECT g, md5(g::text) || repeat('x', 200) AS pad FROM generate_series(1, 20000) g")
	major := otherMajor(t)
	oldWork := pgtest.TempDir(t)
	oldRepo := filepath.Join(oldWork, "repo")
	pgwardPG(t, nil, "init", "--repo", oldRepo)
	old := pgtest.Start(t, major, pgtest.Options{})
	hooks := filepath.Join(a.work, "hooks")
	if err := os.Mkdir(hooks, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(hooks, 0o777)
	addr := freeAddr(t)
	config := func(mainExtra string) string {
		return fmt.Sprintf(`[daemon]
listen = %q
[cluster.main]
repo = %q
conn = %q
checkpoint = "fast"
backup-schedule = "@every 5s"
wal-stream = true
slot = "pgward"
create-slot = true
partial-interval = "1s"
spool-path = %q
rpo-target = "1h"
%s
[cluster.old]
repo = %q
conn = %q
checkpoint = "fast"
backup-schedule = "@every 5s"
`, addr, a.repo, a.c.ConnString("postgres"), a.spool, mainExtra, oldRepo, old.ConnString("postgres"))
	}
	d := startDaemon(t, a.work, config(""))
	cfgPath := filepath.Join(a.work, "pgward.toml")

	waitWithin(t, 90*time.Second, "a backup of each cluster and main's receiver streaming", func() bool {
		m, _ := d.metric(t, `pgward_backup_last_success_timestamp_seconds{cluster="main"}`)
		o, _ := d.metric(t, `pgward_backup_last_success_timestamp_seconds{cluster="old"}`)
		up, _ := d.metric(t, `pgward_receiver_up{cluster="main"}`)
		return m > 0 && o > 0 && up == 1
	})
	for _, stage := range []string{"read", "seal", "store"} {
		if v, ok := d.metric(t, fmt.Sprintf(`pgward_backup_stage_seconds{cluster="old",stage=%q}`, stage)); !ok || v <= 0 {
			t.Errorf("backup stage %s: %v %v", stage, v, ok)
		}
	}

	// Acceptance 3: old's server goes away; main's backups go on.
	old.Stop(t, "immediate")
	mainBackups, _ := d.metric(t, `pgward_events_total{cluster="main",event="backup",outcome="success"}`)

	// Acceptance 4, meanwhile: the RPO tracks main's commits.
	insertRows(t, a.c, 1, 1)
	first := commitEpoch(t, a.c, 1)
	waitWithin(t, 60*time.Second, "main's newest durable commit to reach row 1", func() bool {
		v, _ := d.metric(t, `pgward_wal_newest_commit_timestamp_seconds{cluster="main"}`)
		return v >= first-0.001
	})
	newest, _ := d.metric(t, `pgward_wal_newest_commit_timestamp_seconds{cluster="main"}`)
	rpo1, _ := d.metric(t, `pgward_rpo_seconds{cluster="main"}`)
	time.Sleep(2 * time.Second)
	rpo2, _ := d.metric(t, `pgward_rpo_seconds{cluster="main"}`)
	if still, _ := d.metric(t, `pgward_wal_newest_commit_timestamp_seconds{cluster="main"}`); rpo2 <= rpo1 || still != newest {
		t.Errorf("with no writes the RPO went from %.3f to %.3f, the newest commit from %.3f to %.3f", rpo1, rpo2, newest, still)
	}
	insertRows(t, a.c, 2, 2)
	second := commitEpoch(t, a.c, 2)
	lastNewest := 0.0
	defer func() {
		if t.Failed() {
			t.Logf("main's newest durable commit last seen at %.3f; row 1 committed at %.3f, row 2 at %.3f", lastNewest, first, second)
		}
	}()
	waitWithin(t, 60*time.Second, "main's newest durable commit to reach row 2", func() bool {
		lastNewest, _ = d.metric(t, `pgward_wal_newest_commit_timestamp_seconds{cluster="main"}`)
		return lastNewest >= second-0.001
	})
	// The RPO dropped: it is measured from the second commit now, which came more than
	// 2 s after the first. (Comparing with rpo2 would race: the RPO grows again while
	// the receiver catches up.)
	rpo3, _ := d.metric(t, `pgward_rpo_seconds{cluster="main"}`)
	if sinceFirst := float64(time.Now().UnixNano())/1e9 - first; rpo3 >= sinceFirst-1 {
		t.Errorf("after a new commit the RPO is %.3f s; %.3f s have passed since the previous commit", rpo3, sinceFirst)
	}
	if lag, ok := d.metric(t, `pgward_receiver_lag_bytes{cluster="main"}`); !ok || lag < 0 {
		t.Errorf("receiver lag %v %v", lag, ok)
	}

	waitWithin(t, 60*time.Second, "old's backup_age objective breached and main's backups going on", func() bool {
		b, _ := d.metric(t, `pgward_objective_breached{cluster="old",objective="backup_age"}`)
		m, _ := d.metric(t, `pgward_events_total{cluster="main",event="backup",outcome="success"}`)
		return b == 1 && m >= mainBackups+2
	})
	st := d.status(t)
	for _, c := range st.Clusters {
		switch c.Name {
		case "old":
			if c.LastBackup == nil || c.LastBackup.OK || c.LastBackup.Error == "" || !c.Objectives["backup_age"].Breached || c.PGMajor != major {
				t.Errorf("old's status: %+v", c)
			}
		case "main":
			if c.LastBackup == nil || !c.LastBackup.OK || c.Objectives["backup_age"].Breached || c.Receiver == nil || !c.Receiver.Running || c.PGMajor != 15 {
				t.Errorf("main's status: %+v", c)
			}
		}
	}
	if failed, _ := d.metric(t, `pgward_events_total{cluster="old",event="backup",outcome="failure"}`); failed < 1 {
		t.Error("old's failed backups are not counted")
	}
	if code, body := d.get(t, "/healthz"); code != 503 || !strings.Contains(body, "old: backup_age breached") || strings.Contains(body, "main:") {
		t.Errorf("/healthz %d: %s", code, body)
	}
	if len(st.Repositories) != 2 || st.Repositories[0].Bytes <= 0 {
		t.Errorf("repository sizes: %+v", st.Repositories)
	}
	if v, ok := d.metric(t, fmt.Sprintf(`pgward_repository_bytes{repo=%q}`, a.repo)); !ok || v <= 0 {
		t.Errorf("pgward_repository_bytes of %s: %v %v", a.repo, v, ok)
	}

	// A config that does not load is refused; the running one stays.
	if err := os.WriteFile(cfgPath, []byte(config(`drill-schedule = "every tuesday"`)), 0o644); err != nil {
		t.Fatal(err)
	}
	d.cmd.Process.Signal(syscall.SIGHUP)
	waitWithin(t, 30*time.Second, "the bad config refused", func() bool {
		return strings.Contains(d.output.String(), "reload refused")
	})
	before, _ := d.metric(t, `pgward_events_total{cluster="main",event="backup",outcome="success"}`)
	waitWithin(t, 30*time.Second, "main's backups going on after the refused reload", func() bool {
		v, _ := d.metric(t, `pgward_events_total{cluster="main",event="backup",outcome="success"}`)
		return v > before
	})

	// Acceptance 2: a drill schedule added by a reload runs; the drill of a corrupt backup
	// fails, is recorded, runs the hook and breaks /healthz.
	damageFile(t, latestChunk(t, a.repo))
	hook := fmt.Sprintf(`cat > %[1]s/$PGWARD_EVENT-$PGWARD_CLUSTER.json.tmp && env | grep ^PGWARD_ | sort > %[1]s/$PGWARD_EVENT-$PGWARD_CLUSTER.env && mv %[1]s/$PGWARD_EVENT-$PGWARD_CLUSTER.json.tmp %[1]s/$PGWARD_EVENT-$PGWARD_CLUSTER.json`, hooks)
	good := config(fmt.Sprintf(`drill-schedule = "@every 3s"
drill-target = "latest"
pg-bin = %q
scratch-dir = %q
on-failure = [%q]`, pgtest.BinDir(t, 15), a.work, hook))
	if err := os.WriteFile(cfgPath, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	d.cmd.Process.Signal(syscall.SIGHUP)
	var ev struct {
		Event   string `json:"event"`
		Cluster string `json:"cluster"`
		OK      bool   `json:"ok"`
		Error   string `json:"error"`
		Backup  string `json:"backup"`
	}
	waitWithin(t, 60*time.Second, "the failed drill's hook", func() bool {
		b, err := os.ReadFile(filepath.Join(hooks, "drill-main.json"))
		return err == nil && json.Unmarshal(b, &ev) == nil
	})
	if ev.Event != "drill" || ev.Cluster != "main" || ev.OK || !strings.Contains(ev.Error, "corrupted object") || ev.Backup == "" {
		t.Errorf("the drill hook's event: %+v", ev)
	}
	env, _ := os.ReadFile(filepath.Join(hooks, "drill-main.env"))
	for _, want := range []string{"PGWARD_EVENT=drill", "PGWARD_CLUSTER=main", "PGWARD_OK=false", "PGWARD_BACKUP=" + ev.Backup, "PGWARD_ERROR=" + firstLine(ev.Error)} {
		if !strings.Contains(string(env), want) {
			t.Errorf("the hook's environment lacks %q:\n%s", want, env)
		}
	}
	if recs := drillRecords(t, a.repo); len(recs) == 0 || recs[0].OK || !strings.Contains(recs[0].Error, "corrupted object") {
		t.Errorf("drill records: %+v", recs)
	}
	waitWithin(t, 30*time.Second, "/healthz naming main's drill", func() bool {
		code, body := d.get(t, "/healthz")
		return code == 503 && strings.Contains(body, "main: drill breached") && strings.Contains(body, "old: backup_age breached")
	})
	if v, _ := d.metric(t, `pgward_objective_breached{cluster="main",objective="drill"}`); v != 1 {
		t.Errorf("pgward_objective_breached of main's drill: %v", v)
	}
	if !strings.Contains(d.output.String(), "restarted_or_started=1") {
		t.Errorf("the reload restarted more than main:\n%s", tail(d.output.String(), 40))
	}

	// Acceptance 5: the status page in a browser shows both clusters and their states.
	dom := browser(t, d.url+"/")
	for _, want := range []string{`data-cluster="main"`, `data-cluster="old"`, "PostgreSQL 15", fmt.Sprintf("PostgreSQL %d", major),
		"breached: drill", "breached: backup_age", "streaming", "objectives breached"} {
		if !strings.Contains(dom, want) {
			t.Errorf("the status page in Chromium lacks %q:\n%s", want, dom)
		}
	}

	start := time.Now()
	d.stop(t, 30*time.Second)
	t.Logf("daemon stopped %s after SIGTERM", time.Since(start).Round(time.Millisecond))
}

// latestChunk is the object of a whole chunk that the newest backup of cluster main
// needs: one of its largest file's.
func latestChunk(t *testing.T, repoDir string) string {
	t.Helper()
	st, err := local.Open(repoDir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(t.Context(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := r.Manifest(t.Context(), "main", "latest")
	if err != nil {
		t.Fatal(err)
	}
	files := slices.Clone(m.Files)
	slices.SortFunc(files, func(a, b repo.File) int { return cmp.Compare(b.Size, a.Size) })
	for _, f := range files {
		for _, id := range f.Chunks {
			s := id.String()
			if p := filepath.Join(repoDir, "chunks", s[:2], s); !strings.HasPrefix(f.Path, "pg_wal/") && fileExists(p) {
				return p
			}
		}
	}
	t.Fatalf("backup %s has no whole chunk object", m.ID)
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func firstLine(s string) string { return strings.SplitN(s, "\n", 2)[0] }

// chromium finds headless Chromium (make test-deps installs it) and returns a function
// that loads a page and returns its DOM after the browser has rendered it.
func chromium(t *testing.T) func(t *testing.T, url string) string {
	t.Helper()
	var bin string
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		t.Fatal("headless Chromium is not installed: run make test-deps (scripts/install-chromium.sh)")
	}
	return func(t *testing.T, url string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		// --no-sandbox: the tests run as root in CI, where Chromium's sandbox refuses to start.
		cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir="+t.TempDir(), "--dump-dom", url)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("chromium --dump-dom %s: %v\n%s", url, err, tail(stderr.String(), 20))
		}
		return string(out)
	}
}
