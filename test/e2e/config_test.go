package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/test/pgtest"
)

// TestConfigPrecedence: options come from the TOML file (top level and
// [cluster.NAME]), the environment and flags; flags beat env beat file. The
// libpq environment works for --conn.
func TestConfigPrecedence(t *testing.T) {
	work := pgtest.TempDir(t)
	src := pgtest.Start(t, 15, pgtest.Options{})
	fileRepo := filepath.Join(work, "file-repo")
	envRepo := filepath.Join(work, "env-repo")
	flagRepo := filepath.Join(work, "flag-repo")
	for _, d := range []string{fileRepo, envRepo, flagRepo} {
		mustPgward(t, nil, "init", "--repo", d)
	}
	cfg := filepath.Join(work, "pgward.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
repo = [%q]
compress = "lz4"
default-cluster = "prod"
checkpoint = "fast"

[cluster.prod]
conn = "host=127.0.0.1 port=%d user=postgres"
`, fileRepo, src.Port)), 0o644)

	countIn := func(dir string) int {
		list := listBackups(t, nil, "--repo", dir)
		for _, b := range list {
			if b["cluster"] != "prod" {
				t.Errorf("cluster = %v, want prod (from the file)", b["cluster"])
			}
			if b["compress"] != "lz4" {
				t.Errorf("compress = %v, want lz4 (from the file)", b["compress"])
			}
		}
		return len(list)
	}

	mustPgward(t, nil, "backup", "--config", cfg)
	mustPgward(t, []string{"PGWARD_REPO=" + envRepo}, "backup", "--config", cfg)
	mustPgward(t, []string{"PGWARD_REPO=" + envRepo, "PGWARD_CONFIG=" + cfg}, "backup", "--repo", flagRepo)
	if a, b, c := countIn(fileRepo), countIn(envRepo), countIn(flagRepo); a != 1 || b != 1 || c != 1 {
		t.Fatalf("backups per repository file/env/flag = %d/%d/%d, want 1/1/1", a, b, c)
	}
	// libpq environment: no --conn at all.
	other := filepath.Join(work, "libpq-repo")
	mustPgward(t, nil, "init", "--repo", other)
	mustPgward(t, []string{"PGHOST=127.0.0.1", fmt.Sprintf("PGPORT=%d", src.Port), "PGUSER=postgres"}, "backup", "--repo", other, "--checkpoint", "fast")
	// A bad value in the file is reported with its origin.
	bad := filepath.Join(work, "bad.toml")
	os.WriteFile(bad, []byte("jobs = \"many\"\n"), 0o644)
	failPgward(t, nil, []string{bad, "jobs"}, "backup", "--config", bad, "--repo", other)
	failPgward(t, nil, []string{"missing.toml"}, "list", "--config", filepath.Join(work, "missing.toml"))
}

// TestPassphraseCommand and the lock: a second backup of the same cluster while
// one runs is refused, and a concurrent one of another cluster is not.
func TestLockAndPassphraseCommand(t *testing.T) {
	work := pgtest.TempDir(t)
	src := pgtest.Start(t, 15, pgtest.Options{})
	src.Pgbench(t, "postgres", "-i", "-q", "-s", "3")
	repoDir := filepath.Join(work, "repo")
	passCmd := []string{"--passphrase-command", "echo s3cret"}
	mustPgward(t, nil, append([]string{"init", "--repo", repoDir, "--encrypt"}, passCmd...)...)
	conn := src.ConnString("postgres")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	slow := exec.CommandContext(ctx, pgwardBin, "backup", "--repo", repoDir, "--conn", conn, "--checkpoint", "fast", "--max-rate", "4096", "--passphrase-command", "echo s3cret")
	var slowErr strings.Builder
	slow.Stderr = &slowErr
	if err := slow.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the slow backup holds its lock.
	deadline := time.Now().Add(30 * time.Second)
	for {
		entries, _ := os.ReadDir(filepath.Join(repoDir, "locks", "main"))
		if len(entries) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the slow backup never took its lock")
		}
		time.Sleep(50 * time.Millisecond)
	}
	failPgward(t, nil, []string{"locked", "wait for it to finish"}, append([]string{"backup", "--repo", repoDir, "--conn", conn}, passCmd...)...)
	if err := slow.Wait(); err != nil {
		t.Fatalf("slow backup: %v\n%s", err, slowErr.String())
	}
	// Lock released: the next backup runs.
	mustPgward(t, nil, append([]string{"backup", "--repo", repoDir, "--conn", conn, "--checkpoint", "fast"}, passCmd...)...)
	failPgward(t, nil, []string{"passphrase command failed"}, "list", "--repo", repoDir, "--passphrase-command", "exit 3")
}
