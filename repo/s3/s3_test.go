package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/retry"
	"github.com/pgward/pgward/repo/storagetest"
	"github.com/pgward/pgward/test/s3test"
)

// testConfig returns the Config for bucket on srv (or on endpoint, when set: a proxy).
func testConfig(srv *s3test.Server, bucket string) Config {
	return Config{
		Bucket:    bucket,
		Region:    srv.Region,
		Endpoint:  srv.Endpoint,
		PathStyle: true,
		AccessKey: srv.AccessKey,
		SecretKey: srv.SecretKey,
	}
}

func mustOpen(t testing.TB, c Config) *Storage {
	t.Helper()
	st, err := Open(t.Context(), c)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return st
}

// newBucket creates a fresh bucket on srv and opens it.
func newBucket(t testing.TB, srv *s3test.Server) *Storage {
	t.Helper()
	bucket := s3test.BucketName(t)
	srv.CreateBucket(t, bucket)
	return mustOpen(t, testConfig(srv, bucket))
}

func payload(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, ^seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func getAll(t testing.TB, st repo.Storage, name string) []byte {
	t.Helper()
	rc, err := st.Get(t.Context(), name)
	if err != nil {
		t.Fatalf("Get(%q): %v", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%q): read: %v", name, err)
	}
	return b
}

func listAll(t testing.TB, st repo.Storage, prefix string) []string {
	t.Helper()
	var got []string
	if err := st.List(t.Context(), prefix, func(o repo.ObjectInfo) error {
		got = append(got, o.Name)
		return nil
	}); err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return got
}

// TestConformance runs the suite with a bucket per subtest, objects at the bucket's root.
func TestConformance(t *testing.T) {
	srv := s3test.Start(t)
	storagetest.Run(t, func(t *testing.T) repo.Storage {
		return newBucket(t, srv)
	})
}

// TestConformancePrefix runs the suite in one bucket shared by all subtests, each under its
// own prefix. Prefixes "p/1" and "p/10" share a string prefix, so a listing that does not
// stop at the prefix's slash shows another subtest's objects.
func TestConformancePrefix(t *testing.T) {
	srv := s3test.Start(t)
	bucket := s3test.BucketName(t)
	srv.CreateBucket(t, bucket)
	n := 0
	storagetest.Run(t, func(t *testing.T) repo.Storage {
		n++
		c := testConfig(srv, bucket)
		c.Prefix = fmt.Sprintf("/p/%d/", n)
		st := mustOpen(t, c)
		if want := fmt.Sprintf("s3://%s/p/%d", bucket, n); st.String() != want {
			t.Fatalf("String() = %q, want %q", st.String(), want)
		}
		return st
	})
}

// TestMultipart puts objects larger than PartSize, which go up as multipart uploads.
func TestMultipart(t *testing.T) {
	srv := s3test.Start(t)
	bucket := s3test.BucketName(t)
	srv.CreateBucket(t, bucket)
	c := testConfig(srv, bucket)
	c.PartSize = MinPartSize
	c.Concurrency = 2
	st := mustOpen(t, c)
	mc := srv.Minio(t)
	ctx := t.Context()

	t.Run("RoundTrip", func(t *testing.T) {
		data := payload(1, 3*MinPartSize+12345) // four parts, the last one short
		// A reader that is not a bytes.Reader, as the engine's pipeline hands over.
		if err := st.Put(ctx, "big/one", io.MultiReader(bytes.NewReader(data)), int64(len(data))); err != nil {
			t.Fatalf("Put: %v", err)
		}
		if got := getAll(t, st, "big/one"); !bytes.Equal(got, data) {
			t.Fatalf("Get returned %d bytes that differ from the %d put", len(got), len(data))
		}
		if info, err := st.Stat(ctx, "big/one"); err != nil || info.Size != int64(len(data)) {
			t.Fatalf("Stat = %+v, %v; want size %d", info, err, len(data))
		}
		// An independent client sees the same bytes.
		obj, err := mc.GetObject(ctx, bucket, "big/one", minio.GetObjectOptions{})
		if err != nil {
			t.Fatalf("minio GetObject: %v", err)
		}
		got, err := io.ReadAll(obj)
		obj.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("minio-go read %d bytes (err %v), differing from the %d put", len(got), err, len(data))
		}
		err = st.Put(ctx, "big/one", bytes.NewReader(data), int64(len(data)))
		if !errors.Is(err, repo.ErrExists) {
			t.Fatalf("second multipart Put = %v, want ErrExists", err)
		}
	})

	t.Run("ExactPartSize", func(t *testing.T) {
		// At the threshold: one PutObject. One byte more: two parts, the second of one byte.
		for _, n := range []int{MinPartSize, MinPartSize + 1} {
			data := payload(uint64(n), n)
			name := fmt.Sprintf("edge/%d", n)
			if err := st.Put(ctx, name, bytes.NewReader(data), int64(n)); err != nil {
				t.Fatalf("Put(%d bytes): %v", n, err)
			}
			if got := getAll(t, st, name); !bytes.Equal(got, data) {
				t.Fatalf("Get of %d bytes differs", n)
			}
		}
	})

	// The conditional completion, not the HEAD before the upload, keeps write-once: a writer
	// that creates the key while our parts are in flight wins, and our Put reports ErrExists.
	t.Run("RaceDuringUpload", func(t *testing.T) {
		theirs := []byte("written by someone else while the parts were uploading")
		ours := payload(2, 2*MinPartSize+1)
		r := &hookReader{r: bytes.NewReader(ours), hook: func() {
			if _, err := mc.PutObject(ctx, bucket, "race/x", bytes.NewReader(theirs), int64(len(theirs)), minio.PutObjectOptions{}); err != nil {
				t.Errorf("minio PutObject: %v", err)
			}
		}}
		err := st.Put(ctx, "race/x", r, int64(len(ours)))
		if !errors.Is(err, repo.ErrExists) {
			t.Fatalf("Put racing a writer = %v, want ErrExists", err)
		}
		if got := getAll(t, st, "race/x"); !bytes.Equal(got, theirs) {
			t.Fatalf("the other writer's object was replaced (%d bytes)", len(got))
		}
		checkNoUploads(t, mc, bucket)
	})

	t.Run("FailingReader", func(t *testing.T) {
		boom := errors.New("source failed")
		data := payload(3, 2*MinPartSize)
		r := io.MultiReader(bytes.NewReader(data), &errReader{boom})
		err := st.Put(ctx, "fail/x", r, int64(len(data))+MinPartSize)
		if !errors.Is(err, boom) {
			t.Fatalf("Put with a failing reader = %v, want the reader's error", err)
		}
		if retry.IsTransient(err) {
			t.Fatalf("a failure of the caller's reader is classified transient: %v", err)
		}
		if _, err := st.Stat(ctx, "fail/x"); !errors.Is(err, repo.ErrNotFound) {
			t.Fatalf("Stat after a failed Put = %v, want ErrNotFound", err)
		}
		checkNoUploads(t, mc, bucket)
	})

	t.Run("Canceled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		data := payload(4, 3*MinPartSize)
		r := &hookReader{r: bytes.NewReader(data), after: MinPartSize + 1, hook: cancel}
		if err := st.Put(cctx, "cancel/x", r, int64(len(data))); !errors.Is(err, context.Canceled) {
			t.Fatalf("Put canceled mid-way = %v, want context.Canceled", err)
		}
		if _, err := st.Stat(ctx, "cancel/x"); !errors.Is(err, repo.ErrNotFound) {
			t.Fatalf("Stat after a canceled Put = %v, want ErrNotFound", err)
		}
		checkNoUploads(t, mc, bucket)
	})

	t.Run("TooManyParts", func(t *testing.T) {
		err := st.Put(ctx, "huge", strings.NewReader(""), MinPartSize*maxParts+1)
		if err == nil || !strings.Contains(err.Error(), "raise the part size") {
			t.Fatalf("Put needing more than %d parts = %v", maxParts, err)
		}
	})
}

// checkNoUploads fails if a multipart upload was left behind.
func checkNoUploads(t *testing.T, mc *minio.Client, bucket string) {
	t.Helper()
	for u := range mc.ListIncompleteUploads(t.Context(), bucket, "", true) {
		if u.Err != nil {
			t.Fatalf("list multipart uploads: %v", u.Err)
		}
		t.Fatalf("multipart upload of %q (id %s) left behind", u.Key, u.UploadID)
	}
}

// hookReader calls hook once, when the bytes read so far pass after.
type hookReader struct {
	r     io.Reader
	after int
	n     int
	hook  func()
	once  sync.Once
}

func (h *hookReader) Read(p []byte) (int, error) {
	if h.n >= h.after {
		h.once.Do(h.hook)
	}
	n, err := h.r.Read(p)
	h.n += n
	return n, err
}

type errReader struct{ err error }

func (e *errReader) Read([]byte) (int, error) { return 0, e.err }

// TestNames checks names that need escaping on the way to the server and back.
func TestNames(t *testing.T) {
	srv := s3test.Start(t)
	st := newBucket(t, srv)
	names := []string{"a b/c d", "plus+sign", "percent%41", "q?uery", "hash#x", "amp&eq=", "ünïcode/ok", "lt<gt>", "quote\"'", "semi;colon"}
	for i, n := range names {
		data := payload(uint64(i), i+1)
		if err := st.Put(t.Context(), n, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatalf("Put(%q): %v", n, err)
		}
		if got := getAll(t, st, n); !bytes.Equal(got, data) {
			t.Fatalf("Get(%q) differs", n)
		}
	}
	want := slices.Sorted(slices.Values(names))
	if got := listAll(t, st, ""); !slices.Equal(got, want) {
		t.Fatalf("List = %q, want %q", got, want)
	}
	// Control characters cannot be listed back through XML: refused up front.
	for _, n := range []string{"tab\tx", "cr\rx", "ctl\x01x", "del\x7fx"} {
		if err := st.Put(t.Context(), n, strings.NewReader("x"), 1); !errors.Is(err, repo.ErrInvalidName) {
			t.Errorf("Put(%q) = %v, want ErrInvalidName", n, err)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	srv := s3test.Start(t)
	ctx := t.Context()

	t.Run("MissingBucket", func(t *testing.T) {
		_, err := Open(ctx, testConfig(srv, "no-such-bucket"))
		want := "bucket no-such-bucket does not exist (create it, or run pgward init which creates it) (HTTP 404 NoSuchBucket)"
		if err == nil || err.Error() != want {
			t.Fatalf("Open of a missing bucket = %v, want %q", err, want)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("error %v does not wrap fs.ErrNotExist", err)
		}
	})

	t.Run("WrongSecret", func(t *testing.T) {
		bucket := s3test.BucketName(t)
		srv.CreateBucket(t, bucket)
		c := testConfig(srv, bucket)
		c.SecretKey = "wrong-secret-" + c.SecretKey[:8]
		_, err := Open(ctx, c)
		want := "access denied to bucket " + bucket + ": check the credentials (AWS_ACCESS_KEY_ID/AWS_PROFILE) and the bucket policy"
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Fatalf("Open with a wrong secret = %v, want %q", err, want)
		}
		if !errors.Is(err, fs.ErrPermission) {
			t.Fatalf("error %v does not wrap fs.ErrPermission", err)
		}
		if strings.Contains(err.Error(), c.SecretKey) || strings.Contains(err.Error(), srv.SecretKey) {
			t.Fatalf("error shows the secret: %v", err)
		}
	})

	// versitygw answers an unknown access key with 404 (XAdminUserNotFound), which a HEAD
	// alone cannot tell from a missing bucket.
	t.Run("UnknownAccessKey", func(t *testing.T) {
		bucket := s3test.BucketName(t)
		srv.CreateBucket(t, bucket)
		c := testConfig(srv, bucket)
		c.AccessKey = "AKIAUNKNOWN"
		for _, open := range []func(context.Context, Config) (*Storage, error){Open, Create} {
			_, err := open(ctx, c)
			if !errors.Is(err, fs.ErrPermission) || !strings.HasPrefix(err.Error(), "access denied to bucket "+bucket) {
				t.Fatalf("Open/Create with an unknown access key = %v, want access denied", err)
			}
		}
	})

	t.Run("Create", func(t *testing.T) {
		bucket := s3test.BucketName(t)
		st, err := Create(ctx, testConfig(srv, bucket))
		if err != nil {
			t.Fatalf("Create of a missing bucket: %v", err)
		}
		if err := st.Put(ctx, "x", strings.NewReader("x"), 1); err != nil {
			t.Fatalf("Put after Create: %v", err)
		}
		if _, err := Create(ctx, testConfig(srv, bucket)); err != nil {
			t.Fatalf("Create of an existing bucket: %v", err)
		}
		if _, err := Open(ctx, testConfig(srv, bucket)); err != nil {
			t.Fatalf("Open after Create: %v", err)
		}
	})

	t.Run("BadConfig", func(t *testing.T) {
		good := testConfig(srv, "some-bucket")
		for _, tc := range []struct {
			name string
			edit func(*Config)
			want string
		}{
			{"OnlyAccessKey", func(c *Config) { c.SecretKey = "" }, "set both the access key and the secret key"},
			{"BadSSE", func(c *Config) { c.SSE = "rot13" }, "server-side encryption"},
			{"KMSKeyWithoutKMS", func(c *Config) { c.SSEKMSKeyID = "k" }, "KMS key id"},
			{"SmallParts", func(c *Config) { c.PartSize = 1 << 20 }, "part size"},
			{"ShortBucket", func(c *Config) { c.Bucket = "ab" }, "3 to 63"},
			{"BadPrefix", func(c *Config) { c.Prefix = "a/../b" }, "prefix"},
			{"BadEndpoint", func(c *Config) { c.Endpoint = "ftp://user:" + srv.SecretKey + "@host" }, "endpoint"},
		} {
			c := good
			tc.edit(&c)
			_, err := Open(ctx, c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: Open = %v, want an error containing %q", tc.name, err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), srv.SecretKey) {
				t.Errorf("%s: error shows the secret: %v", tc.name, err)
			}
		}
	})
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in, bucket, prefix string
		ok                 bool
	}{
		{"s3://bucket", "bucket", "", true},
		{"s3://bucket/", "bucket", "", true},
		{"s3://bucket/some/prefix", "bucket", "some/prefix", true},
		{"s3://bucket/some/prefix/", "bucket", "some/prefix", true},
		{"s3://my.bucket-1/p", "my.bucket-1", "p", true},
		{"s3://", "", "", false},
		{"s3://ab/p", "", "", false},
		{"http://bucket/p", "", "", false},
		{"s3://bucket/a//b", "", "", false},
		{"s3://bucket/a/../b", "", "", false},
		{"s3://bucket/p?x=1", "", "", false},
		{"s3://user:pw@bucket/p", "", "", false},
	} {
		b, p, err := ParseURL(tc.in)
		if (err == nil) != tc.ok || b != tc.bucket || p != tc.prefix {
			t.Errorf("ParseURL(%q) = %q, %q, %v; want %q, %q, ok=%v", tc.in, b, p, err, tc.bucket, tc.prefix, tc.ok)
		}
	}
}

// TestEnvironment checks that what the AWS SDK reads from the environment is honoured:
// credentials, region and the endpoint variables AWS_ENDPOINT_URL_S3 and AWS_ENDPOINT_URL.
func TestEnvironment(t *testing.T) {
	srv := s3test.Start(t)
	bucket := s3test.BucketName(t)
	srv.CreateBucket(t, bucket)
	isolateAWSEnv(t)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_REGION", srv.Region)
	for _, env := range []string{"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"} {
		t.Run(env, func(t *testing.T) {
			t.Setenv(env, srv.Endpoint)
			st := mustOpen(t, Config{Bucket: bucket, PathStyle: true})
			name := "env/" + env
			if err := st.Put(t.Context(), name, strings.NewReader(env), int64(len(env))); err != nil {
				t.Fatalf("Put: %v", err)
			}
			if got := getAll(t, st, name); string(got) != env {
				t.Fatalf("Get = %q", got)
			}
		})
	}
	t.Run("NoCredentials", func(t *testing.T) {
		t.Setenv("AWS_ACCESS_KEY_ID", "")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "")
		_, err := Open(t.Context(), Config{Bucket: bucket, Endpoint: srv.Endpoint, PathStyle: true})
		if err == nil || !strings.HasPrefix(err.Error(), "no AWS credentials found") {
			t.Fatalf("Open without credentials = %v", err)
		}
		if retry.IsTransient(err) {
			t.Fatalf("missing credentials are classified transient, so they would be retried: %v", err)
		}
	})
}

// isolateAWSEnv keeps the machine's AWS configuration out of a test.
func isolateAWSEnv(t *testing.T) {
	dir := t.TempDir()
	for _, k := range []string{
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
		"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
		"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI",
	} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", dir+"/config")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", dir+"/credentials")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// TestIgnoredConditionalWrites: Create refuses a server that accepts every write, since it
// would replace objects. A stand-in server is enough here (and no real one behaves so).
func TestIgnoredConditionalWrites(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	_, err := Create(t.Context(), Config{Bucket: "bucket", Endpoint: srv.URL, PathStyle: true, Region: "us-east-1", AccessKey: "a", SecretKey: "s"})
	if err == nil || !strings.Contains(err.Error(), "it ignores conditional writes") {
		t.Fatalf("Create on a server that ignores If-None-Match = %v", err)
	}
}

// TestCorruptionDetected: Get verifies the checksum the server stored with the object, so a
// bit flipped on the server's disk fails the read.
func TestCorruptionDetected(t *testing.T) {
	srv := s3test.Start(t)
	bucket := s3test.BucketName(t)
	srv.CreateBucket(t, bucket)
	st := mustOpen(t, testConfig(srv, bucket))
	data := payload(9, 100_000)
	if err := st.Put(t.Context(), "c/x", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	// versitygw's posix backend keeps the object as a plain file.
	f, err := os.OpenFile(filepath.Join(srv.Dir, bucket, "c", "x"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{^data[500]}, 500); err != nil {
		t.Fatal(err)
	}
	f.Close()
	rc, err := st.Get(t.Context(), "c/x")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadAll(rc); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("reading a corrupted object = %v, want a checksum error", err)
	}
}

// TestModTime: Stat and List report the Last-Modified time of an object, to the second,
// bracketing the Put.
func TestModTime(t *testing.T) {
	srv := s3test.Start(t)
	st := newBucket(t, srv)
	ctx := t.Context()
	before := time.Now().Truncate(time.Second)
	if err := st.Put(ctx, "dir/obj", strings.NewReader("x"), 1); err != nil {
		t.Fatalf("Put: %v", err)
	}
	after := time.Now()
	info, err := st.Stat(ctx, "dir/obj")
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	// The server shares this machine's clock; Last-Modified is truncated to the second.
	if mt := info.ModTime; mt.Before(before) || mt.After(after) || !mt.Equal(mt.Truncate(time.Second)) {
		t.Fatalf("ModTime = %s, want whole seconds within [%s, %s]", mt, before, after)
	}
	var listed []repo.ObjectInfo
	if err := st.List(ctx, "dir/", func(o repo.ObjectInfo) error { listed = append(listed, o); return nil }); err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(listed) != 1 || !listed[0].ModTime.Equal(info.ModTime) {
		t.Fatalf("List = %+v, want the ModTime Stat reported, %s", listed, info.ModTime)
	}
}

// A process killed during a multipart Put leaves the upload open: Leftovers reports it under
// the object's name, and RemoveLeftover aborts it.
func TestLeftovers(t *testing.T) {
	srv := s3test.Start(t)
	bucket := s3test.BucketName(t)
	srv.CreateBucket(t, bucket)
	c := testConfig(srv, bucket)
	c.Prefix = "repo"
	st := mustOpen(t, c)
	mc := srv.Minio(t)
	ctx := t.Context()
	core := minio.Core{Client: mc}
	if _, err := core.NewMultipartUpload(ctx, bucket, "repo/chunks/ab/abcd", minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := core.NewMultipartUpload(ctx, bucket, "other/chunks/ab/abcd", minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	collect := func(prefix string) []repo.Leftover {
		var ls []repo.Leftover
		if err := st.Leftovers(ctx, prefix, func(l repo.Leftover) error { ls = append(ls, l); return nil }); err != nil {
			t.Fatal(err)
		}
		return ls
	}
	ls := collect("chunks/")
	if len(ls) != 1 || ls[0].Name != "chunks/ab/abcd" || ls[0].Started.IsZero() {
		t.Fatalf("Leftovers = %+v; want the upload of chunks/ab/abcd only", ls)
	}
	if got := collect("packs/"); len(got) != 0 {
		t.Fatalf("Leftovers(packs/) = %+v", got)
	}
	if err := st.RemoveLeftover(ctx, ls[0]); err != nil {
		t.Fatal(err)
	}
	if err := st.RemoveLeftover(ctx, ls[0]); err != nil {
		t.Fatalf("removing it again: %v", err)
	}
	if got := collect(""); len(got) != 0 {
		t.Fatalf("after RemoveLeftover: %+v", got)
	}
}
