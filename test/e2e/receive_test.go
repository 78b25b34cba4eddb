package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgward/pgward/test/pgtest"
	"github.com/pgward/pgward/wal"
)

// receiver is a background `pgward wal-receive` run as postgres.
type receiver struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan error
}

func startReceiver(t *testing.T, args ...string) *receiver {
	t.Helper()
	return startReceiverTB(t, args...)
}

func startReceiverTB(t testing.TB, args ...string) *receiver {
	t.Helper()
	cmd := exec.Command(pgwardBin, append([]string{"wal-receive", "--log-level", "debug"}, args...)...)
	cmd.Env = cleanEnv()
	asPostgresUser(cmd)
	r := &receiver{cmd: cmd, stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd.Stderr = r.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			t.Logf("wal-receive log:\n%s", tail(r.stderr.String(), 40))
		}
	})
	return r
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// stop sends SIGTERM and expects a clean exit.
func (r *receiver) stop(t *testing.T) {
	t.Helper()
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("wal-receive exited with %v:\n%s", err, tail(r.stderr.String(), 40))
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("wal-receive did not stop after SIGTERM:\n%s", tail(r.stderr.String(), 40))
	}
}

func (r *receiver) kill(t *testing.T) {
	r.cmd.Process.Kill()
	<-r.done
}

// waitStreaming waits until the server lists the receiver (in sync_state
// "sync" when sync is true).
func waitStreaming(t *testing.T, c *pgtest.Cluster, sync bool) {
	t.Helper()
	waitStreamingTB(t, c, sync)
}

func waitStreamingTB(t testing.TB, c *pgtest.Cluster, sync bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		var n int
		q := "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'pgward' AND state = 'streaming'"
		if sync {
			q += " AND sync_state = 'sync'"
		}
		c.QueryRow(t, "postgres", q, &n)
		if n > 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("the receiver never showed up in pg_stat_replication")
}

// TestReceiveRPOZero: with the receiver synchronous, every commit acknowledged
// before the primary is destroyed is restored.
func TestReceiveRPOZero(t *testing.T) {
	for _, major := range pgtest.Versions() {
		t.Run(fmt.Sprintf("pg%d", major), func(t *testing.T) {
			t.Parallel()
			testReceiveRPOZero(t, major)
		})
	}
}

func testReceiveRPOZero(t *testing.T, major int) {
	work := pgtest.TempDir(t)
	repoDir := filepath.Join(work, "repo")
	spool := filepath.Join(work, "spool")
	pgwardPG(t, nil, "init", "--repo", repoDir)
	c := pgtest.Start(t, major, pgtest.Options{Settings: map[string]string{"synchronous_standby_names": "pgward"}})
	rcv := startReceiver(t, "--repo", repoDir, "--conn", c.ConnString("postgres"), "--slot", "pgward", "--create-slot", "--synchronous", "--spool-path", spool, "--partial-interval", "1h")
	waitStreaming(t, c, true)
	pgwardPG(t, nil, "backup", "--repo", repoDir, "--conn", c.ConnString("postgres"), "--checkpoint", "fast")
	c.Exec(t, "postgres", "CREATE TABLE acked (id int PRIMARY KEY)")
	const n = 50
	for i := 1; i <= n; i++ {
		c.Exec(t, "postgres", fmt.Sprintf("INSERT INTO acked VALUES (%d)", i))
	}
	// The last commit has returned: destroy the primary at once.
	c.Stop(t, "immediate")
	if err := os.RemoveAll(c.DataDir); err != nil {
		t.Fatal(err)
	}
	rcv.stop(t)

	target := filepath.Join(work, "restored")
	pgwardPG(t, nil, "restore", "--repo", repoDir, "--pgdata", target)
	dst := pgtest.StartDataDir(t, major, target, nil, true)
	var count, maxID int
	dst.QueryRow(t, "postgres", "SELECT count(*), coalesce(max(id), 0) FROM acked", &count, &maxID)
	if count != n || maxID != n {
		t.Fatalf("restored %d rows (max id %d), want all %d acknowledged commits", count, maxID, n)
	}
}

// archivedSegments lists the segments of a local repository, in order.
func archivedSegments(t *testing.T, repoDir string) []string {
	var segs []string
	filepath.Walk(filepath.Join(repoDir, "clusters", "main", "wal"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			if n, err := wal.ParseName(fi.Name()); err == nil && n.Kind == wal.Segment {
				segs = append(segs, fi.Name())
			}
		}
		return nil
	})
	sort.Strings(segs)
	return segs
}

// checkContinuity fails on a hole in the archived segments between first and last.
func checkContinuity(t *testing.T, segs []string) {
	t.Helper()
	for i := 1; i < len(segs); i++ {
		next, _ := wal.NextSegment(segs[i-1], 16<<20)
		if segs[i] != next {
			t.Fatalf("archive has a gap: %s is followed by %s", segs[i-1], segs[i])
		}
	}
}

// waitArchived waits until a segment is in the repository.
func waitArchived(t *testing.T, repoDir, seg string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range archivedSegments(t, repoDir) {
			if s == seg {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("segment %s was not archived within 60 s", seg)
}

// TestReceiveKillAndArchiveCommand: kill -9 the receiver mid-stream under
// write load and restart it: no gap, and a restore to the latest point equals
// the source. archive_command writes into the same repository meanwhile, with
// no conflict.
func TestReceiveKillAndArchiveCommand(t *testing.T) {
	work := pgtest.TempDir(t)
	repoDir := filepath.Join(work, "repo")
	spool := filepath.Join(work, "spool")
	pgwardPG(t, nil, "init", "--repo", repoDir)
	c := pgtest.Start(t, 15, pgtest.Options{Settings: archiveSettings(repoDir, filepath.Join(work, "aspool"))})
	args := []string{"--repo", repoDir, "--conn", c.ConnString("postgres"), "--slot", "pgward", "--create-slot", "--spool-path", spool, "--partial-interval", "1s"}
	rcv := startReceiver(t, args...)
	waitStreaming(t, c, false)
	c.Pgbench(t, "postgres", "-i", "-q", "-s", "2")
	pgwardPG(t, nil, "backup", "--repo", repoDir, "--conn", c.ConnString("postgres"), "--checkpoint", "fast")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	load := exec.CommandContext(ctx, pgtest.ClientBin+"/pgbench", "-h", "127.0.0.1", "-p", strconv.Itoa(c.Port), "-U", "postgres", "-c", "2", "-T", "8", "-n", "postgres")
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	rcv.kill(t)
	time.Sleep(time.Second)
	rcv = startReceiver(t, args...)
	if err := load.Wait(); err != nil {
		t.Fatalf("pgbench: %v", err)
	}
	want := pgtest.Checksums(t, c)
	var seg string
	c.QueryRow(t, "postgres", "SELECT pg_walfile_name(pg_switch_wal())", &seg)
	switchAndWait(t, c)
	waitArchived(t, repoDir, seg)
	rcv.stop(t)
	var failed int64
	c.QueryRow(t, "postgres", "SELECT failed_count FROM pg_stat_archiver", &failed)
	if failed != 0 {
		t.Errorf("archive_command failed %d times alongside the receiver", failed)
	}
	if strings.Contains(rcv.stderr.String(), "different file") {
		t.Errorf("receiver and archive_command conflicted:\n%s", tail(rcv.stderr.String(), 20))
	}
	segs := archivedSegments(t, repoDir)
	if len(segs) < 3 {
		t.Fatalf("only %d segments archived: %v", len(segs), segs)
	}
	checkContinuity(t, segs)
	c.Stop(t, "immediate")

	target := filepath.Join(work, "restored")
	pgwardPG(t, nil, "restore", "--repo", repoDir, "--pgdata", target)
	dst := pgtest.StartDataDir(t, 15, target, nil, true)
	compareSums(t, want, pgtest.Checksums(t, dst))
}

// TestReceiveTimelineSwitch: the receiver follows a standby through a restart
// and through its promotion (a timeline switch); the archive then holds the
// history file and both timelines, and a restore reaches the new timeline.
func TestReceiveTimelineSwitch(t *testing.T) {
	work := pgtest.TempDir(t)
	repoDir := filepath.Join(work, "repo")
	pgwardPG(t, nil, "init", "--repo", repoDir)
	p := pgtest.Start(t, 15, pgtest.Options{})
	p.Exec(t, "postgres", "CREATE TABLE events (id int PRIMARY KEY)")

	sdir := filepath.Join(work, "standby")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := pgtest.RunAsPostgres(ctx, pgtest.ClientBin+"/pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(p.Port), "-U", "postgres", "-D", sdir, "-R", "-X", "stream", "-c", "fast"); err != nil {
		t.Fatalf("pg_basebackup: %v\n%s", err, out)
	}
	s := pgtest.StartDataDir(t, 15, sdir, nil, false)
	rcv := startReceiver(t, "--repo", repoDir, "--conn", s.ConnString("postgres"), "--spool-path", filepath.Join(work, "spool"), "--partial-interval", "1s")
	waitStreaming(t, s, false)
	pgwardPG(t, nil, "backup", "--repo", repoDir, "--conn", p.ConnString("postgres"), "--checkpoint", "fast")

	insertRows(t, p, 1, 5)
	s.Restart(t) // the receiver reconnects
	insertRows(t, p, 6, 10)
	var lsn string
	p.QueryRow(t, "postgres", "SELECT pg_current_wal_insert_lsn()::text", &lsn)
	deadline := time.Now().Add(60 * time.Second)
	for {
		var caught bool
		s.QueryRow(t, "postgres", fmt.Sprintf("SELECT pg_last_wal_replay_lsn() >= '%s'", lsn), &caught)
		if caught {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("standby did not catch up")
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.Stop(t, "fast")
	s.Promote(t)
	insertRows(t, s, 100, 110)
	var seg string
	s.QueryRow(t, "postgres", "SELECT pg_walfile_name(pg_switch_wal())", &seg)
	if !strings.HasPrefix(seg, "00000002") {
		t.Fatalf("promoted standby writes %s, expected timeline 2", seg)
	}
	waitArchived(t, repoDir, seg)
	rcv.stop(t)

	if !walArchived(t, &archiving{repo: repoDir, work: work}, "00000002.history") {
		t.Fatal("the new timeline's history file is not archived")
	}
	// Timeline 1 ends in a .partial segment (its WAL up to the switch point).
	var segs []string
	filepath.Walk(filepath.Join(repoDir, "clusters", "main", "wal"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			segs = append(segs, fi.Name())
		}
		return nil
	})
	var tl1, tl2 bool
	for _, sg := range segs {
		tl1 = tl1 || strings.HasPrefix(sg, "00000001") && len(sg) >= 24
		tl2 = tl2 || strings.HasPrefix(sg, "00000002") && !strings.HasSuffix(sg, ".history")
	}
	if !tl1 || !tl2 {
		t.Fatalf("archive should hold both timelines: %v", segs)
	}
	s.Stop(t, "immediate")
	target := filepath.Join(work, "restored")
	pgwardPG(t, nil, "restore", "--repo", repoDir, "--pgdata", target)
	dst := pgtest.StartDataDir(t, 15, target, nil, true)
	if got := rowIDs(t, dst); got != "1-10,100-110" {
		t.Fatalf("restore onto the new timeline: rows %q, want 1-10,100-110", got)
	}
}
