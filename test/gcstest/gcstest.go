// Package gcstest runs fake-gcs-server, an emulator of Google Cloud Storage's JSON API
// (Go module github.com/fsouza/fake-gcs-server), for tests: plain http on a free 127.0.0.1
// port, objects kept as files in a temp dir (so that a restarted server still has them).
// Like every emulator reached over plain http it takes no credentials.
//
// The binary comes from <repo root>/.cache/bin/fake-gcs-server, installed by
// scripts/install-fake-gcs-server.sh. A test that finds it missing is skipped, saying so.
package gcstest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/pgward/pgward/test/servertest"
)

// Server is a running fake-gcs-server.
type Server struct {
	*servertest.Proc
	// Endpoint is the JSON API's base URL, "http://127.0.0.1:port/storage/v1/".
	Endpoint string
}

// Start starts fake-gcs-server and stops it when the test ends; it skips the test when the
// server is not installed.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := servertest.CachePath("bin/fake-gcs-server")
	if err != nil {
		t.Fatalf("gcstest: %v", err)
	}
	servertest.Skip(t, "fake-gcs-server", bin, "scripts/install-fake-gcs-server.sh")
	dir := t.TempDir()
	s := &Server{}
	s.Proc = servertest.Start(t, servertest.Spec{
		Name: "fake-gcs-server",
		Path: bin,
		Args: func(port int) []string {
			addr := fmt.Sprintf("127.0.0.1:%d", port)
			return []string{"-scheme", "http", "-host", "127.0.0.1", "-port", fmt.Sprint(port),
				"-backend", "filesystem", "-filesystem-root", dir,
				"-public-host", addr, "-external-url", "http://" + addr, "-log-level", "warn"}
		},
		Dir: dir,
		Ready: func(addr string) error {
			c := &http.Client{Timeout: time.Second}
			resp, err := c.Get("http://" + addr + "/storage/v1/b")
			if err != nil {
				return err
			}
			resp.Body.Close()
			return nil
		},
	})
	s.Endpoint = "http://" + s.Addr + "/storage/v1/"
	return s
}

// Client returns an independent client, for checks that must not go through the code under
// test.
func (s *Server) Client(t testing.TB) *storage.Client {
	t.Helper()
	c, err := storage.NewClient(context.Background(), option.WithEndpoint(s.Endpoint), option.WithoutAuthentication(), storage.WithJSONReads())
	if err != nil {
		t.Fatalf("gcstest: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// CreateBucket creates a bucket.
func (s *Server) CreateBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Client(t).Bucket(name).Create(ctx, "pgward-test", nil); err != nil {
		t.Fatalf("gcstest: create bucket %s: %v", name, err)
	}
}

// ObjectNames lists the objects under prefix in bucket.
func (s *Server) ObjectNames(t testing.TB, bucket, prefix string) []string {
	t.Helper()
	var names []string
	it := s.Client(t).Bucket(bucket).Objects(t.Context(), &storage.Query{Prefix: prefix})
	for {
		o, err := it.Next()
		if err == iterator.Done {
			return names
		}
		if err != nil {
			t.Fatalf("gcstest: list gs://%s/%s: %v", bucket, prefix, err)
		}
		names = append(names, o.Name)
	}
}

// BucketName returns a name unique within this process (servertest.UniqueName).
func BucketName(t testing.TB) string { return servertest.UniqueName(t) }

// BrokenServiceAccount writes a service account key file whose private key is not a key,
// with its token endpoint on a closed port of this machine, and returns its path: the
// credentials Google's tools would call malformed, reached without leaving 127.0.0.1.
func BrokenServiceAccount(t testing.TB) string {
	t.Helper()
	port, err := servertest.FreePort()
	if err != nil {
		t.Fatalf("gcstest: %v", err)
	}
	key := map[string]string{
		"type":           "service_account",
		"project_id":     "pgward-test",
		"private_key_id": "0123456789abcdef",
		"private_key":    "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
		"client_email":   "pgward@pgward-test.iam.gserviceaccount.com",
		"client_id":      "1",
		"token_uri":      fmt.Sprintf("http://127.0.0.1:%d/token", port),
	}
	b, err := json.Marshal(key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "service-account.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// BucketNames lists the buckets.
func (s *Server) BucketNames(t testing.TB) []string {
	t.Helper()
	var names []string
	it := s.Client(t).Buckets(t.Context(), "pgward-test")
	for {
		b, err := it.Next()
		if err == iterator.Done {
			return names
		}
		if err != nil {
			t.Fatalf("gcstest: list buckets: %v", err)
		}
		names = append(names, b.Name)
	}
}
