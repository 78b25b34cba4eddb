package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/pgward/pgward/test/pgtest"
)

// TestDBInclude: of two databases (each with a table in a tablespace), --db-include
// restores one; the other is an empty shell whose files take no space, and it
// can be dropped; every other table has the source's rows.
func TestDBInclude(t *testing.T) {
	for _, major := range pgtest.EdgeVersions() {
		t.Run(fmt.Sprintf("pg%d", major), func(t *testing.T) {
			t.Parallel()
			testDBInclude(t, major)
		})
	}
}

func testDBInclude(t *testing.T, major int) {
	work := pgtest.TempDir(t)
	tsDir := filepath.Join(work, "ts")
	if err := os.Mkdir(tsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	pgtest.ChownToPostgres(t, tsDir)
	src := pgtest.Start(t, major, pgtest.Options{})
	src.Exec(t, "postgres", "CREATE DATABASE keep")
	src.Exec(t, "postgres", "CREATE DATABASE dropme")
	src.Exec(t, "postgres", fmt.Sprintf("CREATE TABLESPACE ts LOCATION '%s'", tsDir))
	src.Exec(t, "postgres", "CREATE TABLE p AS SELECT g FROM generate_series(1, 100) g")
	src.Exec(t, "keep", `CREATE TABLE k AS SELECT g, md5(g::text) AS v FROM generate_series(1, 10000) g;
		CREATE TABLE kt TABLESPACE ts AS SELECT g FROM generate_series(1, 1000) g`)
	src.Exec(t, "dropme", `CREATE TABLE d AS SELECT g, repeat(md5(g::text), 20) AS v FROM generate_series(1, 20000) g;
		CREATE TABLE dt TABLESPACE ts AS SELECT g FROM generate_series(1, 1000) g`)
	var dropOID, tsOID string
	src.QueryRow(t, "postgres", "SELECT oid::text FROM pg_database WHERE datname = 'dropme'", &dropOID)
	src.QueryRow(t, "postgres", "SELECT oid::text FROM pg_tablespace WHERE spcname = 'ts'", &tsOID)
	want := pgtest.Checksums(t, src)

	repoDir := filepath.Join(work, "repo")
	mustPgward(t, nil, "init", "--repo", repoDir)
	mustPgward(t, nil, "backup", "--repo", repoDir, "--conn", src.ConnString("postgres"), "--checkpoint", "fast")
	readableByServer(t, "--repo", repoDir)
	target := filepath.Join(work, "restored")
	failPgward(t, nil, []string{`--db-include "nosuch"`, "dropme, keep, postgres"},
		"restore", "--repo", repoDir, "--pgdata", target, "--db-include", "nosuch")
	r := mustPgward(t, nil, "restore", "--repo", repoDir, "--pgdata", target, "--db-include", "keep",
		"--tablespace-map", tsOID+"="+filepath.Join(work, "ts-restored"))
	if !strings.Contains(r.stdout, "empty shells") {
		t.Errorf("restore does not say the other databases are empty shells: %s", r)
	}
	// The excluded database holds its files' sizes but no data.
	size, allocated := diskUse(t, filepath.Join(target, "base", dropOID))
	if size < 1<<20 || allocated > size/10 {
		t.Errorf("the excluded database's files: %d bytes, %d allocated; want them sparse", size, allocated)
	}

	dst := pgtest.StartDataDir(t, major, target, nil, true)
	dst.Exec(t, "postgres", "DROP DATABASE dropme")
	for k := range want {
		if strings.HasPrefix(k, "dropme.") {
			delete(want, k)
		}
	}
	compareSums(t, want, pgtest.Checksums(t, dst))
}

// diskUse sums the apparent and the allocated sizes of the files in dir.
func diskUse(t *testing.T, dir string) (size, allocated int64) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		size += fi.Size()
		allocated += fi.Sys().(*syscall.Stat_t).Blocks * 512
	}
	return size, allocated
}
