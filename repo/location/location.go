// Package location turns a repository location — a directory, s3://bucket/prefix,
// azure://container/prefix, gs://bucket/prefix or sftp://user@host[:port]/path — into a
// Storage with its wrappers, and a list of locations into an open repository set. It is the one opener: the CLI and the daemon call it,
// so a wrapper added here (retry today, metrics later) reaches every caller.
//
// Invariants:
//   - Remote storage always runs under the retry wrapper, the one retry policy (no
//     backend's SDK retries on its own), and is opened on first use (see lazy); local
//     storage needs neither.
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
	S3    S3Options
	Azure AzureOptions
	GCS   GCSOptions
	SFTP  SFTPOptions
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
	switch scheme, _, _ := strings.Cut(spec, "://"); {
	case !strings.Contains(spec, "://"):
	case scheme == "s3":
		return s3Storage(spec, o, create)
	case scheme == "azure":
		return azureStorage(spec, o, create)
	case scheme == "gs":
		return gcsStorage(spec, o, create)
	case scheme == "sftp":
		return sftpStorage(spec, o, create)
	default:
		return nil, fmt.Errorf("%w: %s: %s:// repositories are not supported; use a local directory, s3://bucket/prefix, "+
			"azure://container/prefix, gs://bucket/prefix or sftp://user@host/path", ErrUnsupported, spec, scheme)
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
	cfg := s3.Config{
		Bucket: bucket, Prefix: prefix,
		Region: s.Region, Endpoint: s.Endpoint, PathStyle: s.PathStyle,
		SSE: s.SSE, SSEKMSKeyID: s.SSEKMSKeyID, StorageClass: s.StorageClass,
	}
	open := s3.Open
	if create {
		open = s3.Create
	}
	return remote(o, "S3", joinName("s3://"+bucket, prefix), s.RetryMax, func(ctx context.Context) (repo.Storage, error) {
		return open(ctx, cfg)
	}), nil
}

// remote is a remote storage named name, opened by openFn on first use, under the retry
// wrapper: retried for up to retryMax (retry.DefaultMaxElapsed when 0), each retry logged.
func remote(o Options, kind, name string, retryMax time.Duration, openFn func(context.Context) (repo.Storage, error)) repo.Storage {
	l := &lazy{openFn: openFn, name: name}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if retryMax <= 0 {
		retryMax = retry.DefaultMaxElapsed
	}
	p := retry.Policy{
		MaxElapsed: retryMax,
		OnRetry: func(op, object string, attempt int, wait time.Duration, err error) {
			log.Info(kind+" request failed, retrying", "repo", name, "op", op, "object", object,
				"attempt", attempt, "wait", wait.Round(time.Millisecond), "error", err)
		},
	}
	return retry.Wrap(l, p)
}

// joinName names a bucket or container with its prefix, if any.
func joinName(base, prefix string) string {
	if prefix == "" {
		return base
	}
	return base + "/" + prefix
}

// Open opens the repository at every location, in order. It fails when any of them
// cannot be opened: commands that write need every repository.
func Open(ctx context.Context, specs []string, o Options) ([]*repo.Repo, error) {
	return open(ctx, specs, o, false)
}

// skipAfter bounds how long OpenAvailable waits for a repository to open when others could
// serve: an unreachable remote would otherwise hold every archive-get (one per WAL segment
// during recovery) for its whole retry budget.
var skipAfter = 20 * time.Second

// openRepo opens the repository in st, within skipAfter when it may be skipped.
func openRepo(ctx context.Context, st repo.Storage, src func() ([]byte, error), bounded bool) (*repo.Repo, error) {
	if !bounded {
		return repo.Open(ctx, st, src)
	}
	octx, cancel := context.WithTimeout(ctx, skipAfter)
	defer cancel()
	return repo.Open(octx, st, src)
}

// OpenAvailable opens the repositories at specs for reading, in order, skipping one that
// cannot be opened (missing, refused, or not answering within skipAfter) with a warning that
// names it and why; it fails only when none opens, with every reason. Commands that only
// read a backup or WAL (restore, archive-get) use it, so that a lost repository does not
// stop a recovery that another repository can serve; what the skipped one alone held is
// missing from the plan, which then refuses a target it cannot reach. A wrong passphrase
// is not skipped: it would be as wrong for the next repository.
func OpenAvailable(ctx context.Context, specs []string, o Options) ([]*repo.Repo, error) {
	return open(ctx, specs, o, true)
}

func open(ctx context.Context, specs []string, o Options, skip bool) ([]*repo.Repo, error) {
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
	var skipped []error
	for _, s := range specs {
		st, err := Storage(s, o, false)
		if err != nil && strings.Contains(s, "://") {
			return nil, err // a malformed location is for the user to fix, not to skip
		}
		var r *repo.Repo
		if err == nil {
			r, err = openRepo(ctx, st, src, skip && len(specs) > 1)
		}
		if err != nil && skip && len(specs) > 1 && ctx.Err() == nil && !errors.Is(err, repo.ErrWrongPassphrase) {
			if o.Log != nil {
				o.Log.Warn("repository cannot be opened, reading from the others", "repo", s, "error", err)
			}
			skipped = append(skipped, fmt.Errorf("opening repository %s: %w", s, err))
			continue
		}
		if err != nil {
			return nil, err
		}
		r.SetLockPolicy(o.Locks)
		if !r.Encrypted() && o.PassphraseGiven && o.Log != nil {
			o.Log.Warn("the repository is not encrypted: the passphrase option is ignored", "repo", r.String())
		}
		repos = append(repos, r)
	}
	if len(repos) == 0 {
		return nil, fmt.Errorf("no repository can be opened: %w", errors.Join(skipped...))
	}
	return repos, nil
}
