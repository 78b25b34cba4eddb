// Package gcs keeps repository objects in a Google Cloud Storage bucket (or an emulator of
// its JSON API, such as fake-gcs-server). Object name n is the object Prefix+"/"+n, or n
// when there is no prefix.
//
// How the repo.Storage promises map onto GCS:
//   - Write once: every write carries the precondition ifGenerationMatch=0 ("no live object
//     of this name"), so GCS refuses to replace an existing object (412, reported as
//     repo.ErrExists) atomically, also against a racing writer.
//   - Atomic visibility and durability: an object exists only once its upload is finalized,
//     and then it is durable; a failed or canceled upload leaves nothing. There is no
//     directory to sync, so PutDeferred is Put and SyncDeferred does nothing.
//   - Bounded memory: an object of at most ChunkSize bytes is streamed in one request without
//     a buffer; a larger one is a resumable upload of ChunkSize chunks, one buffer per Put.
//   - ModTime is the object's creation time, the same in the object's metadata and in
//     listings.
//   - Listings come in byte order of names; List checks it, since callers and the retry
//     wrapper's resume rely on it. Names with control characters are refused (GCS does not
//     allow carriage returns or line feeds in names, and advises against the rest).
//
// Errors: a missing object is repo.ErrNotFound, a taken name repo.ErrExists. Other answers
// keep the SDK's *googleapi.Error in their chain and say through Transient() whether
// repeating may help (5xx, 408, 429) or not (401, 403, a missing bucket, other 4xx). The
// SDK's own retries are off: repo/retry is the one retry policy.
//
// Credentials are Google's application default credentials, never options:
// GOOGLE_APPLICATION_CREDENTIALS (a service account key, workload identity federation, ...),
// the gcloud CLI's application-default login, or the metadata server on Google Cloud. An
// endpoint with plain http (an emulator) gets no credentials at all, so that no Google token
// ever travels unencrypted.
package gcs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"cloud.google.com/go/auth"
	"cloud.google.com/go/auth/credentials"
	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/internal/objname"
)

// DefaultChunkSize is the single-request threshold and the chunk of resumable uploads when
// Config.ChunkSize is 0.
const DefaultChunkSize = 16 << 20

// Timeouts of one HTTP request. The retry wrapper decides what happens after one fires.
const (
	dialTimeout   = 10 * time.Second
	headerTimeout = 60 * time.Second
)

// Environment variables read, as Google's tools name them.
const (
	envCredentials = "GOOGLE_APPLICATION_CREDENTIALS"
	envProject     = "GOOGLE_CLOUD_PROJECT"
)

// Config says where the repository lives.
type Config struct {
	Bucket string
	// Prefix is the object name prefix ("some/prefix"); leading and trailing slashes are
	// ignored and it must otherwise be a valid object name.
	Prefix string
	// Endpoint is the JSON API's base URL ("https://storage.googleapis.com/storage/v1/" by
	// default; "http://127.0.0.1:4443/storage/v1/" for an emulator).
	Endpoint string
	// ChunkSize is the single-request threshold and chunk size of larger uploads (default
	// 16 MiB; at least 256 KiB, a multiple of it).
	ChunkSize int
	// Project is the project a bucket is created in by Create; empty means
	// GOOGLE_CLOUD_PROJECT, else the credentials' project.
	Project string
}

// Storage is a repo.Storage in a Google Cloud Storage bucket.
type Storage struct {
	client    *storage.Client
	creds     *auth.Credentials // nil for an emulator
	bucket    string
	prefix    string // "" or ends with "/"
	chunkSize int
	project   string
}

var _ repo.Storage = (*Storage)(nil)

// ParseURL splits "gs://bucket/some/prefix" into bucket and prefix ("some/prefix", or ""
// without one).
func ParseURL(u string) (bucket, prefix string, err error) {
	return objname.ParseURL(u, "gs", "GCS", checkBucket)
}

// checkBucket applies GCS's bucket naming rules: 3 to 63 characters (222 with dots) of
// lowercase letters, digits, '-', '_' and '.', starting and ending with a letter or digit.
func checkBucket(b string) error {
	max := 63
	if strings.Contains(b, ".") {
		max = 222
	}
	if len(b) < 3 || len(b) > max {
		return fmt.Errorf("bucket name %q must be 3 to 63 characters long (222 with dots)", b)
	}
	alnum := func(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }
	for i := 0; i < len(b); i++ {
		if c := b[i]; !alnum(c) && c != '-' && c != '_' && c != '.' {
			return fmt.Errorf("bucket name %q may hold only lowercase letters, digits, '-', '_' and '.'", b)
		}
	}
	if !alnum(b[0]) || !alnum(b[len(b)-1]) {
		return fmt.Errorf("bucket name %q must start and end with a letter or digit", b)
	}
	return nil
}

// checkName applies objname.CheckName: repo.ValidName without control characters.
func checkName(name string) error { return objname.CheckName(name, "GCS") }

// normPrefix returns the name prefix for Config.Prefix p: "" or a valid name plus "/".
func normPrefix(p string) (string, error) { return objname.Prefix(p, "GCS") }

// Open returns the storage in an existing bucket. A missing bucket is an error wrapping
// fs.ErrNotExist, refused access one wrapping fs.ErrPermission, each with a sentence that
// says what to do.
func Open(ctx context.Context, c Config) (*Storage, error) {
	return open(ctx, c, false)
}

// Create is Open, but creates the bucket when it is missing (for pgward init), in
// Config.Project.
func Create(ctx context.Context, c Config) (*Storage, error) {
	return open(ctx, c, true)
}

func open(ctx context.Context, c Config, create bool) (*Storage, error) {
	s, err := newStorage(ctx, c)
	if err != nil {
		return nil, err
	}
	err = s.checkBucket(ctx)
	if create && errors.Is(err, fs.ErrNotExist) {
		err = s.createBucket(ctx)
	}
	if err != nil {
		s.client.Close()
		return nil, err
	}
	return s, nil
}

func newStorage(ctx context.Context, c Config) (*Storage, error) {
	if err := checkBucket(c.Bucket); err != nil {
		return nil, fmt.Errorf("GCS configuration: %w", err)
	}
	prefix, err := normPrefix(c.Prefix)
	if err != nil {
		return nil, fmt.Errorf("GCS configuration: %w", err)
	}
	s := &Storage{bucket: c.Bucket, prefix: prefix, chunkSize: c.ChunkSize, project: c.Project}
	if s.chunkSize == 0 {
		s.chunkSize = DefaultChunkSize
	}
	if s.chunkSize < 256<<10 || s.chunkSize%(256<<10) != 0 {
		return nil, fmt.Errorf("GCS configuration: chunk size %d is not a multiple of 256 KiB", s.chunkSize)
	}
	if s.project == "" {
		s.project = os.Getenv(envProject)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	tr.ResponseHeaderTimeout = headerTimeout
	tr.MaxIdleConnsPerHost = 64 // workers upload in parallel: keep their connections
	opts := []option.ClientOption{storage.WithJSONReads(), option.WithUserAgent("pgward")}
	plain := false
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			// The URL itself may hold a secret: never echo it.
			return nil, errors.New("GCS configuration: the endpoint must be an http:// or https:// URL with a host")
		}
		plain = u.Scheme == "http"
		opts = append(opts, option.WithEndpoint(c.Endpoint))
	}
	if plain {
		opts = append(opts, option.WithoutAuthentication(), option.WithHTTPClient(&http.Client{Transport: tr}))
	} else {
		creds, err := credentials.DetectDefault(&credentials.DetectOptions{
			Scopes: []string{storage.ScopeFullControl},
			Client: &http.Client{Transport: tr},
		})
		if err != nil {
			return nil, errNoCredentials(err)
		}
		// Ask for a token now: a missing or broken credential should say so here, not
		// surface later as a confusing error of the first request.
		if _, err := creds.Token(ctx); err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("get Google credentials: %w", ctx.Err())
			}
			return nil, errNoCredentials(err)
		}
		s.creds = creds
		opts = append(opts, option.WithAuthCredentials(creds))
	}
	s.client, err = storage.NewClient(ctx, opts...)
	if err != nil {
		return nil, &permanentError{fmt.Errorf("GCS configuration: %w", err)}
	}
	// One retry policy, repo/retry's, above every backend.
	s.client.SetRetry(storage.WithPolicy(storage.RetryNever))
	return s, nil
}

// errNoCredentials says that no usable credentials were found. It is permanent for
// repo/retry: repeating the search would only delay this message.
func errNoCredentials(err error) error {
	return &permanentError{fmt.Errorf("no usable Google credentials: set %s to a credentials file (a service account key), "+
		"run 'gcloud auth application-default login', or run on Google Cloud with a service account: %w", envCredentials, &oneLineError{err})}
}

// oneLineError says err on one line (the auth library puts the token endpoint's answer on a
// line of its own) and keeps it in the chain.
type oneLineError struct{ err error }

func (e *oneLineError) Error() string { return strings.ReplaceAll(e.err.Error(), "\n", " ") }
func (e *oneLineError) Unwrap() error { return e.err }

// checkBucket makes sure the bucket exists and is readable with these credentials. It lists
// one object rather than reading the bucket's metadata: a role scoped to objects
// (roles/storage.objectUser) may list them without being allowed to read the bucket.
func (s *Storage) checkBucket(ctx context.Context) error {
	it := s.client.Bucket(s.bucket).Objects(ctx, &storage.Query{Prefix: s.prefix})
	it.PageInfo().MaxSize = 1
	_, err := it.Next()
	if err == nil || err == iterator.Done {
		return nil
	}
	return s.bucketError(err)
}

// bucketError turns a bucket-level failure into a sentence for the user.
func (s *Storage) bucketError(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("check bucket %s: %w", s.bucket, err)
	}
	status := statusCode(err)
	switch {
	case errors.Is(err, storage.ErrBucketNotExist) || status == http.StatusNotFound:
		return &bucketErr{msg: fmt.Sprintf("bucket %s does not exist (create it, or run pgward init which creates it)", s.bucket),
			is: fs.ErrNotExist, err: err}
	case status == http.StatusForbidden || status == http.StatusUnauthorized:
		return &bucketErr{msg: fmt.Sprintf("access denied to bucket %s: check the credentials (%s) and the principal's roles on the bucket (e.g. Storage Object User)",
			s.bucket, envCredentials), is: fs.ErrPermission, err: err}
	}
	return fmt.Errorf("check bucket %s: %w", s.bucket, classify(err))
}

// bucketErr is a bucket-level error: one sentence for the user with the server's status,
// errors.Is for fs.ErrNotExist or fs.ErrPermission, and the SDK's error in the chain.
type bucketErr struct {
	msg string
	is  error
	err error
}

func (e *bucketErr) Error() string {
	if status := statusCode(e.err); status != 0 {
		return fmt.Sprintf("%s (HTTP %d)", e.msg, status)
	}
	return e.msg
}

func (e *bucketErr) Is(target error) bool { return target == e.is }
func (e *bucketErr) Unwrap() error        { return e.err }
func (e *bucketErr) Transient() bool      { return false }

func (s *Storage) createBucket(ctx context.Context) error {
	project := s.project
	if project == "" && s.creds != nil {
		project, _ = s.creds.ProjectID(ctx)
	}
	if project == "" {
		return fmt.Errorf("create bucket %s: no project to create it in: set %s, or create the bucket yourself", s.bucket, envProject)
	}
	err := s.client.Bucket(s.bucket).Create(ctx, project, nil)
	if err == nil || statusCode(err) == http.StatusConflict {
		// 409: it exists already, made by a racing init or owned by us.
		if err != nil {
			return s.checkBucket(ctx)
		}
		return nil
	}
	if statusCode(err) == http.StatusForbidden {
		return fmt.Errorf("create bucket %s: access denied: the credentials may not create buckets in project %s; create it yourself: %w", s.bucket, project, classify(err))
	}
	return fmt.Errorf("create bucket %s: %w", s.bucket, classify(err))
}

// Close releases the client's connections.
func (s *Storage) Close() error { return s.client.Close() }

// String returns "gs://bucket/prefix", or "gs://bucket" without a prefix.
func (s *Storage) String() string {
	if s.prefix == "" {
		return "gs://" + s.bucket
	}
	return "gs://" + s.bucket + "/" + strings.TrimSuffix(s.prefix, "/")
}

// url names the object with name key for messages.
func (s *Storage) url(key string) string { return "gs://" + s.bucket + "/" + key }

// statusCode returns the HTTP status of an SDK error, 0 without one.
func statusCode(err error) int {
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		return ge.Code
	}
	return 0
}

// responseError is a server answer other than the ones mapped to repo errors. It keeps the
// SDK error in the chain and classifies it for repo/retry.
type responseError struct {
	err       error
	transient bool
}

func (e *responseError) Error() string   { return e.err.Error() }
func (e *responseError) Unwrap() error   { return e.err }
func (e *responseError) Transient() bool { return e.transient }

// permanentError marks an error that repo/retry must not repeat.
type permanentError struct{ err error }

func (e *permanentError) Error() string   { return e.err.Error() }
func (e *permanentError) Unwrap() error   { return e.err }
func (e *permanentError) Transient() bool { return false }

// classify marks an SDK error that carries a server answer as transient or permanent.
// Errors without one (the connection failed) are left as they are: repo/retry knows
// network errors.
func classify(err error) error {
	status := statusCode(err)
	if status == 0 {
		return err
	}
	return &responseError{err: err, transient: status >= 500 || status == http.StatusTooManyRequests || status == http.StatusRequestTimeout}
}

// opError builds the error of an operation on key.
func (s *Storage) opError(op, key string, err error) error {
	if errors.Is(err, storage.ErrBucketNotExist) {
		return fmt.Errorf("%s %s: bucket %s does not exist: %w", op, s.url(key), s.bucket, &permanentError{err})
	}
	return fmt.Errorf("%s %s: %w", op, s.url(key), classify(err))
}
