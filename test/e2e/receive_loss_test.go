package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgward/pgward/test/pgtest"
	"github.com/pgward/pgward/test/s3test"
)

// The tests in this file lose the primary for real (stopped with -m immediate, its
// data directory moved away) under a load that logs every acknowledged commit, and
// check that a restore from the repository holds every one of them: RPO = 0 must
// hold without a clean shutdown of anything.

// ackLoad inserts ids one transaction at a time and remembers each id whose commit
// returned, with the commit's latency.
type ackLoad struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	acked     []int
	latencies []latency
}

type latency struct {
	at time.Time
	d  time.Duration
}

func startAckLoad(t *testing.T, c *pgtest.Cluster, from int) *ackLoad {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := pgx.Connect(ctx, c.ConnString("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	l := &ackLoad{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		defer conn.Close(context.Background())
		for id := from; ctx.Err() == nil; id++ {
			began := time.Now()
			if _, err := conn.Exec(ctx, "INSERT INTO acked VALUES ($1)", id); err != nil {
				return // the primary is gone (or the test is over)
			}
			l.mu.Lock()
			l.acked = append(l.acked, id)
			l.latencies = append(l.latencies, latency{began, time.Since(began)})
			l.mu.Unlock()
		}
	}()
	return l
}

// stop ends the load and returns the acknowledged ids.
func (l *ackLoad) stop() []int {
	l.cancel()
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]int(nil), l.acked...)
}

// meanLatency is the mean commit latency of the commits that began in [from, to).
func (l *ackLoad) meanLatency(from, to time.Time) (time.Duration, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var sum time.Duration
	n := 0
	for _, x := range l.latencies {
		if !x.at.Before(from) && x.at.Before(to) {
			sum += x.d
			n++
		}
	}
	if n == 0 {
		return 0, 0
	}
	return sum / time.Duration(n), n
}

// loseServer stops a server the hard way and moves its data directory away, as
// when the host is gone.
func loseServer(t *testing.T, c *pgtest.Cluster) {
	t.Helper()
	c.Stop(t, "immediate")
	if err := os.Rename(c.DataDir, c.DataDir+".lost"); err != nil {
		t.Fatal(err)
	}
}

// checkAcked fails unless every acknowledged id is in the restored cluster.
func checkAcked(t *testing.T, dst *pgtest.Cluster, acked []int) {
	t.Helper()
	if len(acked) == 0 {
		t.Fatal("the load acknowledged no commit")
	}
	var ids string
	dst.QueryRow(t, "postgres", "SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM acked", &ids)
	have := map[string]bool{}
	for _, s := range strings.Split(ids, ",") {
		have[s] = true
	}
	var missing []int
	for _, id := range acked {
		if !have[fmt.Sprint(id)] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		sort.Ints(missing)
		t.Fatalf("%d of %d acknowledged commits are missing after the restore (first %d, last %d)", len(missing), len(acked), missing[0], missing[len(missing)-1])
	}
	t.Logf("all %d acknowledged commits restored", len(acked))
}

// waitLog waits until want appears in the receiver's log after the first
// occurrence of after ("" for anywhere).
func waitLog(t *testing.T, r *receiver, after, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		log := r.stderr.String()
		i := 0
		if after != "" {
			i = strings.Index(log, after)
		}
		if i >= 0 && strings.Contains(log[i:], want) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the receiver did not log %q after %q within %s:\n%s", want, after, timeout, tail(r.stderr.String(), 30))
}

// syncPrimary starts a primary that waits for the receiver (synchronous_standby_names),
// a synchronous receiver with a slot, and takes a backup.
func syncPrimary(t *testing.T, work string, args ...string) (*pgtest.Cluster, string, *receiver, []string) {
	t.Helper()
	repoDir := filepath.Join(work, "repo")
	pgwardPG(t, nil, "init", "--repo", repoDir)
	c := pgtest.Start(t, 15, pgtest.Options{Settings: map[string]string{"synchronous_standby_names": "pgward"}})
	rargs := append([]string{"--repo", repoDir, "--conn", c.ConnString("postgres"), "--slot", "pgward", "--create-slot",
		"--synchronous", "--spool-path", filepath.Join(work, "spool"), "--partial-interval", "1h"}, args...)
	rcv := startReceiver(t, rargs...)
	waitStreaming(t, c, true)
	pgwardPG(t, nil, "backup", "--repo", repoDir, "--conn", c.ConnString("postgres"), "--checkpoint", "fast")
	c.Exec(t, "postgres", "CREATE TABLE acked (id int PRIMARY KEY)")
	return c, repoDir, rcv, rargs
}

// TestReceivePrimaryLostReceiverRunning: the primary is lost while the receiver runs
// on (cut off, reconnecting); the partial segment goes up as soon as the connection
// is lost, not at the next interval (an hour here), so a restore taken meanwhile has
// every acknowledged commit. A --target-lsn inside the partial segment restores
// exactly to it.
func TestReceivePrimaryLostReceiverRunning(t *testing.T) {
	work := pgtest.TempDir(t)
	c, repoDir, rcv, _ := syncPrimary(t, work)
	c.Exec(t, "postgres", "SELECT pg_switch_wal()")
	for i := 1; i <= 50; i++ {
		c.Exec(t, "postgres", fmt.Sprintf("INSERT INTO acked VALUES (%d)", i))
	}
	var lsn, lsnSeg string
	c.QueryRow(t, "postgres", "SELECT pg_current_wal_insert_lsn()::text, pg_walfile_name(pg_current_wal_insert_lsn())", &lsn, &lsnSeg)
	load := startAckLoad(t, c, 51)
	time.Sleep(3 * time.Second)
	loseServer(t, c)
	acked := append(seq(1, 50), load.stop()...)
	waitLog(t, rcv, "replication connection lost", "partial segment uploaded", 30*time.Second)

	l := listJSON(t, nil, "--repo", repoDir)
	if p := l.Clusters[0].Timelines[0].Partial; p == nil || p.Segment != lsnSeg {
		t.Fatalf("list does not show the streamed partial %s: %+v", lsnSeg, l.Clusters[0].Timelines[0])
	}
	target := filepath.Join(work, "latest")
	pgwardPG(t, nil, "restore", "--repo", repoDir, "--pgdata", target)
	dst := pgtest.StartDataDir(t, 15, target, nil, true)
	checkAcked(t, dst, acked)
	dst.Stop(t, "immediate")

	target = filepath.Join(work, "at-lsn")
	pgwardPG(t, nil, "restore", "--repo", repoDir, "--pgdata", target, "--target-lsn", lsn)
	dst = pgtest.StartDataDir(t, 15, target, nil, true)
	var n, maxID int
	dst.QueryRow(t, "postgres", "SELECT count(*), coalesce(max(id), 0) FROM acked", &n, &maxID)
	if n != 50 || maxID != 50 {
		t.Errorf("restore to %s inside the partial segment: %d rows up to id %d, want exactly 1-50", lsn, n, maxID)
	}
	rcv.stop(t)
}

func seq(from, to int) []int {
	var s []int
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

// TestReceiveKilledThenPrimaryLost: the receiver is killed with -9 under load,
// the primary is lost, and the receiver is restarted with no server to talk to: it
// uploads what its spool holds at start-up, so the restore has every acknowledged
// commit. A second process cannot use the same spool; --flush-only works without a
// server.
func TestReceiveKilledThenPrimaryLost(t *testing.T) {
	work := pgtest.TempDir(t)
	c, repoDir, rcv, rargs := syncPrimary(t, work)
	load := startAckLoad(t, c, 1)
	time.Sleep(3 * time.Second)
	rcv.kill(t)
	// Synchronous: nothing commits without the receiver, so every acknowledged
	// commit is in its spool.
	time.Sleep(500 * time.Millisecond)
	loseServer(t, c)
	acked := load.stop()

	rcv = startReceiver(t, rargs...)
	waitLog(t, rcv, "", "partial segment uploaded", 30*time.Second)
	busy := runPgward(t, true, nil, "wal-receive", "--flush-only", "--repo", repoDir, "--spool-path", filepath.Join(work, "spool"))
	if busy.code == 0 || !strings.Contains(busy.stderr, "in use by another wal-receive (pid") {
		t.Errorf("a second process on the same spool: %s", busy)
	}
	target := filepath.Join(work, "restored")
	pgwardPG(t, nil, "restore", "--repo", repoDir, "--pgdata", target)
	dst := pgtest.StartDataDir(t, 15, target, nil, true)
	checkAcked(t, dst, acked)
	rcv.stop(t)
	pgwardPG(t, nil, "wal-receive", "--flush-only", "--repo", repoDir, "--spool-path", filepath.Join(work, "spool"))
}

// TestReceiveWALRemoved: without a slot the server has already removed the WAL the
// receiver would start at: it stops (exit 4) with the meaning of SQLSTATE 58P01
// instead of reconnecting forever.
func TestReceiveWALRemoved(t *testing.T) {
	work := pgtest.TempDir(t)
	repoDir := filepath.Join(work, "repo")
	pgwardPG(t, nil, "init", "--repo", repoDir)
	c := pgtest.Start(t, 15, pgtest.Options{})
	pgwardPG(t, nil, "backup", "--repo", repoDir, "--conn", c.ConnString("postgres"), "--checkpoint", "fast")
	// Then let the server recycle its WAL quickly.
	c.Exec(t, "postgres", "ALTER SYSTEM SET max_wal_size = '32MB'")
	c.Exec(t, "postgres", "ALTER SYSTEM SET min_wal_size = '32MB'")
	c.Exec(t, "postgres", "SELECT pg_reload_conf()")
	c.Exec(t, "postgres", "CREATE TABLE filler (v text)")
	for range 6 {
		c.Exec(t, "postgres", "INSERT INTO filler VALUES ('x'); SELECT pg_switch_wal(); CHECKPOINT")
	}
	began := time.Now()
	rcv := startReceiver(t, "--repo", repoDir, "--conn", c.ConnString("postgres"), "--spool-path", filepath.Join(work, "spool"))
	select {
	case err := <-rcv.done:
		log := rcv.stderr.String()
		t.Logf("wal-receive stopped after %s: %v", time.Since(began).Round(time.Millisecond), err)
		if code := rcv.cmd.ProcessState.ExitCode(); code != 4 {
			t.Errorf("exit status %d, want 3", code)
		}
		if !strings.Contains(log, "already removed WAL the receiver needs") || !strings.Contains(log, "SQLSTATE 58P01") {
			t.Errorf("the log does not explain the stop:\n%s", tail(log, 10))
		}
		if strings.Contains(log, "reconnecting") {
			t.Errorf("the receiver retried a fatal error:\n%s", tail(log, 10))
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("the receiver still runs after 60 s:\n%s", tail(rcv.stderr.String(), 20))
	}
}

// testReceiverOutage (under TestS3): a synchronous receiver into S3 is started while
// S3 is down and receives anyway; under load, S3 goes down again for a while
// (PGWARD_TEST_S3_OUTAGE, default 15s) while commits go on at their usual latency;
// then the primary is lost, and once S3 is back the restore has every acknowledged
// commit.
func testReceiverOutage(t *testing.T, srv *s3test.Server) {
	outage := 15 * time.Second
	if d, err := time.ParseDuration(os.Getenv("PGWARD_TEST_S3_OUTAGE")); err == nil && d > 0 {
		outage = d
	}
	proxy := s3test.NewFaultProxy(t, srv.Endpoint)
	env, flags := s3Env(srv), s3Flags(proxy.Endpoint())
	s3Repo := "s3://" + s3test.BucketName(t) + "/receive"
	mustPgward(t, env, argv([]string{"init", "--repo", s3Repo}, flags)...)
	work := pgtest.TempDir(t)
	c := pgtest.Start(t, s3Major, pgtest.Options{Settings: map[string]string{"synchronous_standby_names": "pgward"}})

	proxy.SetDown(true)
	rcv := startReceiver(t, argv([]string{"--repo", s3Repo, "--conn", c.ConnString("postgres"), "--slot", "pgward", "--create-slot",
		"--synchronous", "--spool-path", filepath.Join(work, "spool"), "--partial-interval", "2s", "--s3-retry-max", "3s"}, flags)...)
	waitStreaming(t, c, true)
	waitLog(t, rcv, "", "cannot be reached now", 30*time.Second)
	proxy.SetDown(false)

	mustPgward(t, env, argv([]string{"backup", "--repo", s3Repo, "--conn", c.ConnString("postgres"), "--checkpoint", "fast"}, flags)...)
	c.Exec(t, "postgres", "CREATE TABLE acked (id int PRIMARY KEY)")
	c.Pgbench(t, "postgres", "-i", "-q", "-s", "1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bench := exec.CommandContext(ctx, pgtest.ClientBin+"/pgbench", "-h", "127.0.0.1", "-p", strconv.Itoa(c.Port), "-U", "postgres", "-c", "2", "-T", "600", "-n", "postgres")
	if err := bench.Start(); err != nil {
		t.Fatal(err)
	}
	load := startAckLoad(t, c, 1)
	began := time.Now()
	time.Sleep(8 * time.Second)
	downAt := time.Now()
	proxy.SetDown(true)
	time.Sleep(outage)
	upAt := time.Now()
	proxy.SetDown(false)
	time.Sleep(3 * time.Second)
	loseServer(t, c)
	acked := load.stop()
	cancel()
	bench.Wait()
	before, nb := load.meanLatency(began, downAt)
	during, nd := load.meanLatency(downAt, upAt)
	t.Logf("commit latency with the receiver synchronous: %s before the %s S3 outage (%d commits), %s during it (%d commits), %.2fx",
		before.Round(10*time.Microsecond), outage, nb, during.Round(10*time.Microsecond), nd, float64(during)/float64(max(before, 1)))
	if nd == 0 {
		t.Fatalf("no commit was acknowledged during the S3 outage: the receiver stopped confirming\n%s", tail(rcv.stderr.String(), 20))
	}

	waitLog(t, rcv, "replication connection lost", "partial segment uploaded", 2*time.Minute)
	target := filepath.Join(work, "restored")
	mustPgward(t, env, argv([]string{"restore", "--repo", s3Repo, "--pgdata", target}, flags)...)
	dst := pgtest.StartDataDir(t, s3Major, target, nil, true)
	checkAcked(t, dst, acked)
	rcv.stop(t)
}
