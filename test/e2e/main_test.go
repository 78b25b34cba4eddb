// Package e2e proves pgward end to end: the real binary, built once, against
// real PostgreSQL clusters the tests start (13 to 18 by default; see
// pgtest.Versions). Every restore is started and its rows compared with the
// source's.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgward/pgward/test/pgtest"
)

// pgwardBin is the binary under test, in a directory the postgres user can
// reach (restore_command and archive_command run it as postgres).
var pgwardBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pgward-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	_ = os.Chmod(dir, 0o755)
	pgwardBin = filepath.Join(dir, "pgward")
	root, err := pgtest.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	build := exec.Command("go", "build", "-o", pgwardBin, "./cmd/pgward")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building pgward: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result of one pgward run.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// pgward runs the binary with args; env entries are added to a clean
// environment (no PGWARD_* leaking in from the developer's shell).
func pgward(t testing.TB, env []string, args ...string) result {
	t.Helper()
	return runPgward(t, false, env, args...)
}

// pgwardPG runs pgward as the postgres OS user (when the test runs as root), as
// the archive_command and restore_command run, so that a repository written by
// both stays writable by both.
func pgwardPG(t testing.TB, env []string, args ...string) result {
	t.Helper()
	r := runPgward(t, true, env, args...)
	if r.code != 0 {
		t.Fatalf("pgward %s (as postgres) failed: %s", strings.Join(args, " "), r)
	}
	return r
}

// asPostgresUser makes cmd run as the postgres OS user when the test runs as root, as
// the archive_command and restore_command do.
func asPostgresUser(cmd *exec.Cmd) {
	if os.Geteuid() != 0 {
		return
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		panic(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	cmd.Dir = os.TempDir()
}

// cleanEnv is the test's environment without PGWARD_* and libpq's PG* variables, so that
// nothing of the developer's shell leaks into pgward.
func cleanEnv() []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "PGWARD_") && !strings.HasPrefix(e, "PG") {
			env = append(env, e)
		}
	}
	return env
}

func runPgward(t testing.TB, asPostgres bool, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, pgwardBin, args...)
	cmd.Env = append(cleanEnv(), env...)
	if asPostgres {
		asPostgresUser(cmd)
	}
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	r := result{stdout: so.String(), stderr: se.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running pgward %v: %v", args, err)
	}
	return r
}

// mustPgward runs pgward and fails the test unless it exits 0.
func mustPgward(t testing.TB, env []string, args ...string) result {
	t.Helper()
	r := pgward(t, env, args...)
	if r.code != 0 {
		t.Fatalf("pgward %s failed: %s", strings.Join(args, " "), r)
	}
	return r
}

// failPgward runs pgward, expects a non-zero exit and an error containing every
// one of wants.
func failPgward(t testing.TB, env []string, wants []string, args ...string) result {
	t.Helper()
	r := pgward(t, env, args...)
	if r.code == 0 {
		t.Fatalf("pgward %s succeeded, expected failure: %s", strings.Join(args, " "), r)
	}
	for _, w := range wants {
		if !strings.Contains(r.stderr, w) {
			t.Fatalf("pgward %s: error does not mention %q: %s", strings.Join(args, " "), w, r)
		}
	}
	return r
}

// dirTree returns every path under dir with size and mode, to prove that a
// failed command changed nothing.
func dirTree(t testing.TB, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if strings.HasPrefix(filepath.Base(p), ".tmp-") {
			return nil
		}
		fmt.Fprintf(&b, "%s %d %v\n", rel, fi.Size(), fi.Mode())
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return b.String()
}

// compareSums checks that every logged table of the source has the same rows
// in the restored cluster (unlogged tables come back empty, as in PostgreSQL
// itself after recovery).
func compareSums(t testing.TB, src, dst map[string]pgtest.TableSum) {
	t.Helper()
	if len(src) == 0 {
		t.Fatal("source has no tables")
	}
	for name, s := range src {
		d, ok := dst[name]
		if !ok {
			t.Errorf("table %s missing after restore", name)
			continue
		}
		if s.Unlogged {
			if d.Rows != 0 {
				t.Errorf("unlogged table %s has %d rows after restore, want 0", name, d.Rows)
			}
			continue
		}
		if s != d {
			t.Errorf("table %s differs: source %+v, restored %+v", name, s, d)
		}
	}
	for name := range dst {
		if _, ok := src[name]; !ok {
			t.Errorf("table %s appeared after restore", name)
		}
	}
}

// repoSize is the total size of a local repository's chunk objects.
func repoSize(t testing.TB, dir string) int64 {
	t.Helper()
	var n int64
	filepath.Walk(filepath.Join(dir, "chunks"), func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// listBackups runs 'list --json' with args and returns its "backups" array.
func listBackups(t testing.TB, env []string, args ...string) []map[string]any {
	t.Helper()
	var out struct {
		Backups []map[string]any `json:"backups"`
	}
	r := mustPgward(t, env, append([]string{"list", "--json"}, args...)...)
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("list --json: %v\n%s", err, r.stdout)
	}
	return out.Backups
}

// readableByServer gives the local repositories named by --repo in args to the
// postgres OS user. A restore proves, as that user, that the restored server's
// restore_command can read the repository, as it must in production; the tests
// that write repositories as root hand them over before restoring.
func readableByServer(t testing.TB, args ...string) {
	t.Helper()
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "--repo" && !strings.Contains(args[i+1], "://") {
			pgtest.ChownToPostgres(t, args[i+1])
		}
	}
}
