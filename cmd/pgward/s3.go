package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
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
	return &s3Repo{Storage: retry.Wrap(l, p), lazy: l, policy: p}, nil
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

func (l *lazyS3) String() string { return l.name }

func (l *lazyS3) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	st, err := l.open(ctx)
	if err != nil {
		return err
	}
	return st.Put(ctx, name, r, size)
}

func (l *lazyS3) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	st, err := l.open(ctx)
	if err != nil {
		return nil, err
	}
	return st.Get(ctx, name)
}

func (l *lazyS3) Stat(ctx context.Context, name string) (int64, error) {
	st, err := l.open(ctx)
	if err != nil {
		return 0, err
	}
	return st.Stat(ctx, name)
}

func (l *lazyS3) List(ctx context.Context, prefix string, fn func(name string, size int64) error) error {
	st, err := l.open(ctx)
	if err != nil {
		return err
	}
	return st.List(ctx, prefix, fn)
}

func (l *lazyS3) Delete(ctx context.Context, name string) error {
	st, err := l.open(ctx)
	if err != nil {
		return err
	}
	return st.Delete(ctx, name)
}

func (l *lazyS3) ModTime(ctx context.Context, name string) (time.Time, error) {
	st, err := l.open(ctx)
	if err != nil {
		return time.Time{}, err
	}
	return st.ModTime(ctx, name)
}

// s3Repo is the retrying S3 storage plus ModTime, which the retry wrapper does not pass
// through and the repository looks for (WALTime: the end of the recoverable window).
type s3Repo struct {
	repo.Storage
	lazy   *lazyS3
	policy retry.Policy
}

// ModTime retries transient failures with the wrapper's classification and budget: without
// retries a passing failure would silently shorten the recoverable window, and refuse a
// reachable --target-time.
func (s *s3Repo) ModTime(ctx context.Context, name string) (time.Time, error) {
	budget := s.policy.MaxElapsed
	if budget <= 0 {
		budget = retry.DefaultMaxElapsed
	}
	deadline := time.Now().Add(budget)
	ceiling := retry.DefaultInitialWait
	for {
		mt, err := s.lazy.ModTime(ctx, name)
		if err == nil || !retry.IsTransient(err) || ctx.Err() != nil || time.Now().After(deadline) {
			return mt, err
		}
		select {
		case <-time.After(rand.N(ceiling)):
		case <-ctx.Done():
			return mt, err
		}
		ceiling = min(2*ceiling, retry.DefaultMaxWait)
	}
}
