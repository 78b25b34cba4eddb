// Package s3test runs a real S3-compatible server for tests: versitygw (Apache-2.0) with its
// posix backend in a temp dir, on a free 127.0.0.1 port, with random credentials. It also
// has a fault-injecting proxy (FaultProxy) to put in front of it, so that retry logic is
// tested against real requests failing the ways S3 fails: 503 SlowDown, reset connections,
// stalls, a server that is down.
//
// The binary comes from <repo root>/.cache/bin/versitygw, installed by
// scripts/install-versitygw.sh; it is never built or downloaded by a test.
//
// Each Start is one server process, stopped in t.Cleanup. Starting takes well under a
// second, so a test package usually starts one server and gives each test its own bucket.
package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Region is the region every test server reports.
const Region = "us-east-1"

const (
	startTimeout = 15 * time.Second
	stopTimeout  = 5 * time.Second
)

// Server is a running versitygw.
type Server struct {
	Endpoint  string // "http://127.0.0.1:port"
	AccessKey string
	SecretKey string
	Region    string
	// Dir is the posix backend's root: one directory per bucket, objects as files below.
	Dir string
}

// Binary returns the path of the versitygw binary the tests use, or an error that says how
// to install it.
func Binary() (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(root, ".cache", "bin", "versitygw")
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("versitygw is not installed at %s: run scripts/install-versitygw.sh", bin)
	}
	return bin, nil
}

// repoRoot returns the directory holding go.mod, found by walking up from the working
// directory (a test runs in its package's directory).
func repoRoot() (string, error) {
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

// Start starts a versitygw and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	dir := t.TempDir()
	s := &Server{
		AccessKey: "pgw" + randomHex(8),
		SecretKey: randomHex(20),
		Region:    Region,
		Dir:       filepath.Join(dir, "data"),
	}
	if err := os.Mkdir(s.Dir, 0o700); err != nil {
		t.Fatalf("s3test: %v", err)
	}
	logPath := filepath.Join(dir, "versitygw.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	defer logFile.Close() // the child has its own copy

	// A free port may be taken between this check and the server's bind; then the server
	// exits at once and we try another.
	for try := 0; ; try++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("s3test: %v", err)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		// Credentials go through the environment, not argv, which every local user can read.
		cmd := exec.Command(bin, "--port", addr, "--region", s.Region, "--quiet", "--keep-alive", "posix", s.Dir)
		cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID="+s.AccessKey, "ROOT_SECRET_ACCESS_KEY="+s.SecretKey)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test binary
		if err := cmd.Start(); err != nil {
			t.Fatalf("s3test: start %s: %v", bin, err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		err = waitReady(addr, exited)
		if err == nil {
			s.Endpoint = "http://" + addr
			t.Cleanup(func() { stop(t, cmd, exited, logPath) })
			return s
		}
		_ = cmd.Process.Kill()
		<-exited
		if try >= 2 || !errors.Is(err, errExited) {
			t.Fatalf("s3test: versitygw did not start on %s: %v\n%s", addr, err, tail(logPath))
		}
	}
}

var errExited = errors.New("versitygw exited")

// waitReady waits until the server answers HTTP on addr (any status: an unsigned request
// is refused, which proves the server is up).
func waitReady(addr string, exited <-chan error) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("%w: %v", errExited, err)
		default:
		}
		resp, err := client.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer after %s: %v", startTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func stop(t testing.TB, cmd *exec.Cmd, exited <-chan error, logPath string) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(stopTimeout):
		_ = cmd.Process.Kill()
		<-exited
		t.Logf("s3test: versitygw did not stop within %s of SIGTERM and was killed", stopTimeout)
	}
	if t.Failed() {
		if log := tail(logPath); log != "" {
			t.Logf("s3test: versitygw log:\n%s", log)
		}
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails
	return hex.EncodeToString(b)
}

// tail returns the last lines of a log file.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	b = bytes.TrimSpace(b)
	lines := strings.Split(string(b), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}

// Minio returns an independent S3 client (minio-go, path-style) for checks that must not
// go through the code under test.
func (s *Server) Minio(t testing.TB) *minio.Client {
	t.Helper()
	c, err := minio.New(strings.TrimPrefix(s.Endpoint, "http://"), &minio.Options{
		Creds:        credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Secure:       false,
		Region:       s.Region,
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		t.Fatalf("s3test: minio client: %v", err)
	}
	return c
}

// CreateBucket creates a bucket (names need at least 3 characters: lowercase letters,
// digits, '-').
func (s *Server) CreateBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Minio(t).MakeBucket(ctx, name, minio.MakeBucketOptions{Region: s.Region}); err != nil {
		t.Fatalf("s3test: create bucket %s: %v", name, err)
	}
}

// BucketName returns a bucket name unique within this process, derived from the test name
// so that a leftover bucket says which test made it.
func BucketName(t testing.TB) string {
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
	return fmt.Sprintf("t-%s-%d", base, bucketSeq.Add(1))
}

var bucketSeq atomic.Int64
