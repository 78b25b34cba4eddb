package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/pgward/pgward/test/pgtest"
	"github.com/pgward/pgward/test/s3test"
)

// s3Major is the PostgreSQL major the S3 tests run on: what they prove is about the
// repository, not the server version.
const s3Major = 15

// TestS3 proves S3 repositories end to end against a real S3 server (versitygw): backup to
// a local and an S3 repository at once and restore from S3 alone; a chunk missing from the
// first repository read from the second; PITR from WAL archived to S3; every command
// through a proxy that fails requests; a server that goes away mid-backup; and the errors
// for bad credentials and a missing bucket.
//
// The subtests share one server and run in order. Credentials reach pgward through its
// environment, and the PostgreSQL servers (whose archive_command and restore_command run
// pgward) through the test process's environment, which pgtest passes on to them: hence
// t.Setenv, and no t.Parallel here.
func TestS3(t *testing.T) {
	srv := s3test.Start(t)
	isolateAWS(t)
	for _, kv := range s3Env(srv) {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	// One populated cluster, backed up by several subtests.
	work := pgtest.TempDir(t)
	tsDir := filepath.Join(work, "ts1")
	if err := os.Mkdir(tsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	pgtest.ChownToPostgres(t, tsDir)
	src := pgtest.Start(t, s3Major, pgtest.Options{Checksums: true})
	populate(t, src, tsDir, 2)
	var tsOID string
	src.QueryRow(t, "postgres", "SELECT oid::text FROM pg_tablespace WHERE spcname = 'ts1'", &tsOID)
	f := &s3Fixture{srv: srv, src: src, tsOID: tsOID, work: work}

	t.Run("TwoRepos", f.testTwoRepos)
	t.Run("PITR", func(t *testing.T) { testS3PITR(t, srv) })
	t.Run("Faults", func(t *testing.T) { testS3Faults(t, srv) })
	t.Run("ServerDown", f.testServerDown)
	t.Run("ReceiverOutage", func(t *testing.T) { testReceiverOutage(t, srv) })
	t.Run("ExpireWhileWriting", func(t *testing.T) { testS3ExpireWhileWriting(t, srv) })
	t.Run("Errors", f.testErrors)
	t.Run("Keys", func(t *testing.T) { testS3Keys(t, srv) })
}

type s3Fixture struct {
	srv   *s3test.Server
	src   *pgtest.Cluster
	tsOID string
	work  string
}

// s3Env is what pgward needs to reach srv: the standard AWS variables.
func s3Env(srv *s3test.Server) []string {
	return []string{"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey, "AWS_REGION=" + srv.Region}
}

// s3Flags are the S3 options for a server at endpoint.
func s3Flags(endpoint string) []string {
	return []string{"--s3-endpoint", endpoint, "--s3-path-style"}
}

// isolateAWS keeps the machine's own AWS configuration (profiles, instance metadata) out of
// the test.
func isolateAWS(t *testing.T) {
	dir := t.TempDir()
	for _, k := range []string{"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
		"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// argv joins argument lists.
func argv(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// objectNames lists the keys under prefix in bucket, with an independent client.
func objectNames(t *testing.T, srv *s3test.Server, bucket, prefix string) []string {
	t.Helper()
	var names []string
	for o := range srv.Minio(t).ListObjects(t.Context(), bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			t.Fatalf("listing s3://%s/%s: %v", bucket, prefix, o.Err)
		}
		names = append(names, o.Key)
	}
	return names
}

// localChunks returns the chunk files of a local repository.
func localChunks(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.Walk(filepath.Join(dir, "chunks"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && !strings.HasPrefix(fi.Name(), ".tmp-") {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// restoreStartCompare restores with args into a fresh directory (the tablespace moved next
// to it), starts the copy, compares every table with want, and stops it.
func (f *s3Fixture) restoreStartCompare(t *testing.T, name string, want map[string]pgtest.TableSum, env []string, restoreArgs ...string) result {
	t.Helper()
	target := filepath.Join(f.work, name)
	readableByServer(t, restoreArgs...)
	r := mustPgward(t, env, argv([]string{"restore", "--pgdata", target, "--tablespace-map", f.tsOID + "=" + target + "-ts1"}, restoreArgs)...)
	dst := pgtest.StartDataDir(t, s3Major, target, nil, true)
	compareSums(t, want, pgtest.Checksums(t, dst))
	dst.Stop(t, "fast")
	return r
}

// testTwoRepos: one backup into a local and an S3 repository at once. A chunk deleted from
// the local one is read from S3 during restore; with the local repository gone entirely,
// S3 alone restores the cluster.
func (f *s3Fixture) testTwoRepos(t *testing.T) {
	srv := f.srv
	env := s3Env(srv)
	bucket := s3test.BucketName(t)
	s3Repo := "s3://" + bucket + "/pg"
	localRepo := filepath.Join(f.work, "repo-local")
	flags := s3Flags(srv.Endpoint)
	want := pgtest.Checksums(t, f.src)

	// init creates the bucket.
	mustPgward(t, env, argv([]string{"init", "--repo", localRepo, "--repo", s3Repo}, flags)...)
	r := mustPgward(t, env, argv([]string{"backup", "--repo", localRepo, "--repo", s3Repo, "--conn", f.src.ConnString("postgres"), "--checkpoint", "fast", "--jobs", "2"}, flags)...)
	id := strings.SplitN(r.stdout, "\n", 2)[0]

	// What pgward wrote, seen by another client: the config, the chunks (as many as in the
	// local repository), the cluster's identity and the backup's manifest.
	names := objectNames(t, srv, bucket, "pg/")
	var chunks int
	have := map[string]bool{}
	for _, n := range names {
		have[n] = true
		if strings.HasPrefix(n, "pg/chunks/") {
			chunks++
		}
	}
	for _, n := range []string{"pg/config", "pg/clusters/main/identity", "pg/clusters/main/backups/" + id} {
		if !have[n] {
			t.Errorf("object %s missing from the bucket; it has %d objects, e.g. %q", n, len(names), names[:min(len(names), 5)])
		}
	}
	if local := len(localChunks(t, localRepo)); chunks == 0 || chunks != local {
		t.Errorf("bucket has %d chunk objects, the local repository %d", chunks, local)
	}
	list := listBackups(t, env, argv([]string{"--repo", s3Repo}, flags)...)
	if len(list) != 1 || list[0]["id"] != id || list[0]["repo"] != s3Repo {
		t.Fatalf("list of the S3 repository: %v", list)
	}
	// verify reads both repositories back whole (S3: objects read in parallel) and finds
	// them sound.
	r = mustPgward(t, env, argv([]string{"verify", "--all", "--read-data", "--jobs", "4", "--repo", localRepo, "--repo", s3Repo}, flags)...)
	if strings.Count(r.stdout, "  OK\n") != 2 {
		t.Errorf("verify of the local and the S3 repository:\n%s", r)
	}

	// A chunk missing from the first repository comes from the second.
	files := localChunks(t, localRepo)
	biggest := files[0]
	for _, p := range files {
		if fileSize(t, p) > fileSize(t, biggest) {
			biggest = p
		}
	}
	if err := os.Remove(biggest); err != nil {
		t.Fatal(err)
	}
	r = f.restoreStartCompare(t, "r-fallback", want, env, argv([]string{"--repo", localRepo, "--repo", s3Repo}, flags)...)
	if !strings.Contains(r.stderr, "chunk read from another repository") || !strings.Contains(r.stderr, s3Repo) {
		t.Errorf("restore did not say it read a chunk from %s: %s", s3Repo, r)
	}

	// The local repository is lost: S3 alone restores. The restore_command carries the S3
	// options, so the restored server can fetch WAL from the bucket.
	if err := os.RemoveAll(localRepo); err != nil {
		t.Fatal(err)
	}
	f.restoreStartCompare(t, "r-s3", want, env, argv([]string{"--repo", s3Repo}, flags)...)
	conf, err := os.ReadFile(filepath.Join(f.work, "r-s3", "postgresql.auto.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"--repo " + s3Repo, "--s3-endpoint=" + srv.Endpoint, "--s3-path-style=true"} {
		if !strings.Contains(string(conf), w) {
			t.Errorf("restore_command lacks %q:\n%s", w, conf)
		}
	}
	if strings.Contains(string(conf), srv.SecretKey) || strings.Contains(string(conf), srv.AccessKey) {
		t.Errorf("postgresql.auto.conf holds a credential:\n%s", conf)
	}
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// s3Archiving starts a cluster whose archive_command pushes to an S3 repository at
// endpoint. It returns the cluster and its work directory.
func s3Archiving(t *testing.T, srv *s3test.Server, endpoint, s3Repo string) (*pgtest.Cluster, string) {
	t.Helper()
	work := pgtest.TempDir(t)
	mustPgward(t, s3Env(srv), argv([]string{"init", "--repo", s3Repo}, s3Flags(endpoint))...)
	cmd := fmt.Sprintf("%s archive-push --repo %s --s3-endpoint %s --s3-path-style --spool-path %s %%p",
		pgwardBin, s3Repo, endpoint, filepath.Join(work, "spool"))
	c := pgtest.Start(t, s3Major, pgtest.Options{Settings: map[string]string{
		"archive_mode": "on", "archive_command": cmd, "archive_timeout": "0",
	}})
	c.Exec(t, "postgres", "CREATE TABLE events (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")
	return c, work
}

// testS3PITR: WAL archived to S3 by archive_command, a restore to a time between two
// groups of rows, recovered by restore_command from S3.
func testS3PITR(t *testing.T, srv *s3test.Server) {
	env := s3Env(srv)
	flags := s3Flags(srv.Endpoint)
	s3Repo := "s3://" + s3test.BucketName(t) + "/archive"
	c, work := s3Archiving(t, srv, srv.Endpoint, s3Repo)
	mustPgward(t, env, argv([]string{"backup", "--repo", s3Repo, "--conn", c.ConnString("postgres"), "--checkpoint", "fast"}, flags)...)
	insertRows(t, c, 1, 5)
	at := markTime(t, c)
	insertRows(t, c, 6, 10)
	switchAndWait(t, c)

	// The window reaches past the target only if the newest WAL's time is known
	// (Last-Modified of its object).
	if out := mustPgward(t, env, argv([]string{"list", "--repo", s3Repo}, flags)...).stdout; !strings.Contains(out, " ago") {
		t.Errorf("list does not show the age of the newest archived WAL:\n%s", out)
	}
	target := filepath.Join(work, "r-time")
	mustPgward(t, env, argv([]string{"restore", "--repo", s3Repo, "--pgdata", target, "--target-time", at}, flags)...)
	dst := pgtest.StartDataDir(t, s3Major, target, nil, true)
	if got := rowIDs(t, dst); got != "1-5" {
		t.Errorf("restore to %s from S3: rows %q, want 1-5", at, got)
	}
	dst.Stop(t, "immediate")
}

// injectFaults makes the proxy fail one request in every `every` it forwards, alternately
// with a reset connection and a 503 SlowDown, until the returned function is called. Faults
// follow the traffic rather than the clock: a fault every few milliseconds would hit every
// retry of a request once the other workers are idle, and nothing could succeed.
func injectFaults(p *s3test.FaultProxy, every int) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		last := p.Stats().Forwarded
		for i := 0; ; {
			select {
			case <-done:
				return
			case <-time.After(2 * time.Millisecond):
			}
			if fw := p.Stats().Forwarded; fw >= last+every {
				last = fw
				if i++; i%2 == 0 {
					p.ResetNext(1)
				} else {
					p.Fail503Next(1)
				}
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// testS3Faults: backup, archive-push (archive_command), restore and archive-get
// (restore_command) all through a proxy that keeps resetting connections and answering
// 503; the restored cluster has every row.
func testS3Faults(t *testing.T, srv *s3test.Server) {
	proxy := s3test.NewFaultProxy(t, srv.Endpoint)
	env := s3Env(srv)
	flags := s3Flags(proxy.Endpoint())
	s3Repo := "s3://" + s3test.BucketName(t) + "/faults"
	c, work := s3Archiving(t, srv, proxy.Endpoint(), s3Repo)
	c.Pgbench(t, "postgres", "-i", "-q", "-s", "1")

	stop := injectFaults(proxy, 8)
	defer stop()
	mustPgward(t, env, argv([]string{"backup", "--repo", s3Repo, "--conn", c.ConnString("postgres"), "--checkpoint", "fast", "--jobs", "2"}, flags)...)
	insertRows(t, c, 1, 20)
	c.Pgbench(t, "postgres", "-n", "-t", "200", "-c", "2")
	switchAndWait(t, c)
	insertRows(t, c, 21, 30)
	switchAndWait(t, c)
	want := pgtest.Checksums(t, c)

	target := filepath.Join(work, "r-faults")
	mustPgward(t, env, argv([]string{"restore", "--repo", s3Repo, "--pgdata", target, "--jobs", "2"}, flags)...)
	dst := pgtest.StartDataDir(t, s3Major, target, nil, true)
	stop()
	compareSums(t, want, pgtest.Checksums(t, dst))
	dst.Stop(t, "immediate")
	st := proxy.Stats()
	t.Logf("fault proxy: %+v", st)
	if st.Reset == 0 || st.Failed503 == 0 {
		t.Errorf("no faults were injected: %+v", st)
	}
}

// testServerDown: the S3 server goes away in the middle of a backup. The backup fails
// within its retry budget with an error that says so; once the server is back, no
// half-written backup is listed and the next backup succeeds.
func (f *s3Fixture) testServerDown(t *testing.T) {
	proxy := s3test.NewFaultProxy(t, f.srv.Endpoint)
	env := append(s3Env(f.srv), "PGWARD_S3_RETRY_MAX=3s")
	flags := s3Flags(proxy.Endpoint())
	s3Repo := "s3://" + s3test.BucketName(t) + "/down"
	mustPgward(t, env, argv([]string{"init", "--repo", s3Repo}, flags)...)

	// Down after some chunks went up.
	base := proxy.Stats().Forwarded
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		deadline := time.Now().Add(2 * time.Minute)
		for proxy.Stats().Forwarded < base+40 && time.Now().Before(deadline) {
			time.Sleep(2 * time.Millisecond)
		}
		proxy.SetDown(true)
	}()
	began := time.Now()
	r := pgward(t, env, argv([]string{"backup", "--repo", s3Repo, "--conn", f.src.ConnString("postgres"), "--checkpoint", "fast", "--jobs", "2"}, flags)...)
	took := time.Since(began)
	<-watchDone
	t.Logf("backup with the server gone failed after %s: %s", took.Round(time.Millisecond), strings.TrimSpace(r.stderr[strings.LastIndex(strings.TrimSpace(r.stderr), "\n")+1:]))
	if r.code == 0 {
		t.Fatalf("backup succeeded although the server went down: %s", r)
	}
	if !strings.Contains(r.stderr, "connection refused") || !strings.Contains(r.stderr, "gave up after") {
		t.Errorf("backup error does not say the server could not be reached: %s", r)
	}
	if took > 30*time.Second {
		t.Errorf("backup took %s to fail with a 3 s retry budget", took)
	}

	proxy.SetDown(false)
	list := listBackups(t, env, argv([]string{"--repo", s3Repo}, flags)...)
	if len(list) != 0 {
		t.Fatalf("list after the failed backup: %v", list)
	}
	// The failed backup's lock and chunks do not stand in the way.
	mustPgward(t, env, argv([]string{"backup", "--repo", s3Repo, "--conn", f.src.ConnString("postgres"), "--checkpoint", "fast"}, flags)...)
	list = listBackups(t, env, argv([]string{"--repo", s3Repo}, flags)...)
	if len(list) != 1 {
		t.Fatalf("list after the second backup: %v", list)
	}
}

// testErrors: bad credentials, an unknown access key, a missing bucket and no credentials
// at all each fail at once with one line that says what is wrong, and never show a secret.
func (f *s3Fixture) testErrors(t *testing.T) {
	srv := f.srv
	bucket := s3test.BucketName(t)
	s3Repo := "s3://" + bucket + "/pg"
	flags := s3Flags(srv.Endpoint)
	mustPgward(t, s3Env(srv), argv([]string{"init", "--repo", s3Repo}, flags)...)
	badSecret := "not-the-secret-" + srv.SecretKey[:6]
	cases := []struct {
		name string
		env  []string
		repo string
		want string
	}{
		{"WrongSecret", append(s3Env(srv), "AWS_SECRET_ACCESS_KEY="+badSecret), s3Repo,
			"pgward: opening repository " + s3Repo + ": access denied to bucket " + bucket + ": check the credentials (AWS_ACCESS_KEY_ID/AWS_PROFILE) and the bucket policy"},
		{"UnknownAccessKey", append(s3Env(srv), "AWS_ACCESS_KEY_ID=AKIANOSUCHKEY"), s3Repo,
			"pgward: opening repository " + s3Repo + ": access denied to bucket " + bucket},
		{"MissingBucket", s3Env(srv), "s3://no-such-bucket-here/pg",
			"pgward: opening repository s3://no-such-bucket-here/pg: bucket no-such-bucket-here does not exist (create it, or run pgward init which creates it)"},
		{"NoCredentials", []string{"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY="}, s3Repo,
			"pgward: opening repository " + s3Repo + ": no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			began := time.Now()
			for _, cmd := range [][]string{{"list"}, {"backup", "--conn", f.src.ConnString("postgres")}} {
				r := failPgward(t, tc.env, []string{tc.want}, argv(cmd, []string{"--repo", tc.repo}, flags)...)
				if lines := strings.Count(strings.TrimSpace(r.stderr), "\n") + 1; lines != 1 {
					t.Errorf("%s: %d lines of error, want one: %s", cmd[0], lines, r)
				}
				for _, secret := range []string{srv.SecretKey, badSecret} {
					if strings.Contains(r.stderr+r.stdout, secret) {
						t.Errorf("%s: output shows a secret: %s", cmd[0], r)
					}
				}
			}
			if took := time.Since(began); took > 10*time.Second {
				t.Errorf("permanent errors took %s: were they retried?", took)
			}
		})
	}
	failPgward(t, nil, []string{"ftp:// repositories are not supported; use a local directory, s3://bucket/prefix"}, "list", "--repo", "ftp://host/pg")
	failPgward(t, nil, []string{"bucket name \"ab\" must be 3 to 63 characters long"}, "list", "--repo", "s3://ab/pg")

	// The options also come from the environment and the config file.
	cfg := filepath.Join(t.TempDir(), "pgward.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("repo = [%q]\ns3-endpoint = %q\ns3-path-style = true\n", s3Repo, srv.Endpoint)), 0o600); err != nil {
		t.Fatal(err)
	}
	mustPgward(t, s3Env(srv), "list", "--config", cfg)
	mustPgward(t, append(s3Env(srv), "PGWARD_REPO="+s3Repo, "PGWARD_S3_ENDPOINT="+srv.Endpoint, "PGWARD_S3_PATH_STYLE=true"), "list")
	mustPgward(t, append(s3Env(srv), "AWS_ENDPOINT_URL_S3="+srv.Endpoint), "list", "--repo", s3Repo, "--s3-path-style")
	failPgward(t, s3Env(srv), []string{"--s3-sse", "use AES256 or aws:kms"}, "list", "--repo", s3Repo, "--s3-sse", "rot13")
}

// testS3ExpireWhileWriting: the lock protocol of garbage collection holds on S3, where
// locks are objects like any other: expire beside a running backup and archive-push, and a
// backup started during a sweep.
func testS3ExpireWhileWriting(t *testing.T, srv *s3test.Server) {
	bucket := s3test.BucketName(t)
	s3Repo := "s3://" + bucket + "/life"
	c, work := s3Archiving(t, srv, srv.Endpoint, s3Repo)
	testExpireWhileWriting(t, &writingTarget{env: s3Env(srv), repo: argv([]string{"--repo", s3Repo}, s3Flags(srv.Endpoint)), c: c, work: work,
		locked: func() bool { return len(objectNames(t, srv, bucket, "life/locks/.repository/")) > 0 }})
}
