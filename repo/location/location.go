// Package location turns a repository location — a directory or
// s3://bucket/prefix — into a Storage with its wrappers, and a list of locations
// into an open repository set. It is the one opener: the CLI and the daemon call it,
// so a wrapper added here (retry today, metrics later) reaches every caller.
//
// Invariants:
//   - Remote storage always runs under the retry wrapper, the one retry policy (the
//     S3 SDK never retries on its own); local storage needs none.
//   - A passphrase source is asked at most once per Open, however many
//     repositories it unlocks.
package location

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/local"
	"github.com/pgward/pgward/repo/retry"
	"github.com/pgward/pgward/repo/s3"
)

// Options say how locations are opened.
type Options struct {
	S3 S3Options
	// Passphrase is asked (once) when a repository is encrypted; nil when none
	// was configured.
	Passphrase func() ([]byte, error)
	// PassphraseGiven tells that the user configured a passphrase explicitly, so
	// that an unencrypted repository is worth a warning.
	PassphraseGiven bool
	// Locks is how every repository's locks are taken.
	Locks repo.LockPolicy
	Log   *slog.Logger
}

// S3Options apply to every s3:// location.
type S3Options struct {
	Endpoint, Region string
	PathStyle        bool
	// SSE is "", "AES256" or "aws:kms"; SSEKMSKeyID the KMS key for aws:kms.
	SSE, SSEKMSKeyID string
	StorageClass     string
	// RetryMax bounds how long a failing request is retried (default
	// retry.DefaultMaxElapsed).
	RetryMax time.Duration
}

// ErrUnsupported is wrapped when a location names a scheme pgward cannot store to.
var ErrUnsupported = errors.New("unsupported repository location")

// Storage opens the storage a location names. create is for init: it creates
// the directory, or the bucket when it is missing.
func Storage(spec string, o Options, create bool) (repo.Storage, error) {
	if strings.HasPrefix(spec, "s3://") {
		return s3Storage(spec, o, create)
	}
	if strings.Contains(spec, "://") {
		scheme, _, _ := strings.Cut(spec, "://")
		return nil, fmt.Errorf("%w: %s: %s:// repositories are not supported; use a local directory or s3://bucket/prefix", ErrUnsupported, spec, scheme)
	}
	if create {
		return local.Create(spec)
	}
	st, err := local.Open(spec)
	if err != nil {
		return nil, fmt.Errorf("%w; create the repository with 'pgward init --repo %s'", err, spec)
	}
	return st, nil
}

// s3Storage opens an s3://bucket/prefix location: the S3 backend, opened lazily,
// under the retry wrapper.
func s3Storage(spec string, o Options, create bool) (repo.Storage, error) {
	bucket, prefix, err := s3.ParseURL(spec)
	if err != nil {
		return nil, err
	}
	s := o.S3
	l := &lazy{
		cfg: s3.Config{
			Bucket: bucket, Prefix: prefix,
			Region: s.Region, Endpoint: s.Endpoint, PathStyle: s.PathStyle,
			SSE: s.SSE, SSEKMSKeyID: s.SSEKMSKeyID, StorageClass: s.StorageClass,
		},
		create: create,
		name:   "s3://" + bucket,
	}
	if prefix != "" {
		l.name += "/" + prefix
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	maxElapsed := s.RetryMax
	if maxElapsed <= 0 {
		maxElapsed = retry.DefaultMaxElapsed
	}
	p := retry.Policy{
		MaxElapsed: maxElapsed,
		OnRetry: func(op, name string, attempt int, wait time.Duration, err error) {
			log.Info("S3 request failed, retrying", "repo", l.name, "op", op, "object", name,
				"attempt", attempt, "wait", wait.Round(time.Millisecond), "error", err)
		},
	}
	return retry.Wrap(l, p), nil
}

// Open opens the repository at every location, in order.
func Open(ctx context.Context, specs []string, o Options) ([]*repo.Repo, error) {
	if len(specs) == 0 {
		return nil, errors.New("no repository given: use --repo DIR, PGWARD_REPO, or repo in the config file")
	}
	var cached []byte
	var src func() ([]byte, error)
	if o.Passphrase != nil {
		src = func() ([]byte, error) {
			if cached != nil {
				return cached, nil
			}
			b, err := o.Passphrase()
			cached = b
			return b, err
		}
	}
	var repos []*repo.Repo
	for _, s := range specs {
		st, err := Storage(s, o, false)
		if err != nil {
			return nil, err
		}
		r, err := repo.Open(ctx, st, src)
		if err != nil {
			return nil, err
		}
		r.SetLockPolicy(o.Locks)
		if !r.Encrypted() && o.PassphraseGiven && o.Log != nil {
			o.Log.Warn("the repository is not encrypted: the passphrase option is ignored", "repo", r.String())
		}
		repos = append(repos, r)
	}
	return repos, nil
}
