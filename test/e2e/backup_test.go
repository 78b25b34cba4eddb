package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgward/pgward/test/pgtest"
)

// populate gives a cluster the shapes of data a backup must get right: pgbench,
// TOAST values, an unlogged table, a second database and a tablespace.
func populate(t *testing.T, c *pgtest.Cluster, tsDir string, scale int) {
	t.Helper()
	c.Pgbench(t, "postgres", "-i", "-q", "-s", fmt.Sprint(scale))
	c.Exec(t, "postgres", `
		CREATE TABLE toasty (id int PRIMARY KEY, doc text);
		INSERT INTO toasty SELECT g, repeat(md5(g::text), 2000) || string_agg(md5((g*k)::text), '') FROM generate_series(1, 300) g, generate_series(1, 50) k GROUP BY g;
		CREATE UNLOGGED TABLE scratch AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 5000) g;`)
	c.Exec(t, "postgres", `CREATE DATABASE second`)
	c.Exec(t, "second", `
		CREATE TABLE items (id bigint PRIMARY KEY, name text, price numeric);
		INSERT INTO items SELECT g, 'item ' || g, g * 1.5 FROM generate_series(1, 20000) g;`)
	c.Exec(t, "postgres", fmt.Sprintf(`CREATE TABLESPACE ts1 LOCATION '%s'`, tsDir))
	c.Exec(t, "postgres", `
		CREATE TABLE in_ts (id int, payload text) TABLESPACE ts1;
		INSERT INTO in_ts SELECT g, repeat('x', g % 500) FROM generate_series(1, 30000) g;
		CHECKPOINT;`)
}

func TestBackupRestore(t *testing.T) {
	for _, major := range pgtest.Versions() {
		t.Run(fmt.Sprintf("pg%d", major), func(t *testing.T) {
			t.Parallel()
			testBackupRestore(t, major)
		})
	}
}

func testBackupRestore(t *testing.T, major int) {
	work := pgtest.TempDir(t)
	tsDir := filepath.Join(work, "ts1")
	if err := os.Mkdir(tsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	pgtest.ChownToPostgres(t, tsDir)
	src := pgtest.Start(t, major, pgtest.Options{Checksums: true})
	populate(t, src, tsDir, 10)
	want := pgtest.Checksums(t, src)

	repoDir := filepath.Join(work, "repo")
	mustPgward(t, nil, "init", "--repo", repoDir)
	conn := src.ConnString("postgres")
	r := mustPgward(t, nil, "backup", "--repo", repoDir, "--conn", conn, "--checkpoint", "fast", "--jobs", "2")
	id := strings.SplitN(r.stdout, "\n", 2)[0]
	if !strings.Contains(r.stdout, "stored") {
		t.Fatalf("backup summary missing: %s", r)
	}

	// list --json has the stable keys.
	list := listBackups(t, nil, "--repo", repoDir)
	if len(list) != 1 || list[0]["id"] != id {
		t.Fatalf("list: %v", list)
	}
	for _, k := range []string{"id", "cluster", "start_time", "stop_time", "start_lsn", "stop_lsn", "timeline", "pg_version", "system_identifier", "db_bytes", "stored_bytes"} {
		if _, ok := list[0][k]; !ok {
			t.Errorf("list --json lacks key %q", k)
		}
	}
	if int(list[0]["pg_version"].(float64))/10000 != major {
		t.Errorf("pg_version %v for PostgreSQL %d", list[0]["pg_version"], major)
	}

	// Restore with the tablespace moved, start, compare every table.
	target := filepath.Join(work, "restored")
	tsNew := filepath.Join(work, "ts1-restored")
	var oid string
	src.QueryRow(t, "postgres", "SELECT oid::text FROM pg_tablespace WHERE spcname = 'ts1'", &oid)
	readableByServer(t, "--repo", repoDir)
	mustPgward(t, nil, "restore", "--repo", repoDir, "--pgdata", target, "--backup", id, "--tablespace-map", oid+"="+tsNew)
	link, err := os.Readlink(filepath.Join(target, "pg_tblspc", oid))
	if err != nil || link != tsNew {
		t.Fatalf("tablespace link = %q, %v; want %s", link, err, tsNew)
	}
	if _, err := os.Stat(filepath.Join(target, "recovery.signal")); err != nil {
		t.Fatal("no recovery.signal")
	}
	// The source must keep running untouched while the copy starts.
	dst := pgtest.StartDataDir(t, major, target, nil, true)
	compareSums(t, want, pgtest.Checksums(t, dst))
	var checksums string
	dst.QueryRow(t, "postgres", "SHOW data_checksums", &checksums)
	dst.Stop(t, "fast")
	// Every page of the restored (and recovered) cluster has a valid checksum.
	if n := pgtest.VerifyPageChecksums(t, target); n == 0 || checksums != "on" {
		t.Errorf("restored cluster: data_checksums %s, %d pages checked", checksums, n)
	}

	// A second backup of the unchanged cluster adds little.
	before := repoSize(t, repoDir)
	mustPgward(t, nil, "backup", "--repo", repoDir, "--conn", conn, "--checkpoint", "fast")
	added := repoSize(t, repoDir) - before
	if added*10 > before {
		t.Errorf("second backup of an unchanged cluster added %d bytes to a %d-byte repository (>= 10%%)", added, before)
	}
	if out := mustPgward(t, nil, "list", "--repo", repoDir).stdout; strings.Count(out, " main ") != 2 || !strings.Contains(out, "recoverable from") {
		t.Errorf("list after two backups:\n%s", out)
	}
}
