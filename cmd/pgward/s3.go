package main

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/pgward/pgward/repo/location"
	"github.com/pgward/pgward/repo/retry"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// s3Options are the --s3-* options, which apply to every s3:// repository.
//
// They live in one package variable, written by the flag values themselves whenever a flag
// is set (on the command line, or by resolveFlags from the environment or the config file),
// because they were read where no command was at hand. Defaults are never written
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

// locationOptions are the options every repository location is opened with.
func locationOptions(cmd *cobra.Command) location.Options {
	o := s3Opts
	return location.Options{
		S3: location.S3Options{Endpoint: o.endpoint, Region: o.region, PathStyle: o.pathStyle,
			SSE: o.sse, SSEKMSKeyID: o.sseKMSKeyID, StorageClass: o.storageClass, RetryMax: o.retryMax},
		Passphrase:      passphraseSource(cmd),
		PassphraseGiven: cmd.Flags().Changed("passphrase-file") || cmd.Flags().Changed("passphrase-command"),
		Log:             slog.Default(),
	}
}
