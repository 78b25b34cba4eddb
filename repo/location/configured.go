package location

import (
	"context"
	"errors"
	"log/slog"

	"github.com/pgward/pgward/internal/config"
	"github.com/pgward/pgward/repo"
)

// FromConfig is how every repository location is opened under resolved options: the one
// mapping the CLI and the daemon share.
func FromConfig(o *config.Options) Options {
	s := o.S3
	return Options{
		S3: S3Options{Endpoint: s.Endpoint, Region: s.Region, PathStyle: s.PathStyle,
			SSE: s.SSE, SSEKMSKeyID: s.SSEKMSKeyID, StorageClass: s.StorageClass, RetryMax: s.RetryMax},
		Azure: AzureOptions{Endpoint: o.Azure.Endpoint, RetryMax: o.Azure.RetryMax},
		GCS:   GCSOptions{Endpoint: o.GCS.Endpoint, RetryMax: o.GCS.RetryMax},
		SFTP: SFTPOptions{IdentityFile: o.SFTP.IdentityFile, KnownHostsFile: o.SFTP.KnownHosts,
			AcceptNewHostKey: o.SFTP.AcceptNewHostKey, RetryMax: o.SFTP.RetryMax},
		Passphrase:      o.Passphrase.Func(),
		PassphraseGiven: o.Passphrase.Named(),
		Locks:           repo.LockPolicy{Wait: o.LockWait, Settle: o.LockSettle},
		Log:             slog.Default(),
	}
}

// ErrNoRepository is returned when the options name no repository.
var ErrNoRepository = errors.New("no repository given: use --repo DIR, PGWARD_REPO, or repo in the config file")

// Specs returns the configured repository locations, or ErrNoRepository.
func Specs(o *config.Options) ([]string, error) {
	if len(o.Repos) == 0 {
		return nil, ErrNoRepository
	}
	return o.Repos, nil
}

// OpenConfigured opens every repository the options name.
func OpenConfigured(ctx context.Context, o *config.Options) ([]*repo.Repo, error) {
	specs, err := Specs(o)
	if err != nil {
		return nil, err
	}
	return Open(ctx, specs, FromConfig(o))
}

// OpenAvailableConfigured opens the repositories the options name for a command that only
// reads: see OpenAvailable.
func OpenAvailableConfigured(ctx context.Context, o *config.Options) ([]*repo.Repo, error) {
	specs, err := Specs(o)
	if err != nil {
		return nil, err
	}
	return OpenAvailable(ctx, specs, FromConfig(o))
}
