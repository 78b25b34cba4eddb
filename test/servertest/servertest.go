// Package servertest runs a server process for tests — an emulator or daemon that a storage
// backend is tested against — on a free 127.0.0.1 port, and can kill it and start it again
// on the same port with the same data, for fault tests.
//
// Invariants:
//   - A server never outlives the test binary (Pdeathsig) nor its test (t.Cleanup), and a
//     kill takes its whole process group (sshd forks a process per connection).
//   - Binaries are installed by scripts/install-*.sh (make test-deps) under <repo>/.cache;
//     a test never downloads or builds one. Missing, the test is skipped with a message
//     naming the script, so that `go test ./...` on a bare checkout still runs the rest.
package servertest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const (
	startTimeout = 30 * time.Second
	stopTimeout  = 5 * time.Second
)

// Spec says how to run a server.
type Spec struct {
	// Name names the server in messages ("azurite").
	Name string
	// Path is the program; Args returns its arguments for a port.
	Path string
	Args func(port int) []string
	// Env is added to the test's environment.
	Env []string
	// Dir is the working directory ("" for the test's).
	Dir string
	// Ready reports whether the server answers on addr; nil means it accepts a TCP
	// connection.
	Ready func(addr string) error
}

// Proc is a running server.
type Proc struct {
	spec    Spec
	t       testing.TB
	Port    int
	Addr    string // "127.0.0.1:port"
	logPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan error
}

// Skip skips t, saying loudly which server is missing and how to install it, when path is
// not an executable file (or a regular file, for a script run by an interpreter).
func Skip(t testing.TB, name, path, script string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err == nil && fi.Mode().IsRegular() {
		return
	}
	t.Logf("servertest: SKIPPING: %s is not installed at %s; run %s (or make test-deps) to run this test", name, path, script)
	t.Skipf("%s not installed (run %s)", name, script)
}

// CachePath returns <repo root>/.cache/rel.
func CachePath(rel string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, ".cache", rel), nil
}

// RepoRoot returns the directory holding go.mod, found by walking up from the working
// directory (a test runs in its package's directory).
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

// Start starts the server on a free port and stops it when the test ends.
func Start(t testing.TB, spec Spec) *Proc {
	t.Helper()
	p := &Proc{spec: spec, t: t, logPath: filepath.Join(t.TempDir(), spec.Name+".log")}
	// A free port may be taken between this check and the server's bind; then the server
	// exits at once and we try another.
	for try := 0; ; try++ {
		port, err := FreePort()
		if err != nil {
			t.Fatalf("servertest: %v", err)
		}
		p.Port, p.Addr = port, fmt.Sprintf("127.0.0.1:%d", port)
		err = p.start()
		if err == nil {
			t.Cleanup(func() { p.stop(syscall.SIGTERM) })
			return p
		}
		if try >= 2 || !errors.Is(err, errExited) {
			t.Fatalf("servertest: %s did not start on %s: %v\n%s", spec.Name, p.Addr, err, p.Log())
		}
	}
}

var errExited = errors.New("server exited")

func (p *Proc) start() error {
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close() // the child has its own copy
	cmd := exec.Command(p.spec.Path, p.spec.Args(p.Port)...)
	cmd.Env = append(os.Environ(), p.spec.Env...)
	cmd.Dir = p.spec.Dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, so that a kill reaches the children; never outlive the test binary.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.spec.Path, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if err := p.waitReady(exited); err != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		return err
	}
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()
	return nil
}

func (p *Proc) waitReady(exited <-chan error) error {
	ready := p.spec.Ready
	if ready == nil {
		ready = func(addr string) error {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
			}
			return err
		}
	}
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("%w: %v", errExited, err)
		default:
		}
		err := ready(p.Addr)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer after %s: %v", startTimeout, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// stop ends the server (its whole process group) with sig, then SIGKILL after a grace
// period; it does nothing when the server is not running.
func (p *Proc) stop(sig syscall.Signal) {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	// Children that left the group (sshd's per-connection processes call setsid) are
	// found by parentage, before the parent's exit orphans them.
	kids := descendants(cmd.Process.Pid)
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	for _, pid := range kids {
		_ = syscall.Kill(pid, sig)
	}
	select {
	case <-exited:
	case <-time.After(stopTimeout):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	for _, pid := range kids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if p.t.Failed() {
		p.t.Logf("servertest: %s log:\n%s", p.spec.Name, p.Log())
	}
}

// Kill kills the server and every process it started at once (SIGKILL), as a crash would.
func (p *Proc) Kill() { p.stop(syscall.SIGKILL) }

// Terminate stops the server with SIGTERM, letting it save what it keeps in memory (Azurite
// saves its metadata every 5 s, so a SIGKILL would lose objects it had acknowledged, which
// no real service does).
func (p *Proc) Terminate() { p.stop(syscall.SIGTERM) }

// Restart starts the server again, on the same port with the same arguments and data.
func (p *Proc) Restart(t testing.TB) {
	t.Helper()
	p.stop(syscall.SIGTERM)
	deadline := time.Now().Add(startTimeout)
	for {
		// The port may linger for a moment after a kill.
		err := p.start()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("servertest: restart %s on %s: %v\n%s", p.spec.Name, p.Addr, err, p.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// descendants returns the pids of every process below pid, read from /proc.
func descendants(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// The command may hold spaces and parentheses: fields start after the last ')'.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(f[1]); err == nil {
			children[ppid] = append(children[ppid], p)
		}
	}
	var out []int
	var walk func(int)
	walk = func(p int) {
		for _, c := range children[p] {
			out = append(out, c)
			walk(c)
		}
	}
	walk(pid)
	return out
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Log returns the last lines of the server's output.
func (p *Proc) Log() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(string(bytes.TrimSpace(b)), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}

// UniqueName returns a name unique within this process for a bucket or container, derived
// from the test name so that a leftover says which test made it: "t-" and up to 40
// lowercase letters, digits and single hyphens, then "-" and a sequence number (at most 63
// characters, as S3, Azure and GCS allow).
func UniqueName(t testing.TB) string {
	var b strings.Builder
	for _, c := range strings.ToLower(t.Name()) {
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
			b.WriteRune(c)
		default:
			if s := b.String(); s != "" && s[len(s)-1] != '-' {
				b.WriteByte('-')
			}
		}
	}
	base := b.String()
	if len(base) > 40 {
		base = base[len(base)-40:] // the subtest's name is at the end
	}
	base = strings.Trim(base, "-")
	return fmt.Sprintf("t-%s-%d", base, nameSeq.Add(1))
}

var nameSeq atomic.Int64
