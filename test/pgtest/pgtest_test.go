package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestVersions(t *testing.T) {
	t.Setenv("PGWARD_PG_VERSIONS", "")
	if got := Versions(); !slices.Equal(got, []int{13, 14, 15, 16, 17, 18}) {
		t.Errorf("default Versions() = %v", got)
	}
	t.Setenv("PGWARD_PG_VERSIONS", " 17,13  18 ")
	if got := Versions(); !slices.Equal(got, []int{17, 13, 18}) {
		t.Errorf("Versions() = %v", got)
	}
	t.Setenv("PGWARD_PG_VERSIONS", "15 x")
	func() {
		defer func() {
			if recover() == nil {
				t.Error("Versions() accepted a malformed PGWARD_PG_VERSIONS")
			}
		}()
		Versions()
	}()
}

func TestTempDirOwnedByPostgres(t *testing.T) {
	var dir string
	t.Run("inner", func(t *testing.T) {
		dir = TempDir(t)
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if cred, _ := postgresIDs(); cred != nil {
			if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != cred.Uid {
				t.Errorf("TempDir owner uid %d, want postgres (%d)", uid, cred.Uid)
			}
		}
		// Something only postgres can delete unless we are root.
		if out, err := RunAsPostgres(t.Context(), "sh", "-c", "mkdir -p "+dir+"/a/b && echo x > "+dir+"/a/b/f && chmod 500 "+dir+"/a/b"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	})
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("TempDir %s not removed after the test: %v", dir, err)
	}
}

func TestFreePortUnique(t *testing.T) {
	seen := map[int]bool{}
	for range 200 {
		p, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
}

func TestPostgresOptionsQuoting(t *testing.T) {
	got := postgresOptions(map[string]string{"b": "it's %p", "a": "1"})
	if want := `-c 'a=1' -c 'b=it'\''s %p'`; got != want {
		t.Errorf("postgresOptions = %s, want %s", got, want)
	}
}

// TestStartRetriesBusyPort: a port another process grabbed between freePort and the
// server's bind must cost a retry, not a failed test.
func TestStartRetriesBusyPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := l.Addr().(*net.TCPAddr).Port
	calls := 0
	pickPort = func() (int, error) {
		calls++
		if calls == 1 {
			return busy, nil
		}
		return freePort()
	}
	defer func() { pickPort = freePort }()

	c := Start(t, Versions()[0], Options{})
	if c.Port == busy || calls != 2 {
		t.Errorf("port %d after %d picks; busy port was %d", c.Port, calls, busy)
	}
	var one int
	c.QueryRow(t, "postgres", "SELECT 1", &one)
}

// TestCluster runs the harness end to end on every major: start, write, fingerprint,
// pgbench, restart on the same data directory, then recover-and-promote it.
func TestCluster(t *testing.T) {
	for _, major := range Versions() {
		t.Run(fmt.Sprintf("pg%d", major), func(t *testing.T) {
			t.Parallel()
			testCluster(t, major)
		})
	}
}

func testCluster(t *testing.T, major int) {
	lap := time.Now()
	timing := func(what string) {
		t.Logf("PostgreSQL %d: %-28s %6.2fs", major, what, time.Since(lap).Seconds())
		lap = time.Now()
	}

	// A value with quotes, spaces and % must reach the server unchanged.
	archiveCommand := `test -n '%f' && test "it's" != ""`
	c := Start(t, major, Options{
		Checksums: true,
		Settings:  map[string]string{"archive_mode": "on", "archive_command": archiveCommand},
		HBA:       []string{"host all all 127.0.0.1/32 trust"},
	})
	timing("initdb + start")

	var versionNum int
	c.QueryRow(t, "postgres", "SELECT current_setting('server_version_num')::int", &versionNum)
	if versionNum/10000 != major {
		t.Fatalf("server_version_num %d, want major %d", versionNum, major)
	}
	var gotArchive, checksums, walLevel string
	c.QueryRow(t, "postgres", "SELECT current_setting('archive_command'), current_setting('data_checksums'), current_setting('wal_level')",
		&gotArchive, &checksums, &walLevel)
	if gotArchive != archiveCommand || checksums != "on" || walLevel != "replica" {
		t.Errorf("archive_command=%q data_checksums=%s wal_level=%s", gotArchive, checksums, walLevel)
	}

	// A column named t would shadow a whole-row alias t: Checksums must not care.
	c.Exec(t, "postgres", `
		CREATE TABLE public.items (id int PRIMARY KEY, t text, n numeric);
		INSERT INTO items SELECT g, 'row ' || g || E' with \'quote\'', g / 3.0 FROM generate_series(1, 1000) g;
		INSERT INTO items VALUES (0, NULL, NULL);
		CREATE SCHEMA "Odd Schema";
		CREATE TABLE "Odd Schema"."Mixed Case" AS SELECT g AS x FROM generate_series(1, 10) g;
		CREATE UNLOGGED TABLE scratch AS SELECT g AS x FROM generate_series(1, 5) g;
		CREATE TABLE empty_one (x int);
		CREATE MATERIALIZED VIEW mv AS SELECT count(*) AS c FROM items;`)
	c.Exec(t, "postgres", "CREATE DATABASE other")
	c.Exec(t, "other", "CREATE TABLE o AS SELECT g AS x FROM generate_series(1, 42) g")

	before := Checksums(t, c)
	timing("workload + checksums")
	for key, want := range map[string]TableSum{
		"postgres.public.items":          {Rows: 1001},
		"postgres.Odd Schema.Mixed Case": {Rows: 10},
		"postgres.public.scratch":        {Rows: 5, Unlogged: true},
		"postgres.public.empty_one":      {Rows: 0},
		"postgres.public.mv":             {Rows: 1},
		"other.public.o":                 {Rows: 42},
	} {
		got, ok := before[key]
		if !ok {
			t.Errorf("Checksums has no %q (has %v)", key, slices.Sorted(mapKeys(before)))
			continue
		}
		if got.Rows != want.Rows || got.Unlogged != want.Unlogged || (got.Rows > 0) != (got.MD5 != "") {
			t.Errorf("Checksums[%q] = %+v, want rows %d unlogged %v", key, got, want.Rows, want.Unlogged)
		}
	}
	// The streamed digest must equal the one SQL computes, so tests can cross-check.
	var sqlMD5 string
	c.QueryRow(t, "postgres", `SELECT md5(string_agg(r::text, E'\n' ORDER BY r::text COLLATE "C")) FROM public.items r`, &sqlMD5)
	if got := before["postgres.public.items"].MD5; got != sqlMD5 {
		t.Errorf("items md5 %s, SQL says %s", got, sqlMD5)
	}

	c.Pgbench(t, "postgres", "-i", "-s", "1", "-q")
	c.Pgbench(t, "postgres", "-c", "2", "-t", "200", "-n")
	timing("pgbench -i -s 1, 400 tx")
	before = Checksums(t, c)
	if before["postgres.public.pgbench_accounts"].Rows != 100000 {
		t.Errorf("pgbench_accounts: %+v", before["postgres.public.pgbench_accounts"])
	}
	timing("checksums after pgbench")

	c.Stop(t, "fast")
	c.Stop(t, "fast") // idempotent
	timing("stop fast")

	// Restart on the same data directory: everything, unlogged tables included, survives
	// a clean shutdown.
	r := StartDataDir(t, major, c.DataDir, nil, false)
	timing("StartDataDir (restart)")
	if r.Port == c.Port {
		t.Errorf("restart reused port %d", r.Port)
	}
	if after := Checksums(t, r); !mapsEqual(before, after) {
		t.Errorf("checksums changed across a clean restart:\nbefore %v\nafter  %v", before, after)
	}
	r.Stop(t, "fast")

	// Archive recovery that runs out of WAL and promotes, as a restored backup does:
	// logged tables survive, unlogged tables come back empty.
	if err := os.WriteFile(filepath.Join(c.DataDir, "recovery.signal"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	lap = time.Now()
	p := StartDataDir(t, major, c.DataDir, map[string]string{"restore_command": "false"}, true)
	timing("StartDataDir (promote)")
	var inRecovery bool
	var timeline int
	p.QueryRow(t, "postgres", "SELECT pg_is_in_recovery(), (SELECT timeline_id FROM pg_control_checkpoint())", &inRecovery, &timeline)
	if inRecovery {
		t.Error("still in recovery after StartDataDir(wantPromoted)")
	}
	t.Logf("PostgreSQL %d: promoted, checkpoint timeline %d", major, timeline)
	after := Checksums(t, p)
	for key, b := range before {
		a := after[key]
		if b.Unlogged {
			if a.Rows != 0 {
				t.Errorf("unlogged %s has %d rows after recovery", key, a.Rows)
			}
			continue
		}
		if a != b {
			t.Errorf("%s: %+v after recovery, %+v before", key, a, b)
		}
	}
	p.Exec(t, "postgres", "INSERT INTO items VALUES (-1, 'after promotion', 0)")
	p.Stop(t, "immediate")
	timing("checks + stop immediate")
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func mapsEqual(a, b map[string]TableSum) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestPageChecksums: the harness's page checksum check agrees with
// PostgreSQL's pg_checksums on a checksummed cluster, and finds a flipped byte.
func TestPageChecksums(t *testing.T) {
	c := Start(t, 15, Options{Checksums: true})
	c.Exec(t, "postgres", "CREATE TABLE x AS SELECT g, md5(g::text) FROM generate_series(1, 20000) g")
	c.Stop(t, "fast")
	if n := VerifyPageChecksums(t, c.DataDir); n < 100 {
		t.Fatalf("checked %d pages, expected the whole catalog and table", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := runServerTool(ctx, filepath.Join(ClientBin, "pg_checksums"), "--check", "-D", c.DataDir); err != nil {
		t.Fatalf("pg_checksums disagrees: %v\n%s", err, out)
	}
	var rel string
	c.Start(t)
	c.QueryRow(t, "postgres", "SELECT pg_relation_filepath('x')", &rel)
	c.Stop(t, "fast")
	p := filepath.Join(c.DataDir, rel)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0xFF}, 3*8192+4000)
	f.Close()
	if _, bad, err := verifyFile(p, 0); err != nil || len(bad) != 1 || !strings.Contains(bad[0], "block 3") {
		t.Fatalf("a flipped byte in block 3: %v %v", bad, err)
	}
}
