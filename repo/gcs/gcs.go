// Package gcs keeps repository objects in a Google Cloud Storage bucket (or an emulator of
// its JSON API, such as fake-gcs-server). Object name n is the object Prefix+"/"+n, or n
// when there is no prefix.
//
// It speaks GCS's JSON API with net/http and golang.org/x/oauth2 rather than Google's SDK:
// the SDK brings gRPC and its kin into every pgward process, and archive-push starts one per
// WAL segment. The requests used are few: a media upload (multipart, for the checksum), a
// resumable upload, a media download, the object resource, a listing, a delete and a bucket
// insert (see client.go for the URLs).
//
// How the repo.Storage promises map onto GCS:
//   - Write once: every write carries the precondition ifGenerationMatch=0 ("no live object
//     of this name"), so GCS refuses to replace an existing object (412, reported as
//     repo.ErrExists) atomically, also against a racing writer.
//   - Atomic visibility and durability: an object exists only once its upload is finalized,
//     and then it is durable; a failed or canceled upload leaves nothing. There is no
//     directory to sync, so PutDeferred is Put and SyncDeferred does nothing.
//   - Bounded memory: an object of at most ChunkSize bytes is read into one pooled buffer and
//     sent in one request with its CRC32C, which the server checks; a larger one is a
//     resumable upload of ChunkSize chunks through one buffer. Either way one buffer per Put.
//   - ModTime is the object's creation time, the same in the object's metadata and in
//     listings.
//   - Listings come in byte order of names; List checks it, since callers and the retry
//     wrapper's resume rely on it. Names with control characters are refused (GCS does not
//     allow carriage returns or line feeds in names, and advises against the rest).
//
// Errors: a missing object is repo.ErrNotFound, a taken name repo.ErrExists. Other answers
// are a *StatusError (status, GCS's reason and message, on one line) and say through
// Transient() whether repeating may help (5xx, 408, 429, a failed connection) or not (401,
// 403, a missing bucket, other 4xx). This package never retries by itself: repo/retry is the
// one retry policy.
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
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/internal/objname"
)

// DefaultChunkSize is the single-request threshold and the chunk of resumable uploads when
// Config.ChunkSize is 0.
const DefaultChunkSize = 16 << 20

// chunkUnit is what GCS requires every chunk of a resumable upload but the last to be a
// multiple of.
const chunkUnit = 256 << 10

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
	api       endpoints
	client    *http.Client // one transport for every request; with credentials unless plain http
	transport *http.Transport
	bucket    string
	prefix    string // "" or ends with "/"
	chunkSize int
	project   string // from Config, the environment or the credentials; "" if none said
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
		s.Close()
		return nil, err
	}
	return s, nil
}

// newStorage checks the configuration and sets up the HTTP client, with credentials for an
// https endpoint. It sends no request but the one for a first token.
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
	if s.chunkSize < chunkUnit || s.chunkSize%chunkUnit != 0 {
		return nil, fmt.Errorf("GCS configuration: chunk size %d is not a multiple of 256 KiB", s.chunkSize)
	}
	if s.project == "" {
		s.project = os.Getenv(envProject)
	}
	if s.api, err = parseEndpoint(c.Endpoint); err != nil {
		return nil, err
	}
	s.transport = newTransport()
	s.client = newClient(s.transport)
	if s.api.plain {
		return s, nil
	}
	creds, err := defaultCredentials(ctx, s.client)
	if err != nil {
		s.Close()
		return nil, err
	}
	if s.project == "" {
		s.project = creds.ProjectID
	}
	s.client = authorizedClient(s.transport, creds)
	return s, nil
}

// Close releases the client's idle connections.
func (s *Storage) Close() error {
	s.transport.CloseIdleConnections()
	return nil
}

// String returns "gs://bucket/prefix", or "gs://bucket" without a prefix.
func (s *Storage) String() string {
	if s.prefix == "" {
		return "gs://" + s.bucket
	}
	return "gs://" + s.bucket + "/" + strings.TrimSuffix(s.prefix, "/")
}

// url names the object with name key for messages.
func (s *Storage) url(key string) string { return "gs://" + s.bucket + "/" + key }
