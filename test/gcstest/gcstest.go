// Package gcstest runs fake-gcs-server, an emulator of Google Cloud Storage's JSON API
// (Go module github.com/fsouza/fake-gcs-server), for tests: plain http on a free 127.0.0.1
// port, objects kept as files in a temp dir (so that a restarted server still has them).
// Like every emulator reached over plain http it takes no credentials.
//
// The binary comes from <repo root>/.cache/bin/fake-gcs-server, installed by
// scripts/install-fake-gcs-server.sh. A test that finds it missing is skipped, saying so.
package gcstest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

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

// api sends one request to the server's JSON API, for checks and setup that must not go
// through the code under test, and decodes a 200 answer into v (when not nil).
func (s *Server) api(t testing.TB, method, path string, body, v any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.Endpoint+path, rd)
	if err != nil {
		t.Fatalf("gcstest: %v", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("gcstest: %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		t.Fatalf("gcstest: %s %s: HTTP %d %s", method, path, resp.StatusCode, msg)
	}
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("gcstest: %s %s: %v", method, path, err)
		}
	}
}

// CreateBucket creates a bucket.
func (s *Server) CreateBucket(t testing.TB, name string) {
	t.Helper()
	s.api(t, http.MethodPost, "b?project=pgward-test", map[string]string{"name": name}, nil)
}

// names lists the "name" of every item of the listing at path, page by page.
func (s *Server) names(t testing.TB, path string, q url.Values) []string {
	t.Helper()
	var names []string
	for {
		var page struct {
			Items []struct {
				Name string `json:"name"`
			} `json:"items"`
			NextPageToken string `json:"nextPageToken"`
		}
		s.api(t, http.MethodGet, path+"?"+q.Encode(), nil, &page)
		for _, it := range page.Items {
			names = append(names, it.Name)
		}
		if page.NextPageToken == "" {
			return names
		}
		q.Set("pageToken", page.NextPageToken)
	}
}

// ObjectNames lists the objects under prefix in bucket.
func (s *Server) ObjectNames(t testing.TB, bucket, prefix string) []string {
	t.Helper()
	return s.names(t, "b/"+url.PathEscape(bucket)+"/o", url.Values{"prefix": {prefix}})
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
	return s.names(t, "b", url.Values{"project": {"pgward-test"}})
}
