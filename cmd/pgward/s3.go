package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/retry"
	"github.com/pgward/pgward/repo/s3"
	"github.com/spf13/pflag"
)

// s3Options are the --s3-* options, which apply to every s3:// repository.
//
// They live in one package variable, written by the flag values themselves whenever a flag
// is set (on the command line, or by resolveFlags from the environment or the config file),
// because storageFor is called where no command is at hand. Defaults are never written
// there, so building another root command (knownFileKey does, while flags are being
// resolved) cannot reset what was already set.
type s3Options struct {
	endpoint, region string
	pathStyle        bool
	sse, sseKMSKeyID string
	storageClass     string
	retryMax         time.Duration
}

var s3Opts s3Options

// s3FlagNames lists the --s3-* flags, in the order restoreCommand passes them on.
var s3FlagNames = []string{"s3-endpoint", "s3-region", "s3-path-style", "s3-sse", "s3-sse-kms-key-id", "s3-storage-class", "s3-retry-max"}

// addS3Flags defines the --s3-* persistent flags.
func addS3Flags(pf *pflag.FlagSet) {
	str := func(p *string) pflag.Value {
		return &optValue[string]{dst: p, typ: "string", parse: func(s string) (string, error) { return s, nil }}
	}
	pf.Var(str(&s3Opts.endpoint), "s3-endpoint", "S3 server URL, e.g. https://minio.example:9000 (default: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, else AWS)")
	pf.Var(str(&s3Opts.region), "s3-region", "S3 region (default: AWS_REGION or the profile's, else us-east-1; for AWS the bucket's region is found)")
	pf.Var(&optValue[bool]{dst: &s3Opts.pathStyle, typ: "bool", parse: strconv.ParseBool}, "s3-path-style",
		"address buckets as ENDPOINT/bucket (most S3-compatible servers need it)")
	pf.Lookup("s3-path-style").NoOptDefVal = "true"
	pf.Var(&optValue[string]{dst: &s3Opts.sse, typ: "string", parse: func(s string) (string, error) {
		if s != "" && s != "AES256" && s != "aws:kms" {
			return "", errors.New("use AES256 or aws:kms (or nothing for none)")
		}
		return s, nil
	}}, "s3-sse", "server-side encryption of new S3 objects: AES256 or aws:kms")
	pf.Var(str(&s3Opts.sseKMSKeyID), "s3-sse-kms-key-id", "KMS key for --s3-sse aws:kms (default: the account's S3 key)")
	pf.Var(str(&s3Opts.storageClass), "s3-storage-class", "storage class of new S3 objects, e.g. STANDARD_IA (default: the bucket's)")
	pf.Var(&optValue[time.Duration]{dst: &s3Opts.retryMax, val: retry.DefaultMaxElapsed, typ: "duration", parse: func(s string) (time.Duration, error) {
		d, err := time.ParseDuration(s)
		if err == nil && d <= 0 {
			err = errors.New("must be positive")
		}
		return d, err
	}}, "s3-retry-max", "how long to keep retrying a failing S3 request before giving up")
}

// optValue is a flag value that writes to dst only when set; val is what it shows.
type optValue[T any] struct {
	dst   *T
	val   T
	typ   string
	parse func(string) (T, error)
}

func (o *optValue[T]) Set(s string) error {
	v, err := o.parse(s)
	if err != nil {
		return err
	}
	o.val, *o.dst = v, v
	return nil
}

func (o *optValue[T]) String() string { return fmt.Sprint(o.val) }
func (o *optValue[T]) Type() string   { return o.typ }

// s3Storage opens the repository at an s3://bucket/prefix URL: the S3 backend under the
// retry wrapper, the one retry policy (the backend's SDK never retries on its own).
func s3Storage(spec string, create bool) (repo.Storage, error) {
	bucket, prefix, err := s3.ParseURL(spec)
	if err != nil {
		return nil, fmt.Errorf("--repo: %w", err)
	}
	o := s3Opts
	l := &lazyS3{
		cfg: s3.Config{
			Bucket: bucket, Prefix: prefix,
			Region: o.region, Endpoint: o.endpoint, PathStyle: o.pathStyle,
			SSE: o.sse, SSEKMSKeyID: o.sseKMSKeyID, StorageClass: o.storageClass,
		},
		create: create,
		name:   "s3://" + bucket,
	}
	if prefix != "" {
		l.name += "/" + prefix
	}
	p := retry.Policy{
		MaxElapsed: o.retryMax,
		OnRetry: func(op, name string, attempt int, wait time.Duration, err error) {
			slog.Info("S3 request failed, retrying", "repo", l.name, "op", op, "object", name,
				"attempt", attempt, "wait", wait.Round(time.Millisecond), "error", err)
		},
	}
	return retry.Wrap(l, p), nil
}

// lazyS3 opens the bucket (s3.Open, or s3.Create for init) on first use rather than in
// storageFor: that way opening runs with the caller's context, so an interrupt stops it, and
// under the retry wrapper, so a server that is briefly unavailable when a command starts is
// retried like any other request. Errors Open classifies as permanent (a missing bucket,
// refused or missing credentials, a bad configuration) fail at once.
type lazyS3 struct {
	cfg    s3.Config
	create bool
	name   string

	mu sync.Mutex
	st *s3.Storage
}

func (l *lazyS3) open(ctx context.Context) (*s3.Storage, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.st != nil {
		return l.st, nil
	}
	open := s3.Open
	if l.create {
		open = s3.Create
	}
	st, err := open(ctx, l.cfg)
	if err != nil {
		return nil, err
	}
	l.st = st
	return st, nil
}

// Unwrap returns the S3 storage once it is open, and nil before: a storage that was never
// opened has nothing to tell.
func (l *lazyS3) Unwrap() repo.Storage {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.st == nil {
		return nil
	}
	return l.st
}

// do opens the bucket and runs op on it.
func (l *lazyS3) do(ctx context.Context, op func(*s3.Storage) error) error {
	st, err := l.open(ctx)
	if err != nil {
		return err
	}
	return op(st)
}

func (l *lazyS3) String() string { return l.name }

func (l *lazyS3) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	return l.do(ctx, func(st *s3.Storage) error { return st.Put(ctx, name, r, size) })
}

func (l *lazyS3) PutDeferred(ctx context.Context, name string, r io.Reader, size int64) error {
	return l.do(ctx, func(st *s3.Storage) error { return st.PutDeferred(ctx, name, r, size) })
}

func (l *lazyS3) SyncDeferred(ctx context.Context) error {
	return l.do(ctx, func(st *s3.Storage) error { return st.SyncDeferred(ctx) })
}

func (l *lazyS3) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	st, err := l.open(ctx)
	if err != nil {
		return nil, err
	}
	return st.Get(ctx, name)
}

func (l *lazyS3) Stat(ctx context.Context, name string) (repo.ObjectInfo, error) {
	st, err := l.open(ctx)
	if err != nil {
		return repo.ObjectInfo{}, err
	}
	return st.Stat(ctx, name)
}

func (l *lazyS3) List(ctx context.Context, prefix string, fn func(repo.ObjectInfo) error) error {
	return l.do(ctx, func(st *s3.Storage) error { return st.List(ctx, prefix, fn) })
}

func (l *lazyS3) Delete(ctx context.Context, name string) error {
	return l.do(ctx, func(st *s3.Storage) error { return st.Delete(ctx, name) })
}
