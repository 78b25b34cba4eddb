package location

import (
	"context"
	"time"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/azure"
	"github.com/pgward/pgward/repo/gcs"
	"github.com/pgward/pgward/repo/sftp"
)

// AzureOptions apply to every azure:// location. Credentials are not options: the backend
// reads them from the environment (see package repo/azure).
type AzureOptions struct {
	// Endpoint is the account's blob service URL; empty means the public cloud's endpoint of
	// AZURE_STORAGE_ACCOUNT.
	Endpoint string
	// RetryMax bounds how long a failing request is retried (default
	// retry.DefaultMaxElapsed).
	RetryMax time.Duration
}

// GCSOptions apply to every gs:// location. Credentials are Google's application default
// credentials (see package repo/gcs).
type GCSOptions struct {
	// Endpoint is the JSON API's base URL; empty means Google's.
	Endpoint string
	// RetryMax bounds how long a failing request is retried (default
	// retry.DefaultMaxElapsed).
	RetryMax time.Duration
}

// SFTPOptions apply to every sftp:// location. Keys come from the ssh agent, the identity
// file or the default key files (see package repo/sftp).
type SFTPOptions struct {
	IdentityFile, KnownHostsFile string
	AcceptNewHostKey             bool
	// RetryMax bounds how long a failing request is retried, reconnecting as needed
	// (default retry.DefaultMaxElapsed).
	RetryMax time.Duration
}

// azureStorage opens an azure://container/prefix location: the Azure backend, opened
// lazily, under the retry wrapper.
func azureStorage(spec string, o Options, create bool) (repo.Storage, error) {
	container, prefix, err := azure.ParseURL(spec)
	if err != nil {
		return nil, err
	}
	cfg := azure.Config{Container: container, Prefix: prefix, Endpoint: o.Azure.Endpoint}
	open := azure.Open
	if create {
		open = azure.Create
	}
	return remote(o, "Azure", joinName("azure://"+container, prefix), o.Azure.RetryMax, func(ctx context.Context) (repo.Storage, error) {
		return open(ctx, cfg)
	}), nil
}

// gcsStorage opens a gs://bucket/prefix location: the GCS backend, opened lazily, under the
// retry wrapper.
func gcsStorage(spec string, o Options, create bool) (repo.Storage, error) {
	bucket, prefix, err := gcs.ParseURL(spec)
	if err != nil {
		return nil, err
	}
	cfg := gcs.Config{Bucket: bucket, Prefix: prefix, Endpoint: o.GCS.Endpoint}
	open := gcs.Open
	if create {
		open = gcs.Create
	}
	return remote(o, "GCS", joinName("gs://"+bucket, prefix), o.GCS.RetryMax, func(ctx context.Context) (repo.Storage, error) {
		return open(ctx, cfg)
	}), nil
}

// sftpStorage opens an sftp://user@host[:port]/path location: the SFTP backend, connected
// lazily, under the retry wrapper. The name shown before the connection is the location as
// given.
func sftpStorage(spec string, o Options, create bool) (repo.Storage, error) {
	cfg, err := sftp.ParseURL(spec)
	if err != nil {
		return nil, err
	}
	cfg.IdentityFile = o.SFTP.IdentityFile
	cfg.KnownHostsFile = o.SFTP.KnownHostsFile
	cfg.AcceptNewHostKey = o.SFTP.AcceptNewHostKey
	open := sftp.Open
	if create {
		open = sftp.Create
	}
	return remote(o, "SFTP", spec, o.SFTP.RetryMax, func(ctx context.Context) (repo.Storage, error) {
		return open(ctx, cfg)
	}), nil
}
