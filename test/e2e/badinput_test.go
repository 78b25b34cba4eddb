package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/test/pgtest"
)

// TestBadInput: every refusal is one clear sentence and changes nothing.
func TestBadInput(t *testing.T) {
	work := pgtest.TempDir(t)
	tsDir := filepath.Join(work, "ts1")
	if err := os.Mkdir(tsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	pgtest.ChownToPostgres(t, tsDir)
	src := pgtest.Start(t, 15, pgtest.Options{Checksums: true})
	populate(t, src, tsDir, 2)
	conn := src.ConnString("postgres")
	repoDir := filepath.Join(work, "repo")
	mustPgward(t, nil, "init", "--repo", repoDir)
	id := strings.TrimSpace(strings.SplitN(mustPgward(t, nil, "backup", "--repo", repoDir, "--conn", conn, "--checkpoint", "fast").stdout, "\n", 2)[0])

	t.Run("missing repository", func(t *testing.T) {
		missing := filepath.Join(work, "nope")
		failPgward(t, nil, []string{"does not exist", "pgward init"}, "backup", "--repo", missing, "--conn", conn)
		if _, err := os.Stat(missing); !os.IsNotExist(err) {
			t.Fatal("backup created the missing repository directory")
		}
	})
	t.Run("uninitialised repository", func(t *testing.T) {
		empty := filepath.Join(work, "empty")
		os.Mkdir(empty, 0o700)
		failPgward(t, nil, []string{"no pgward repository", "pgward init"}, "list", "--repo", empty)
		if tree := dirTree(t, empty); tree != ". 4096 drwx------\n" {
			t.Fatalf("empty dir changed:\n%s", tree)
		}
	})
	t.Run("init on an existing repository", func(t *testing.T) {
		before := dirTree(t, repoDir)
		cfg, _ := os.ReadFile(filepath.Join(repoDir, "config"))
		failPgward(t, nil, []string{"already exists"}, "init", "--repo", repoDir)
		failPgward(t, []string{"PGWARD_PASSPHRASE=x"}, []string{"already exists"}, "init", "--repo", repoDir, "--encrypt")
		cfg2, _ := os.ReadFile(filepath.Join(repoDir, "config"))
		if string(cfg) != string(cfg2) || before != dirTree(t, repoDir) {
			t.Fatal("init changed an existing repository")
		}
	})
	t.Run("unreachable server", func(t *testing.T) {
		before := dirTree(t, repoDir)
		failPgward(t, nil, []string{"connecting to 127.0.0.1:1"}, "backup", "--repo", repoDir, "--conn", "host=127.0.0.1 port=1 user=postgres connect_timeout=5")
		if before != dirTree(t, repoDir) {
			t.Fatal("failed backup changed the repository")
		}
	})
	t.Run("role without REPLICATION", func(t *testing.T) {
		src.Exec(t, "postgres", "CREATE ROLE plain LOGIN")
		before := dirTree(t, repoDir)
		failPgward(t, nil, []string{"REPLICATION attribute", "ALTER ROLE plain REPLICATION"}, "backup", "--repo", repoDir,
			"--conn", strings.Replace(conn, "user=postgres", "user=plain", 1))
		if before != dirTree(t, repoDir) {
			t.Fatal("failed backup changed the repository")
		}
	})
	t.Run("another cluster under the same name", func(t *testing.T) {
		other := pgtest.Start(t, 15, pgtest.Options{})
		before := dirTree(t, repoDir)
		failPgward(t, nil, []string{"belongs to the PostgreSQL system", "another --cluster name"}, "backup", "--repo", repoDir, "--conn", other.ConnString("postgres"), "--checkpoint", "fast")
		if before != dirTree(t, repoDir) {
			t.Fatal("refused backup changed the repository")
		}
	})
	t.Run("restore into a non-empty directory", func(t *testing.T) {
		target := filepath.Join(work, "occupied")
		os.Mkdir(target, 0o700)
		os.WriteFile(filepath.Join(target, "keep.txt"), []byte("precious"), 0o600)
		before := dirTree(t, target)
		failPgward(t, nil, []string{"is not empty", "choose another or empty it"}, "restore", "--repo", repoDir, "--pgdata", target, "--tablespace-map", tsOID(t, src)+"="+filepath.Join(work, "tsx"))
		if before != dirTree(t, target) {
			t.Fatal("restore changed a non-empty directory")
		}
	})
	t.Run("tablespace location in use", func(t *testing.T) {
		target := filepath.Join(work, "r-ts")
		failPgward(t, nil, []string{"not empty", "--tablespace-map " + tsOID(t, src) + "=NEWDIR"}, "restore", "--repo", repoDir, "--pgdata", target)
		if _, err := os.Stat(target); !os.IsNotExist(err) {
			t.Fatal("refused restore created the data directory")
		}
	})
	t.Run("unknown backup", func(t *testing.T) {
		failPgward(t, nil, []string{"20000101T000000Z", "pgward list"}, "restore", "--repo", repoDir, "--pgdata", filepath.Join(work, "r-unknown"), "--backup", "20000101T000000Z")
	})
	t.Run("corrupted chunk", func(t *testing.T) {
		bad := copyRepo(t, repoDir, filepath.Join(work, "repo-corrupt"))
		victim := largestChunk(t, bad)
		b, _ := os.ReadFile(victim)
		damage(b, len(b)/2)
		os.Chmod(victim, 0o600)
		if err := os.WriteFile(victim, b, 0o600); err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(work, "r-corrupt")
		readableByServer(t, "--repo", bad)
		failPgward(t, nil, []string{filepath.Base(victim), "corrupted object"}, "restore", "--repo", bad, "--pgdata", target, "--backup", id, "--tablespace-map", tsOID(t, src)+"="+filepath.Join(work, "ts-corrupt"), "--jobs", "1")
		assertNotStartable(t, target)
	})
	t.Run("missing chunk", func(t *testing.T) {
		bad := copyRepo(t, repoDir, filepath.Join(work, "repo-missing"))
		victim := largestChunk(t, bad)
		os.Remove(victim)
		target := filepath.Join(work, "r-missing")
		readableByServer(t, "--repo", bad)
		failPgward(t, nil, []string{filepath.Base(victim), "missing"}, "restore", "--repo", bad, "--pgdata", target, "--tablespace-map", tsOID(t, src)+"="+filepath.Join(work, "ts-missing"))
		assertNotStartable(t, target)
	})
	t.Run("backup killed midway", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		// Throttled so that it is surely still running when killed.
		cmd := exec.CommandContext(ctx, pgwardBin, "backup", "--repo", repoDir, "--conn", conn, "--checkpoint", "fast", "--max-rate", "2048", "--compress", "lz4")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		cmd.Process.Kill()
		cmd.Wait()
		list := listBackups(t, nil, "--repo", repoDir)
		if len(list) != 1 {
			t.Fatalf("killed backup is listed: %v", list)
		}
		r := mustPgward(t, nil, "backup", "--repo", repoDir, "--conn", conn, "--checkpoint", "fast")
		newID := strings.SplitN(r.stdout, "\n", 2)[0]
		target := filepath.Join(work, "r-after-kill")
		readableByServer(t, "--repo", repoDir)
		mustPgward(t, nil, "restore", "--repo", repoDir, "--pgdata", target, "--backup", newID, "--tablespace-map", tsOID(t, src)+"="+filepath.Join(work, "ts-after-kill"))
		want := pgtest.Checksums(t, src)
		dst := pgtest.StartDataDir(t, 15, target, nil, true)
		compareSums(t, want, pgtest.Checksums(t, dst))
	})
}

func TestWalLevelMinimal(t *testing.T) {
	c := pgtest.Start(t, 15, pgtest.Options{Settings: map[string]string{"wal_level": "minimal", "max_wal_senders": "0"}})
	repoDir := filepath.Join(pgtest.TempDir(t), "repo")
	mustPgward(t, nil, "init", "--repo", repoDir)
	before := dirTree(t, repoDir)
	failPgward(t, nil, []string{"wal_level"}, "backup", "--repo", repoDir, "--conn", c.ConnString("postgres"))
	if before != dirTree(t, repoDir) {
		t.Fatal("refused backup changed the repository")
	}
}

func TestChecksumFailureNamesFile(t *testing.T) {
	c := pgtest.Start(t, 15, pgtest.Options{Checksums: true})
	c.Exec(t, "postgres", "CREATE TABLE victim AS SELECT g, md5(g::text) FROM generate_series(1, 10000) g; CHECKPOINT;")
	var rel string
	c.QueryRow(t, "postgres", "SELECT pg_relation_filepath('victim')", &rel)
	c.Stop(t, "fast")
	path := filepath.Join(c.DataDir, rel)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[8192+4000] ^= 0x55 // inside the second page's tuples: checksum no longer matches
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	c2 := pgtest.StartDataDir(t, 15, c.DataDir, nil, false)
	repoDir := filepath.Join(pgtest.TempDir(t), "repo")
	mustPgward(t, nil, "init", "--repo", repoDir)
	failPgward(t, nil, []string{"checksum", rel}, "backup", "--repo", repoDir, "--conn", c2.ConnString("postgres"), "--checkpoint", "fast")
	if out := mustPgward(t, nil, "list", "--repo", repoDir).stdout; !strings.Contains(out, "no backups") {
		t.Fatalf("failed backup is listed:\n%s", out)
	}
}

func tsOID(t *testing.T, c *pgtest.Cluster) string {
	var oid string
	c.QueryRow(t, "postgres", "SELECT oid::text FROM pg_tablespace WHERE spcname = 'ts1'", &oid)
	return oid
}

func copyRepo(t *testing.T, from, to string) string {
	t.Helper()
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	return to
}

func largestChunk(t *testing.T, repoDir string) string {
	t.Helper()
	var best string
	var size int64
	filepath.Walk(filepath.Join(repoDir, "chunks"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && fi.Size() > size {
			best, size = p, fi.Size()
		}
		return nil
	})
	if best == "" {
		t.Fatal("no chunks")
	}
	return best
}

// assertNotStartable: a failed restore leaves nothing PostgreSQL would start.
func assertNotStartable(t *testing.T, target string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(target, "global", "pg_control")); err == nil {
		t.Fatal("failed restore left a pg_control behind")
	}
	if entries, err := os.ReadDir(target); err == nil && len(entries) > 0 {
		t.Fatalf("failed restore left %d entries in %s", len(entries), target)
	}
}

// TestSmallBadInputs: options that cannot mean anything are refused in one sentence
// (in the option's own unit) and change nothing.
func TestSmallBadInputs(t *testing.T) {
	work := pgtest.TempDir(t)
	repoDir := filepath.Join(work, "repo")
	mustPgward(t, nil, "init", "--repo", repoDir)
	before := dirTree(t, repoDir)
	for _, jobs := range []string{"0", "-3"} {
		failPgward(t, nil, []string{"--jobs " + jobs, "at least 1"}, "backup", "--repo", repoDir, "--conn", "host=127.0.0.1 port=1", "--jobs", jobs)
		failPgward(t, nil, []string{"--jobs " + jobs, "at least 1"}, "restore", "--repo", repoDir, "--pgdata", filepath.Join(work, "r"), "--jobs", jobs)
	}
	failPgward(t, nil, []string{"--max-rate 10 kB/s", "32"}, "backup", "--repo", repoDir, "--conn", "host=127.0.0.1 port=1", "--max-rate", "10")
	failPgward(t, nil, []string{"--chunk-size-kib 100000", "65536"}, "init", "--repo", filepath.Join(work, "big"), "--chunk-size-kib", "100000")
	if before != dirTree(t, repoDir) {
		t.Error("a refused command changed the repository")
	}
	if _, err := os.Stat(filepath.Join(work, "big")); !os.IsNotExist(err) {
		t.Error("a refused init created its directory")
	}

	// All or nothing: the second location cannot be created, so the first one,
	// created a moment before, is removed again.
	blocker := filepath.Join(work, "file")
	os.WriteFile(blocker, []byte("x"), 0o600)
	first := filepath.Join(work, "first")
	failPgward(t, nil, []string{"file"}, "init", "--repo", first, "--repo", filepath.Join(blocker, "repo"))
	if _, err := os.Stat(first); !os.IsNotExist(err) {
		t.Errorf("a failed init left %s behind", first)
	}
	mustPgward(t, nil, "init", "--repo", first)

	// A passphrase file others can read is refused; on an unencrypted
	// repository a passphrase option is a warning.
	pass := filepath.Join(work, "pass")
	os.WriteFile(pass, []byte("secret\n"), 0o640)
	failPgward(t, nil, []string{"can be read by group or others", "chmod 600"}, "init", "--repo", filepath.Join(work, "enc"), "--encrypt", "--passphrase-file", pass)
	os.Chmod(pass, 0o600)
	if r := mustPgward(t, nil, "list", "--repo", repoDir, "--passphrase-file", pass); !strings.Contains(r.stderr, "not encrypted") {
		t.Errorf("a passphrase for an unencrypted repository: no warning:\n%s", r)
	}

	// An edited key in the config is named as such, not as a corrupt chunk.
	cfg, _ := os.ReadFile(filepath.Join(repoDir, "config"))
	var m map[string]any
	json.Unmarshal(cfg, &m)
	key := m["plain_key"].(string)
	edited := strings.Replace(string(cfg), key, strings.Repeat("0", len(key)), 1)
	os.Chmod(filepath.Join(repoDir, "config"), 0o600)
	os.WriteFile(filepath.Join(repoDir, "config"), []byte(edited), 0o600)
	failPgward(t, nil, []string{"config was edited or damaged"}, "list", "--repo", repoDir)
}
