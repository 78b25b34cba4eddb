package pgtest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// startTimeout is how long pg_ctl waits for a server to accept connections, and how
// long StartDataDir waits for a restored cluster to promote: replaying a restored
// backup's WAL on a loaded 2-core CI machine can take a while.
const startTimeout = 120 * time.Second

// queryTimeout bounds one helper query so a hung server fails the test instead of
// running into go test's global timeout.
const queryTimeout = 10 * time.Minute

// logTailLines is how much of a server log is shown when a test fails.
const logTailLines = 50

// Cluster is a running (or stopped) PostgreSQL server owned by one test.
type Cluster struct {
	Major   int    // PostgreSQL major version
	Bin     string // directory of initdb, pg_ctl, postgres
	DataDir string
	Port    int    // TCP port on 127.0.0.1
	SockDir string // unix_socket_directories
	LogFile string // server log (pg_ctl -l), outside the data directory

	settings map[string]string // -c settings the server was started with

	mu      sync.Mutex
	running bool
}

// Options configures Start.
type Options struct {
	Checksums bool              // initdb -k (data checksums)
	Settings  map[string]string // extra -c settings (archive_mode, archive_command, summarize_wal, ...); they win over the defaults
	HBA       []string          // extra pg_hba.conf lines, appended after initdb's
}

// baseSettings are what every test cluster runs with. fsync=off is safe because a
// test never survives an OS crash, and it makes initdb-heavy suites several times
// faster; full_page_writes stays on because backups depend on it.
func baseSettings(port int, sockDir string) map[string]string {
	return map[string]string{
		"port":                    strconv.Itoa(port),
		"listen_addresses":        "127.0.0.1",
		"unix_socket_directories": sockDir,
		"wal_level":               "replica",
		"max_wal_senders":         "10",
		"fsync":                   "off",
	}
}

// Start creates a new cluster with initdb and starts it on a free port. The cluster
// is stopped (immediate) and its files removed in t.Cleanup; if the test failed, the
// last lines of the server log are printed first.
func Start(t testing.TB, major int, opts Options) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	bin := BinDir(t, major)
	base := TempDir(t)
	c := &Cluster{
		Major:   major,
		Bin:     bin,
		DataDir: filepath.Join(base, "data"),
		SockDir: filepath.Join(base, "sock"),
		LogFile: filepath.Join(base, "postgres.log"),
	}
	if err := os.Mkdir(c.SockDir, 0o700); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if err := chownToPostgres(c.SockDir); err != nil {
		t.Fatalf("pgtest: %v", err)
	}

	args := []string{"-D", c.DataDir, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C"}
	if opts.Checksums {
		args = append(args, "-k")
	}
	if out, err := runServerTool(ctx, filepath.Join(bin, "initdb"), args...); err != nil {
		t.Fatalf("pgtest: PostgreSQL %d: %v\n%s", major, err, out)
	}
	if len(opts.HBA) > 0 {
		if err := appendLines(filepath.Join(c.DataDir, "pg_hba.conf"), opts.HBA); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
	}

	c.registerCleanup(t)
	if err := c.start(ctx, opts.Settings); err != nil {
		t.Fatalf("pgtest: PostgreSQL %d: %v", major, err) // cleanup shows the log
	}
	return c
}

// StartDataDir starts a server on an existing data directory (one pgward restored, or
// one a test stopped) on a free port, and waits until it accepts connections; with
// wantPromoted it also waits until recovery has ended (pg_is_in_recovery() is false),
// which is when a restored backup is fully usable.
//
// When running as root, the directory (and the targets of its pg_tblspc links) is
// given to postgres first, since a restore run by the test wrote it as root. Its mode
// is left alone: a restore must produce a directory PostgreSQL accepts.
func StartDataDir(t testing.TB, major int, dataDir string, settings map[string]string, wantPromoted bool) *Cluster {
	t.Helper()
	return startDataDir(t, major, dataDir, settings, wantPromoted, false)
}

// StartRecovery starts a restored data directory like StartDataDir but expects
// nothing: the server may fail to start, or stop during recovery. Tests of
// recovery that must not end early use it with WaitExit and Log.
func StartRecovery(t testing.TB, major int, dataDir string, settings map[string]string) *Cluster {
	t.Helper()
	return startDataDir(t, major, dataDir, settings, false, true)
}

func startDataDir(t testing.TB, major int, dataDir string, settings map[string]string, wantPromoted, mayFail bool) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*startTimeout)
	defer cancel()
	bin := BinDir(t, major)
	dataDir, err := filepath.Abs(dataDir)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if err := prepareDataDir(ctx, dataDir); err != nil {
		t.Fatalf("pgtest: start PostgreSQL %d on %s: %v", major, dataDir, err)
	}
	aux := TempDir(t)
	c := &Cluster{
		Major:   major,
		Bin:     bin,
		DataDir: dataDir,
		SockDir: filepath.Join(aux, "sock"),
		LogFile: filepath.Join(aux, "postgres.log"),
	}
	if err := os.Mkdir(c.SockDir, 0o700); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if err := chownToPostgres(c.SockDir); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	c.registerCleanup(t)
	if err := c.start(ctx, settings); err != nil && !mayFail {
		t.Fatalf("pgtest: PostgreSQL %d on %s: %v", major, dataDir, err) // cleanup shows the log
	}
	if wantPromoted {
		if err := c.waitPromoted(ctx); err != nil {
			t.Fatalf("pgtest: PostgreSQL %d on %s: %v", major, dataDir, err) // cleanup shows the log
		}
	}
	return c
}

// prepareDataDir hands a data directory written by root to postgres and checks that
// postgres can reach it, so the failure names the cause instead of a server log line.
func prepareDataDir(ctx context.Context, dataDir string) error {
	fi, err := os.Stat(dataDir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dataDir)
	}
	if err := chownTree(dataDir); err != nil {
		return err
	}
	links, err := os.ReadDir(filepath.Join(dataDir, "pg_tblspc"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, l := range links {
		target, err := filepath.EvalSymlinks(filepath.Join(dataDir, "pg_tblspc", l.Name()))
		if err != nil {
			return fmt.Errorf("tablespace %s: %w", l.Name(), err)
		}
		if err := chownTree(target); err != nil {
			return err
		}
		if err := reachable(ctx, target); err != nil {
			return err
		}
	}
	return reachable(ctx, dataDir)
}

// registerCleanup stops the server when the test ends and, if the test failed, shows
// the end of its log (registered after the temp dirs, so it runs before they go).
func (c *Cluster) registerCleanup(t testing.TB) {
	t.Cleanup(func() {
		if err := c.stop("immediate"); err != nil {
			t.Errorf("pgtest: cleanup: %v", err)
		}
		if t.Failed() {
			t.Logf("pgtest: PostgreSQL %d (port %d, data %s) log tail:\n%s", c.Major, c.Port, c.DataDir, tailFile(c.LogFile, logTailLines))
		}
	})
}

// start runs pg_ctl start on a free port, moving to another port when a different
// process took this one between freePort and the server's bind.
func (c *Cluster) start(ctx context.Context, extra map[string]string) error {
	const attempts = 5
	var lastErr error
	for range attempts {
		port, err := pickPort()
		if err != nil {
			return err
		}
		settings := baseSettings(port, c.SockDir)
		maps.Copy(settings, extra)
		if p, err := strconv.Atoi(settings["port"]); err != nil || p != port {
			return fmt.Errorf("setting port=%q: the harness chooses the port", settings["port"])
		}
		logStart := fileSize(c.LogFile)
		c.Port = port
		c.settings = settings
		out, err := runServerTool(ctx, filepath.Join(c.Bin, "pg_ctl"),
			"-D", c.DataDir, "-l", c.LogFile, "-w", "-t", strconv.Itoa(int(startTimeout/time.Second)),
			"-o", postgresOptions(settings), "start")
		if err == nil {
			c.mu.Lock()
			c.running = true
			c.mu.Unlock()
			return nil
		}
		lastErr = fmt.Errorf("%w\n%s", err, out)
		if !strings.Contains(strings.ToLower(readFrom(c.LogFile, logStart)), "address already in use") {
			// pg_ctl gives up waiting but leaves a slow server running: let Stop see it.
			c.mu.Lock()
			c.running = true
			c.mu.Unlock()
			return lastErr
		}
	}
	return fmt.Errorf("port still in use after %d attempts: %w", attempts, lastErr)
}

// postgresOptions renders settings as the -o argument of pg_ctl. pg_ctl hands that
// string to /bin/sh, so each "-c name=value" is shell-quoted: values such as an
// archive_command with spaces and %p survive intact, without touching the data
// directory's postgresql.conf.
func postgresOptions(settings map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("-c ")
		b.WriteString(shellQuote(k + "=" + settings[k]))
	}
	return b.String()
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// waitPromoted waits until the server has left recovery, failing fast if it died
// (e.g. recovery could not reach its target).
func (c *Cluster) waitPromoted(ctx context.Context) error {
	deadline := time.Now().Add(startTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		inRecovery, err := c.inRecovery(ctx)
		if err == nil && !inRecovery {
			return nil
		}
		if err != nil {
			lastErr = err
		} else {
			lastErr = errors.New("still in recovery")
		}
		if !c.postmasterAlive() {
			return fmt.Errorf("server exited before recovery ended (last: %v)", lastErr)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for promotion: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("not promoted after %s (last: %v)", startTimeout, lastErr)
}

func (c *Cluster) inRecovery(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := c.connect(ctx, "postgres")
	if err != nil {
		return false, err
	}
	defer conn.Close(context.Background())
	var r bool
	err = conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&r)
	return r, err
}

// postmasterAlive checks the pid in postmaster.pid; the file disappears when the
// postmaster exits cleanly, and the process is gone after a crash.
func (c *Cluster) postmasterAlive() bool {
	b, err := os.ReadFile(filepath.Join(c.DataDir, "postmaster.pid"))
	if err != nil {
		return false
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return false
	}
	return syscall.Kill(pid, 0) == nil
}

// Stop stops the server with pg_ctl stop -m mode (smart, fast or immediate) and waits
// for it to exit. Stopping a stopped cluster does nothing.
func (c *Cluster) Stop(t testing.TB, mode string) {
	t.Helper()
	if err := c.stop(mode); err != nil {
		t.Fatalf("pgtest: %v", err) // cleanup shows the log
	}
}

func (c *Cluster) stop(mode string) error {
	switch mode {
	case "smart", "fast", "immediate":
	default:
		return fmt.Errorf("stop PostgreSQL %d: mode %q is not smart, fast or immediate", c.Major, mode)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout+10*time.Second)
	defer cancel()
	out, err := runServerTool(ctx, filepath.Join(c.Bin, "pg_ctl"),
		"-D", c.DataDir, "-m", mode, "-w", "-t", strconv.Itoa(int(startTimeout/time.Second)), "stop")
	if err != nil && c.postmasterAlive() {
		return fmt.Errorf("stop PostgreSQL %d on port %d: %w\n%s", c.Major, c.Port, err, out)
	}
	c.running = false
	return nil
}

// ConnString is a libpq keyword/value connection string for database db over TCP.
func (c *Cluster) ConnString(db string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=%s sslmode=disable", c.Port, quoteConnValue(db))
}

// quoteConnValue quotes a libpq keyword/value value when it needs it.
func quoteConnValue(v string) string {
	if v != "" && !strings.ContainsAny(v, " '\\\t\n") {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

func (c *Cluster) connect(ctx context.Context, db string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(c.ConnString(db))
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL %d: %w", c.Major, err)
	}
	cfg.ConnectTimeout = 10 * time.Second
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL %d on port %d, database %s: %w", c.Major, c.Port, db, err)
	}
	return conn, nil
}

// Exec runs sql (any number of statements, simple protocol) in database db.
func (c *Cluster) Exec(t testing.TB, db, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	conn, err := c.connect(ctx, db)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.PgConn().Exec(ctx, sql).ReadAll(); err != nil {
		t.Fatalf("pgtest: PostgreSQL %d, database %s: exec %s: %v", c.Major, db, excerpt(sql), err)
	}
}

// QueryRow runs a query returning one row in database db and scans it into dest.
func (c *Cluster) QueryRow(t testing.TB, db, sql string, dest ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	conn, err := c.connect(ctx, db)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(ctx, sql).Scan(dest...); err != nil {
		t.Fatalf("pgtest: PostgreSQL %d, database %s: query %s: %v", c.Major, db, excerpt(sql), err)
	}
}

// Pgbench runs pgbench 15 (the one client build on the machine; it drives 13..17
// servers alike) against database db, e.g. Pgbench(t, "postgres", "-i", "-s", "10"),
// and returns its output. A failure fails the test with that output.
func (c *Cluster) Pgbench(t testing.TB, db string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	full := append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(c.Port), "-U", "postgres"}, args...)
	full = append(full, db)
	cmd := exec.CommandContext(ctx, filepath.Join(ClientBin, "pgbench"), full...)
	cmd.Env = serverEnv()
	cmd.Dir = os.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pgtest: pgbench %s against PostgreSQL %d: %v\n%s", strings.Join(args, " "), c.Major, err, out)
	}
	return out
}

func excerpt(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strconv.Quote(s)
}

func appendLines(path string, lines []string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("append to %s: %w", path, err)
	}
	_, err = f.WriteString("\n" + strings.Join(lines, "\n") + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("append to %s: %w", path, err)
	}
	return nil
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// readFrom returns a file's content from offset on (at most 1 MiB), "" on error.
func readFrom(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	n, _ := f.ReadAt(buf, offset)
	return string(buf[:n])
}

// Restart stops the server (fast) and starts it again with the same port and
// settings (pg_ctl restart reuses the command line in postmaster.opts), so
// clients configured with its address can reconnect.
func (c *Cluster) Restart(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*startTimeout)
	defer cancel()
	out, err := runServerTool(ctx, filepath.Join(c.Bin, "pg_ctl"),
		"-D", c.DataDir, "-l", c.LogFile, "-m", "fast", "-w", "-t", strconv.Itoa(int(startTimeout/time.Second)), "restart")
	if err != nil {
		t.Fatalf("pgtest: restart PostgreSQL %d on port %d: %v\n%s", c.Major, c.Port, err, out)
	}
	c.running = true
}

// Promote promotes a standby and waits until it accepts writes.
func (c *Cluster) Promote(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*startTimeout)
	defer cancel()
	out, err := runServerTool(ctx, filepath.Join(c.Bin, "pg_ctl"), "-D", c.DataDir, "-w", "-t", strconv.Itoa(int(startTimeout/time.Second)), "promote")
	if err != nil {
		t.Fatalf("pgtest: promote PostgreSQL %d on port %d: %v\n%s", c.Major, c.Port, err, out)
	}
	if err := c.waitPromoted(ctx); err != nil {
		t.Fatalf("pgtest: promote: %v", err)
	}
}

// WaitExit waits up to timeout for the server to exit by itself (a FATAL error
// in recovery, for instance) and reports whether it did.
func (c *Cluster) WaitExit(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if !c.postmasterAlive() {
			c.mu.Lock()
			c.running = false
			c.mu.Unlock()
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// Log returns the server log so far.
func (c *Cluster) Log() string { return readFrom(c.LogFile, 0) }

// Start starts a stopped cluster again with its settings, on a free port.
func (c *Cluster) Start(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*startTimeout)
	defer cancel()
	extra := maps.Clone(c.settings)
	delete(extra, "port")
	delete(extra, "unix_socket_directories")
	delete(extra, "listen_addresses")
	if err := c.start(ctx, extra); err != nil {
		t.Fatalf("pgtest: start PostgreSQL %d on %s again: %v", c.Major, c.DataDir, err)
	}
}

// WaitPromoted waits until the server has left recovery.
func (c *Cluster) WaitPromoted(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*startTimeout)
	defer cancel()
	if err := c.waitPromoted(ctx); err != nil {
		t.Fatalf("pgtest: PostgreSQL %d on %s: %v", c.Major, c.DataDir, err)
	}
}
