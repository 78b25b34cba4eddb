package gcs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/storagetest"
	"github.com/pgward/pgward/test/gcstest"
)

// TestConformance runs the suite once, in one bucket that Create makes for the first
// subtest, each subtest under its own prefix: "p/1" and "p/10" share a string prefix, so a
// listing that does not stop at the prefix's slash shows another subtest's objects. The
// chunk size is the smallest, so objects above 256 KiB are resumable uploads. (Objects at a
// bucket's root are the other tests' business.)
func TestConformance(t *testing.T) {
	srv := gcstest.Start(t)
	t.Setenv(envProject, "pgward-test")
	bucket := gcstest.BucketName(t)
	n := 0
	storagetest.Run(t, func(t *testing.T) repo.Storage {
		n++
		st, err := Create(t.Context(), Config{Bucket: bucket, Prefix: fmt.Sprintf("/p/%d/", n), Endpoint: srv.Endpoint, ChunkSize: 256 << 10})
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		t.Cleanup(func() { st.Close() })
		if want := fmt.Sprintf("gs://%s/p/%d", bucket, n); st.String() != want {
			t.Fatalf("String() = %q, want %q", st.String(), want)
		}
		return st
	})
}

// TestOpenErrors: a missing bucket and a credentials file with a broken key each give one
// sentence, classified as permanent.
func TestOpenErrors(t *testing.T) {
	srv := gcstest.Start(t)
	_, err := Open(t.Context(), Config{Bucket: "no-such-bucket", Endpoint: srv.Endpoint})
	if err == nil || !errors.Is(err, fs.ErrNotExist) ||
		!strings.Contains(err.Error(), "bucket no-such-bucket does not exist (create it, or run pgward init which creates it)") {
		t.Errorf("Open of a missing bucket: %v", err)
	}
	checkPermanent(t, err)

	// A service account key that cannot sign: refused at Open, before any request (the
	// token endpoint named in the file is a closed port on this machine).
	t.Setenv(envCredentials, gcstest.BrokenServiceAccount(t))
	_, err = Open(t.Context(), Config{Bucket: "any-bucket", Endpoint: "https://" + srv.Addr + "/storage/v1/"})
	if err == nil || !strings.Contains(err.Error(), "no usable Google credentials: set GOOGLE_APPLICATION_CREDENTIALS") {
		t.Errorf("Open with a broken key: %v", err)
	}
	checkPermanent(t, err)
}

func checkPermanent(t *testing.T, err error) {
	t.Helper()
	var tr interface{ Transient() bool }
	if errors.As(err, &tr) && tr.Transient() {
		t.Errorf("error is transient, want permanent: %v", err)
	}
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct{ in, bucket, prefix, err string }{
		{"gs://backups/pg/main", "backups", "pg/main", ""},
		{"gs://my.backups_1", "my.backups_1", "", ""},
		{"gs://Backups/x", "", "", "lowercase"},
		{"gs://ab/x", "", "", "3 to 63"},
		{"gs://-ab/x", "", "", "start and end"},
		{"gs://abc/x#y", "", "", "fragment"},
		{"gs://abc/a//b", "", "", "invalid object name"},
	} {
		b, p, err := ParseURL(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseURL(%q) error %v, want one containing %q", tc.in, err, tc.err)
		case tc.err == "" && (err != nil || b != tc.bucket || p != tc.prefix):
			t.Errorf("ParseURL(%q) = %q, %q, %v; want %q, %q", tc.in, b, p, err, tc.bucket, tc.prefix)
		}
	}
}

// TestFailingLargePut: a reader failing in the middle of a resumable upload (after whole
// chunks went up) leaves nothing.
func TestFailingLargePut(t *testing.T) {
	srv := gcstest.Start(t)
	bucket := gcstest.BucketName(t)
	srv.CreateBucket(t, bucket)
	st, err := Open(t.Context(), Config{Bucket: bucket, Endpoint: srv.Endpoint, ChunkSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r := io.MultiReader(bytes.NewReader(make([]byte, 600<<10)), iotest.ErrReader(errors.New("source failed")))
	if err := st.Put(t.Context(), "big", r, 2<<20); err == nil {
		t.Fatal("Put with a reader failing after 600 KiB of 2 MiB succeeded")
	}
	if names := srv.ObjectNames(t, bucket, ""); len(names) != 0 {
		t.Fatalf("objects after a failed Put: %v", names)
	}
}

// TestWrongKey: a service account key file whose key is not the one Google holds for the
// account is refused by the token endpoint ("invalid_grant"), and Open says so in one
// sentence, permanent, before any storage request. The token endpoint (gcstest.TokenServer,
// on 127.0.0.1) checks the signed assertion against the account's registered public key, as
// Google's does.
func TestWrongKey(t *testing.T) {
	ts := gcstest.StartTokenServer(t)
	// Storage requests would go here, a closed port: the test must not get that far.
	endpoint := "https://127.0.0.1:1/storage/v1/"

	t.Setenv(envCredentials, ts.WrongKeyFile(t))
	_, err := Open(t.Context(), Config{Bucket: "any-bucket", Endpoint: endpoint})
	if err == nil || !strings.Contains(err.Error(), "no usable Google credentials: set GOOGLE_APPLICATION_CREDENTIALS") ||
		!strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("Open with a wrong key: %v", err)
	}
	checkPermanent(t, err)
	if strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), "PRIVATE KEY") {
		t.Fatalf("the error is not one line, or shows the key: %v", err)
	}

	// The registered key gets its token; Open then goes on to the bucket.
	t.Setenv(envCredentials, ts.KeyFile(t))
	_, err = Open(t.Context(), Config{Bucket: "any-bucket", Endpoint: endpoint})
	if ts.Tokens() != 1 || err == nil || strings.Contains(err.Error(), "credentials") {
		t.Fatalf("Open with the registered key: %d tokens, %v; want a token, then a failure to reach the bucket", ts.Tokens(), err)
	}
}
