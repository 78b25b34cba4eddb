package location

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/repo"
)

// TestOpenAvailable: a reader skips a repository that cannot be opened, saying so, and fails
// only when none opens; Open (for writers) needs every one; a malformed location is never
// skipped.
func TestOpenAvailable(t *testing.T) {
	dir := t.TempDir()
	good, missing := filepath.Join(dir, "good"), filepath.Join(dir, "missing")
	if _, err := Init(t.Context(), []string{good}, Options{}, repo.InitOptions{}); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	o := Options{Log: slog.New(slog.NewTextHandler(&logs, nil))}

	repos, err := OpenAvailable(t.Context(), []string{missing, good}, o)
	if err != nil || len(repos) != 1 || repos[0].String() != good {
		t.Fatalf("OpenAvailable(missing, good) = %v, %v; want the good one", repos, err)
	}
	if !strings.Contains(logs.String(), "repository cannot be opened, reading from the others") || !strings.Contains(logs.String(), missing) {
		t.Errorf("no warning naming %s: %s", missing, logs.String())
	}
	if _, err := Open(t.Context(), []string{missing, good}, o); err == nil {
		t.Error("Open(missing, good) succeeded: writers need every repository")
	}
	if _, err := OpenAvailable(t.Context(), []string{missing, missing + "2"}, o); err == nil || !strings.Contains(err.Error(), "no repository can be opened") {
		t.Errorf("OpenAvailable with none openable: %v", err)
	}
	if _, err := OpenAvailable(t.Context(), []string{"azure://AB/x", good}, o); err == nil || !strings.Contains(err.Error(), "container name") {
		t.Errorf("OpenAvailable with a malformed location: %v", err)
	}
	if _, err := OpenAvailable(t.Context(), []string{"ftp://host/x", good}, o); err == nil || !strings.Contains(err.Error(), "ftp:// repositories are not supported") {
		t.Errorf("OpenAvailable with an unsupported scheme: %v", err)
	}
}

// TestStorageNames: each remote kind is named as given, before anything is opened.
func TestStorageNames(t *testing.T) {
	for _, spec := range []string{"s3://bucket/p", "azure://container/p/q", "gs://bucket", "sftp://u@host:2222/srv/pgward"} {
		st, err := Storage(spec, Options{}, false)
		if err != nil {
			t.Fatalf("Storage(%q): %v", spec, err)
		}
		if st.String() != spec {
			t.Errorf("Storage(%q).String() = %q", spec, st.String())
		}
		if _, ok := st.(repo.Unwrapper); !ok {
			t.Errorf("Storage(%q) is not a wrapper", spec)
		}
	}
}

// TestOpenAvailableUnreachable: a remote repository whose server refuses connections is
// retried only until skipAfter, then skipped.
func TestOpenAvailableUnreachable(t *testing.T) {
	old := skipAfter
	skipAfter = time.Second
	t.Cleanup(func() { skipAfter = old })
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	if _, err := Init(t.Context(), []string{good}, Options{}, repo.InitOptions{}); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens there now
	dead := "gs://bucket/pg"
	o := Options{GCS: GCSOptions{Endpoint: fmt.Sprintf("http://127.0.0.1:%d/storage/v1/", port)}}
	began := time.Now()
	repos, err := OpenAvailable(t.Context(), []string{dead, good}, o)
	if err != nil || len(repos) != 1 || repos[0].String() != good {
		t.Fatalf("OpenAvailable(unreachable, good) = %v, %v; want the good one", repos, err)
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("skipping the unreachable repository took %s", took)
	}
}
