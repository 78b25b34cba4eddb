package gcs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/test/gcstest"
)

// oddNames are names that a path or a query string would misread unless escaped.
var oddNames = []string{"a b", "a+b", "100%", "50%2F", "x#y", "what?", "a/b c/d+e", "ünï/cödé ☃", "semi;colon", "amp&eq=1"}

func TestEscapeName(t *testing.T) {
	for in, want := range map[string]string{
		"plain":      "plain",
		"a/b":        "a%2Fb",
		"a b+c":      "a%20b%2Bc",
		"100%#?":     "100%25%23%3F",
		"ü":          "%C3%BC",
		"semi;colon": "semi%3Bcolon",
	} {
		if got := escapeName(in); got != want {
			t.Errorf("escapeName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestOddNames: every operation reaches the object of exactly that name, as another client
// sees it.
func TestOddNames(t *testing.T) {
	srv := gcstest.Start(t)
	bucket := gcstest.BucketName(t)
	srv.CreateBucket(t, bucket)
	st, err := Open(t.Context(), Config{Bucket: bucket, Prefix: "p q+r", Endpoint: srv.Endpoint, ChunkSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := t.Context()
	for i, name := range oddNames {
		data := bytes.Repeat([]byte{byte(i)}, 10+i)
		if i == 0 {
			data = make([]byte, 300<<10) // resumable
		}
		if err := st.Put(ctx, name, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatalf("Put(%q): %v", name, err)
		}
		if err := st.Put(ctx, name, bytes.NewReader(data), int64(len(data))); !errors.Is(err, repo.ErrExists) {
			t.Fatalf("second Put(%q): %v, want ErrExists", name, err)
		}
		rc, err := st.GetRange(ctx, name, 1, 5)
		if err != nil {
			t.Fatalf("GetRange(%q): %v", name, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, data[1:6]) {
			t.Fatalf("GetRange(%q) = %v, %v", name, got, err)
		}
		if info, err := st.Stat(ctx, name); err != nil || info.Size != int64(len(data)) || info.Name != name {
			t.Fatalf("Stat(%q) = %+v, %v", name, info, err)
		}
	}
	var listed []string
	if err := st.List(ctx, "", func(o repo.ObjectInfo) error { listed = append(listed, o.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	want := slices.Sorted(slices.Values(oddNames))
	if !slices.Equal(listed, want) {
		t.Fatalf("List = %q, want %q", listed, want)
	}
	var keys []string
	for _, n := range want {
		keys = append(keys, "p q+r/"+n)
	}
	if got := srv.ObjectNames(t, bucket, ""); !slices.Equal(got, keys) {
		t.Fatalf("the server holds %q, want %q", got, keys)
	}
	for _, name := range oddNames {
		if err := st.Delete(ctx, name); err != nil {
			t.Fatalf("Delete(%q): %v", name, err)
		}
		if _, err := st.Stat(ctx, name); !errors.Is(err, repo.ErrNotFound) {
			t.Fatalf("Stat(%q) after Delete: %v", name, err)
		}
	}
}

// fakeAnswer starts a server that answers every request with status and body, and returns a
// Storage using it (no bucket check, no credentials).
func fakeAnswer(t *testing.T, status int, body string) *Storage {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return fakeStorage(t, srv.URL)
}

func fakeStorage(t *testing.T, base string) *Storage {
	t.Helper()
	st, err := newStorage(t.Context(), Config{Bucket: "bkt", Endpoint: base + "/storage/v1/", ChunkSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestErrorClassification: each answer becomes the repo error, or the transient or permanent
// error, it stands for, on one line naming the operation and the object.
func TestErrorClassification(t *testing.T) {
	gcsJSON := func(code int, reason, msg string) string {
		return fmt.Sprintf(`{"error":{"code":%d,"message":%q,"errors":[{"domain":"global","reason":%q,"message":%q}]}}`, code, msg, reason, msg)
	}
	cases := []struct {
		status    int
		body      string
		transient bool
		is        error
		text      string
	}{
		{500, gcsJSON(500, "backendError", "Backend Error"), true, nil, "HTTP 500 backendError: Backend Error"},
		{503, "<html>\n<p>unavailable</p>\n</html>", true, nil, "HTTP 503: <html> <p>unavailable</p> </html>"},
		{408, "", true, nil, "HTTP 408"},
		{429, gcsJSON(429, "rateLimitExceeded", "slow down"), true, nil, "rateLimitExceeded"},
		{401, gcsJSON(401, "required", "Login Required"), false, nil, "HTTP 401 required"},
		{403, gcsJSON(403, "forbidden", "no access"), false, nil, "HTTP 403 forbidden: no access"},
		{400, gcsJSON(400, "invalid", "bad"), false, nil, "HTTP 400"},
		{404, gcsJSON(404, "notFound", "No such object: bkt/k"), false, repo.ErrNotFound, "not found"},
		{404, gcsJSON(404, "notFound", "The specified bucket does not exist."), false, nil, "bucket bkt does not exist"},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.status, tc.text), func(t *testing.T) {
			st := fakeAnswer(t, tc.status, tc.body)
			_, err := st.Stat(t.Context(), "k")
			checkError(t, err, "stat gs://bkt/k: ", tc.is, tc.transient, tc.text)
			_, err = st.Get(t.Context(), "k")
			checkError(t, err, "get gs://bkt/k: ", tc.is, tc.transient, tc.text)
		})
	}
	t.Run("412", func(t *testing.T) {
		st := fakeAnswer(t, 412, gcsJSON(412, "conditionNotMet", "At least one of the pre-conditions you specified did not hold."))
		err := st.Put(t.Context(), "k", strings.NewReader("x"), 1)
		checkError(t, err, "put gs://bkt/k: ", repo.ErrExists, false, "already exists")
		err = st.Put(t.Context(), "k", bytes.NewReader(make([]byte, 300<<10)), 300<<10)
		checkError(t, err, "put gs://bkt/k: ", repo.ErrExists, false, "already exists")
	})
	t.Run("refused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		_, err = fakeStorage(t, "http://"+addr).Stat(t.Context(), "k")
		checkError(t, err, "stat gs://bkt/k: ", nil, true, "refused")
	})
}

func checkError(t *testing.T, err error, prefix string, is error, transient bool, text string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %q", text)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, prefix) || !strings.Contains(msg, text) || strings.Contains(msg, "\n") {
		t.Errorf("error %q: want one line starting %q and containing %q", msg, prefix, text)
	}
	if is != nil && !errors.Is(err, is) {
		t.Errorf("error %q is not %v", msg, is)
	}
	if is == nil && (errors.Is(err, repo.ErrNotFound) || errors.Is(err, repo.ErrExists)) {
		t.Errorf("error %q is a repo verdict, want a server error", msg)
	}
	var tr interface{ Transient() bool }
	got := errors.As(err, &tr) && tr.Transient()
	if is == nil && !errors.As(err, &tr) {
		t.Errorf("error %q has no Transient method", msg)
	}
	if got != transient {
		t.Errorf("error %q: transient %v, want %v", msg, got, transient)
	}
}

// resumableServer takes resumable uploads like GCS, keeping at first only part of a chunk
// (the client must send the rest again), and records the Content-Range of every chunk.
type resumableServer struct {
	mu     sync.Mutex
	starts []string // query of each session start
	ranges []string
	data   []byte
	done   bool
	short  bool // the next chunk is kept only in part
}

func (f *resumableServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/upload/storage/v1/b/bkt/o":
		f.starts = append(f.starts, r.URL.RawQuery+" "+r.Header.Get("X-Upload-Content-Length")+" "+string(body))
		w.Header().Set("Location", "http://"+r.Host+"/upload/session?upload_id=1")
	case r.Method == http.MethodPut && r.URL.Path == "/upload/session":
		cr := r.Header.Get("Content-Range")
		f.ranges = append(f.ranges, cr)
		var first, last, total int64
		if _, err := fmt.Sscanf(cr, "bytes %d-%d/%d", &first, &last, &total); err != nil || first != int64(len(f.data)) ||
			last-first+1 != int64(len(body)) {
			http.Error(w, "bad Content-Range "+cr, http.StatusBadRequest)
			return
		}
		if f.short {
			f.short = false
			body = body[:len(body)/3]
		}
		f.data = append(f.data, body...)
		if int64(len(f.data)) == total {
			f.done = true
			return
		}
		w.Header().Set("Range", "bytes=0-"+strconv.Itoa(len(f.data)-1))
		w.WriteHeader(statusResumeIncomplete)
	default:
		http.Error(w, "unexpected "+r.Method+" "+r.URL.String(), http.StatusBadRequest)
	}
}

// TestResumableChunks: an object of 2.5 chunks goes up in chunks of ChunkSize with their
// places in it, after a start with the precondition; what the server did not keep is sent
// again.
func TestResumableChunks(t *testing.T) {
	f := &resumableServer{short: true}
	srv := httptest.NewServer(f)
	defer srv.Close()
	st := fakeStorage(t, srv.URL)
	const chunk = 256 << 10
	data := make([]byte, 5*chunk/2)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := st.Put(t.Context(), "dir/big+1", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	wantStart := `ifGenerationMatch=0&uploadType=resumable 655360 {"name":"dir/big+1"}`
	if len(f.starts) != 1 || f.starts[0] != wantStart {
		t.Errorf("session starts %q, want [%q]", f.starts, wantStart)
	}
	kept := chunk / 3
	want := []string{
		fmt.Sprintf("bytes 0-%d/655360", chunk-1),
		fmt.Sprintf("bytes %d-%d/655360", kept, chunk-1),
		fmt.Sprintf("bytes %d-%d/655360", chunk, 2*chunk-1),
		fmt.Sprintf("bytes %d-655359/655360", 2*chunk),
	}
	if !slices.Equal(f.ranges, want) {
		t.Errorf("chunks %q, want %q", f.ranges, want)
	}
	if !f.done || !bytes.Equal(f.data, data) {
		t.Errorf("the server holds %d bytes (finalized %v), want the %d sent", len(f.data), f.done, len(data))
	}
}

// TestResumableSourceFails: a source that ends early, fails or has more bytes than
// announced stops the upload before its last chunk, which would finalize the object.
func TestResumableSourceFails(t *testing.T) {
	const size = 600 << 10
	for name, src := range map[string]io.Reader{
		"short": bytes.NewReader(make([]byte, size-1)),
		"long":  bytes.NewReader(make([]byte, size+1)),
	} {
		t.Run(name, func(t *testing.T) {
			f := &resumableServer{}
			srv := httptest.NewServer(f)
			defer srv.Close()
			err := fakeStorage(t, srv.URL).Put(t.Context(), "big", src, size)
			if err == nil || f.done || len(f.ranges) != 2 {
				t.Fatalf("Put: %v; the server got chunks %q (finalized %v), want an error after the 2 whole chunks", err, f.ranges, f.done)
			}
			checkPermanent(t, err)
		})
	}
}

// TestSessionURL: chunks (which carry the token) never go to a plain http session URL from
// an https endpoint, nor to a URL that is not absolute.
func TestSessionURL(t *testing.T) {
	s := &Storage{api: endpoints{plain: false}}
	for _, loc := range []string{"http://storage.googleapis.com/upload?upload_id=1", "/upload?upload_id=1", ""} {
		if _, err := s.checkSession(loc); err == nil {
			t.Errorf("session URL %q accepted for an https endpoint", loc)
		}
	}
	if _, err := s.checkSession("https://storage.googleapis.com/upload/storage/v1/b/x/o?upload_id=1"); err != nil {
		t.Error(err)
	}
}

// TestPlainHTTPNoToken: with usable credentials at hand, an http endpoint still gets no
// token: none is fetched and no request carries an Authorization header.
func TestPlainHTTPNoToken(t *testing.T) {
	ts := gcstest.StartTokenServer(t)
	t.Setenv(envCredentials, ts.KeyFile(t))
	var auth []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = append(auth, r.Header.Get("Authorization"))
		io.WriteString(w, `{"items":[]}`)
	}))
	defer srv.Close()
	st, err := Open(t.Context(), Config{Bucket: "bkt", Endpoint: srv.URL + "/storage/v1/"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.List(t.Context(), "", func(repo.ObjectInfo) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if ts.Tokens() != 0 || len(auth) != 2 || auth[0] != "" || auth[1] != "" {
		t.Fatalf("%d tokens fetched, Authorization headers %q; want none", ts.Tokens(), auth)
	}
}
