// Package s3 keeps repository objects in an S3 bucket: AWS S3 or an S3-compatible server
// (MinIO, Ceph RGW, versitygw, ...). Object name n is the key Prefix+"/"+n, or n when there
// is no prefix.
//
// How the repo.Storage promises map onto S3:
//   - Write once: every write is conditional. PutObject and CompleteMultipartUpload carry
//     "If-None-Match: *", so the server refuses to replace an existing key (412
//     PreconditionFailed, reported as repo.ErrExists) atomically, also against a racing
//     writer. There is no fallback to "HEAD, then PUT": it would let two writers both win.
//     A server that does not implement conditional writes answers 501 NotImplemented, and
//     Put fails saying so (AWS S3 has them since 2024; MinIO, Ceph RGW and versitygw too).
//     A server that silently ignores the header is caught by CheckConditionalWrites, which
//     Create runs.
//   - Atomic visibility and durability: S3 shows an object only when its PUT or multipart
//     completion succeeded, and then it is durable; Put returns nil only after that. There is
//     no directory to sync, so PutDeferred is Put and SyncDeferred does nothing.
//   - ModTime is the object's Last-Modified time, truncated to the second in Stat and List
//     alike.
//   - Bounded memory: an object of at most PartSize bytes is read into one buffer and sent
//     with one PutObject (the SDK must be able to rewind the body over plain http, and a
//     buffer also means a failing reader fails before anything is sent). A larger object
//     becomes a multipart upload of PartSize parts with at most Concurrency parts, so
//     Concurrency buffers, in flight; memory never grows with the object. A multipart Put
//     that fails or is canceled aborts its upload (best effort: a bucket lifecycle rule
//     "AbortIncompleteMultipartUpload" cleans up after a crash). Buffers are pooled and
//     reused across Puts.
//   - Names: repo.ValidName names without control characters, which XML listings cannot
//     carry back.
//   - Read-after-write and List order: S3 has been strongly consistent since December 2020,
//     and ListObjectsV2 returns keys in byte order. List checks the order and fails rather
//     than report names out of order, since callers (and the retry wrapper's resume) rely
//     on it. Keys under the prefix that are not valid object names (a console's "folder/"
//     marker) are not objects of ours and are skipped.
//
// Errors: a missing object is repo.ErrNotFound, a taken name repo.ErrExists. Other server
// answers keep the SDK's error in their chain (errors.As works for smithy.APIError) and
// say through a Transient() method whether repeating may help (5xx, 429, SlowDown, a
// conflicting conditional write) or not (403, NoSuchBucket, 4xx), which is what package
// repo/retry reads. This package never retries by itself: the AWS SDK's retryer is off, so
// that repo/retry is the one retry policy and waits do not multiply.
//
// Credentials, region and endpoint come from the AWS SDK's default chain (environment,
// shared config and credentials files with AWS_PROFILE, web identity, ECS, EC2 instance
// metadata) unless Config sets them. No credential ever appears in an error or String.
package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/pgward/pgward/repo"
)

const (
	// DefaultPartSize is the multipart threshold and part size when Config.PartSize is 0.
	DefaultPartSize = 16 << 20
	// MinPartSize is S3's smallest part (all parts but the last).
	MinPartSize = 5 << 20
	// MaxPartSize is S3's largest part.
	MaxPartSize = 5 << 30
	// DefaultConcurrency is the number of parts of one Put in flight when Config.Concurrency is 0.
	DefaultConcurrency = 4
	// maxParts is S3's limit on the parts of one upload.
	maxParts = 10000
	// defaultRegion is used when neither Config nor the environment names one; for AWS the
	// bucket's real region is then discovered (see Open).
	defaultRegion = "us-east-1"
)

// Timeouts of one HTTP request. The retry wrapper decides what happens after one fires.
const (
	dialTimeout = 10 * time.Second
	// readTimeout fails a connection that delivers no byte for this long: a stalled server
	// or a silently dropped connection. It is not a limit on a whole transfer.
	readTimeout = 60 * time.Second
	// abortTimeout bounds the cleanup of a failed multipart upload, which runs even when the
	// caller's context is canceled.
	abortTimeout = 30 * time.Second
)

// Config says where the repository lives and how to reach it.
type Config struct {
	Bucket string
	// Prefix is the key prefix ("some/prefix"); leading and trailing slashes are ignored and
	// it must otherwise be a valid object name.
	Prefix string
	// Region; empty means AWS_REGION or the profile's region, else us-east-1. With AWS S3 and
	// no region configured, the bucket's region is discovered.
	Region string
	// Endpoint is the server's base URL ("https://minio.example:9000"); empty means
	// AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL (read by the SDK), else AWS S3.
	Endpoint string
	// PathStyle addresses buckets as endpoint/bucket/key rather than bucket.endpoint/key;
	// most S3-compatible servers need it.
	PathStyle bool
	// AccessKey and SecretKey are static credentials. Set both, or neither to use the AWS
	// default credential chain.
	AccessKey, SecretKey string
	// SSE is the server-side encryption: "", "AES256" or "aws:kms" (with SSEKMSKeyID, or the
	// account's default KMS key when empty).
	SSE         string
	SSEKMSKeyID string
	// StorageClass of new objects ("STANDARD_IA", ...); empty means the bucket's default.
	StorageClass string
	// PartSize is the multipart threshold and part size (default 16 MiB, at least 5 MiB).
	PartSize int64
	// Concurrency is the number of parts of one Put uploaded at once (default 4).
	Concurrency int
}

// Storage is a repo.Storage in an S3 bucket.
type Storage struct {
	client        *awss3.Client
	bucket        string
	prefix        string // "" or ends with "/"
	sse           types.ServerSideEncryption
	kmsKeyID      string
	storageClass  types.StorageClass
	partSize      int64
	concurrency   int
	partChecksums bool // send CRC32 checksums with parts (unless the SDK is told "when required")
	getChecksums  bool // ask Get to verify stored checksums (likewise)
	regionGuessed bool
}

var _ repo.Storage = (*Storage)(nil)

// ParseURL splits "s3://bucket/some/prefix" into bucket and prefix ("some/prefix", or ""
// without one).
func ParseURL(u string) (bucket, prefix string, err error) {
	rest, ok := strings.CutPrefix(u, "s3://")
	if !ok {
		return "", "", fmt.Errorf("parse S3 URL %q: does not start with s3://", u)
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	if err := checkBucket(bucket); err != nil {
		return "", "", fmt.Errorf("parse S3 URL %q: %w", u, err)
	}
	if strings.ContainsAny(prefix, "?#") {
		return "", "", fmt.Errorf("parse S3 URL %q: a query or fragment is not allowed", u)
	}
	if _, err := normPrefix(prefix); err != nil {
		return "", "", fmt.Errorf("parse S3 URL %q: %w", u, err)
	}
	return bucket, strings.Trim(prefix, "/"), nil
}

// checkBucket applies the bucket naming rules loosely: S3-compatible servers differ in the
// details, and the server has the last word.
func checkBucket(b string) error {
	if len(b) < 3 || len(b) > 63 {
		return fmt.Errorf("bucket name %q must be 3 to 63 characters long", b)
	}
	for _, c := range b {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || 'A' <= c && c <= 'Z') {
			return fmt.Errorf("bucket name %q may hold only letters, digits, '-', '.' and '_'", b)
		}
	}
	return nil
}

// checkName applies repo.ValidName plus the one rule of this backend: no control characters.
// Listings come back as XML, which cannot carry most of them and turns "\r" into "\n";
// URL-encoded listings would, but not every S3-compatible server implements them
// (versitygw 1.8 does not), and a name that cannot be listed back would break List.
func checkName(name string) error {
	if err := repo.ValidName(name); err != nil {
		return err
	}
	for _, c := range []byte(name) {
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("%w %q: contains a control character, which S3 listings cannot carry", repo.ErrInvalidName, name)
		}
	}
	return nil
}

// normPrefix returns the key prefix for Config.Prefix p: "" or a valid name plus "/".
func normPrefix(p string) (string, error) {
	p = strings.Trim(p, "/")
	if p == "" {
		return "", nil
	}
	if err := checkName(p); err != nil {
		return "", fmt.Errorf("prefix: %w", err)
	}
	return p + "/", nil
}

// Open returns the storage in an existing bucket. A missing bucket is an error wrapping
// fs.ErrNotExist, refused access one wrapping fs.ErrPermission, each with a sentence that
// says what to do.
func Open(ctx context.Context, c Config) (*Storage, error) {
	return open(ctx, c, false)
}

// Create is Open, but creates the bucket (in the configured region) when it is missing. It
// is meant for setting up a repository, so it also runs CheckConditionalWrites.
func Create(ctx context.Context, c Config) (*Storage, error) {
	s, err := open(ctx, c, true)
	if err != nil {
		return nil, err
	}
	if err := s.CheckConditionalWrites(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// CheckConditionalWrites writes a probe object twice and deletes it, to detect a server
// that ignores "If-None-Match: *" and silently replaces objects (one that refuses the header
// says so with 501 on every Put). On such a server write-once cannot be kept, so this is an
// error. The probe lives under ".probe/" below the prefix, which no repository object uses.
func (s *Storage) CheckConditionalWrites(ctx context.Context) error {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	name := ".probe/conditional-write-" + hex.EncodeToString(rnd[:])
	first, second := "first", "second write, must be refused"
	if err := s.Put(ctx, name, strings.NewReader(first), int64(len(first))); err != nil {
		return fmt.Errorf("check conditional writes: %w", err)
	}
	err := s.Put(ctx, name, strings.NewReader(second), int64(len(second)))
	if derr := s.Delete(context.WithoutCancel(ctx), name); derr != nil && err == nil {
		err = derr
	}
	switch {
	case errors.Is(err, repo.ErrExists):
		return nil
	case err == nil:
		return fmt.Errorf("check conditional writes: the server at %s replaced an object written with "+
			"\"If-None-Match: *\": it ignores conditional writes, so write-once objects cannot be guaranteed; "+
			"use a server that implements them (AWS S3, MinIO, Ceph RGW, versitygw)", s)
	}
	return fmt.Errorf("check conditional writes: %w", err)
}

func open(ctx context.Context, c Config, create bool) (*Storage, error) {
	s, err := newStorage(ctx, c)
	if err != nil {
		return nil, err
	}
	err = s.headBucket(ctx)
	if create && errors.Is(err, fs.ErrNotExist) {
		err = s.createBucket(ctx)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

func newStorage(ctx context.Context, c Config) (*Storage, error) {
	if err := checkBucket(c.Bucket); err != nil {
		return nil, fmt.Errorf("S3 configuration: %w", err)
	}
	prefix, err := normPrefix(c.Prefix)
	if err != nil {
		return nil, fmt.Errorf("S3 configuration: %w", err)
	}
	s := &Storage{
		bucket:       c.Bucket,
		prefix:       prefix,
		kmsKeyID:     c.SSEKMSKeyID,
		storageClass: types.StorageClass(c.StorageClass),
		partSize:     c.PartSize,
		concurrency:  c.Concurrency,
	}
	switch c.SSE {
	case "", "AES256", "aws:kms":
		s.sse = types.ServerSideEncryption(c.SSE)
	default:
		return nil, fmt.Errorf(`S3 configuration: server-side encryption %q is not one of "", "AES256", "aws:kms"`, c.SSE)
	}
	if c.SSEKMSKeyID != "" && c.SSE != "aws:kms" {
		return nil, errors.New(`S3 configuration: a KMS key id needs server-side encryption "aws:kms"`)
	}
	switch {
	case s.partSize == 0:
		s.partSize = DefaultPartSize
	case s.partSize < MinPartSize || s.partSize > MaxPartSize:
		return nil, fmt.Errorf("S3 configuration: part size %d is outside S3's limits of 5 MiB to 5 GiB", s.partSize)
	}
	switch {
	case s.concurrency == 0:
		s.concurrency = DefaultConcurrency
	case s.concurrency < 0:
		return nil, fmt.Errorf("S3 configuration: concurrency %d is negative", s.concurrency)
	}
	if (c.AccessKey == "") != (c.SecretKey == "") {
		return nil, errors.New("S3 configuration: set both the access key and the secret key, or neither to use the AWS credential chain")
	}
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			// The URL itself may hold a password: never echo it.
			return nil, errors.New("S3 configuration: the endpoint must be an http:// or https:// URL with a host")
		}
	}

	opts := []func(*config.LoadOptions) error{
		// One retry policy, repo/retry's, above every backend.
		config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }),
		config.WithHTTPClient(awshttp.NewBuildableClient().
			WithDialerOptions(func(d *net.Dialer) { d.Timeout = dialTimeout }).
			WithTransportOptions(func(tr *http.Transport) {
				// Workers upload in parallel: keep their connections instead of redialing.
				tr.MaxIdleConnsPerHost = 64
			}).
			WithReadTimeout(readTimeout)),
	}
	if c.Region != "" {
		opts = append(opts, config.WithRegion(c.Region))
	}
	if c.AccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(c.AccessKey, c.SecretKey, "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		// A broken profile or config file: repeating cannot help.
		return nil, &permanentError{fmt.Errorf("load AWS configuration: %w", err)}
	}
	if cfg.Region == "" {
		cfg.Region = defaultRegion
		s.regionGuessed = true
	}
	if cfg.Credentials == nil {
		return nil, errNoCredentials(nil)
	}
	// Ask for credentials now: a missing one should say so, not surface later as a
	// confusing error of the first request.
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("get AWS credentials: %w", ctx.Err())
		}
		return nil, errNoCredentials(err)
	}
	// AWS_REQUEST_CHECKSUM_CALCULATION / AWS_RESPONSE_CHECKSUM_VALIDATION = when_required
	// (or the profile's settings) are the way out for servers that choke on checksums.
	s.partChecksums = cfg.RequestChecksumCalculation != aws.RequestChecksumCalculationWhenRequired
	s.getChecksums = cfg.ResponseChecksumValidation != aws.ResponseChecksumValidationWhenRequired
	s.client = awss3.NewFromConfig(cfg, func(o *awss3.Options) {
		if c.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.Endpoint)
		}
		o.UsePathStyle = c.PathStyle
		o.Retryer = aws.NopRetryer{}
		// Get asks for checksum validation; multipart objects have only a checksum of
		// checksums, which the SDK would otherwise log about on every read.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	return s, nil
}

// errNoCredentials says that no credentials were found. It is permanent for repo/retry even
// when the chain's last try failed on the network (no instance metadata service answers off
// EC2): repeating the search would only delay this message.
func errNoCredentials(err error) error {
	const msg = "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, " +
		"or configure the access key and secret key, or run where an instance or web identity role is available"
	if err == nil {
		return errors.New(msg)
	}
	return &permanentError{fmt.Errorf("%s: %w", msg, err)}
}

// permanentError marks an error that repo/retry must not repeat although something in its
// chain looks transient (a network error of a credential provider, say).
type permanentError struct{ err error }

func (e *permanentError) Error() string   { return e.err.Error() }
func (e *permanentError) Unwrap() error   { return e.err }
func (e *permanentError) Transient() bool { return false }

// headBucket makes sure the bucket exists and is reachable with these credentials. With a
// guessed region it moves to the bucket's region when the server names another one.
func (s *Storage) headBucket(ctx context.Context) error {
	for moved := false; ; moved = true {
		out, err := s.client.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: &s.bucket})
		region := ""
		if err == nil && out.BucketRegion != nil {
			region = *out.BucketRegion
		} else if resp := httpResponse(err); resp != nil {
			region = resp.Header.Get("X-Amz-Bucket-Region")
		}
		if s.regionGuessed && !moved && region != "" && region != s.client.Options().Region {
			s.client = awss3.New(s.client.Options(), func(o *awss3.Options) { o.Region = region })
			continue
		}
		if err == nil {
			return nil
		}
		if status, _ := statusCode(err); status == http.StatusNotFound {
			// A HEAD answer has no body, so "404" is all it says, and not every server means
			// a missing bucket by it (versitygw answers an unknown access key so). A listing
			// of one key carries the error code that tells.
			_, lerr := s.client.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: &s.bucket, MaxKeys: aws.Int32(1)})
			if _, code := statusCode(lerr); code != "" {
				err = lerr
			}
		}
		return s.bucketError(err)
	}
}

// bucketError turns a bucket-level failure into a sentence for the user.
func (s *Storage) bucketError(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("check bucket %s: %w", s.bucket, err)
	}
	status, code := statusCode(err)
	switch {
	case status == http.StatusForbidden || code == "AccessDenied" || code == "SignatureDoesNotMatch" ||
		code == "InvalidAccessKeyId" || code == "XAdminUserNotFound": // versitygw's unknown key, with 404
		return &bucketErr{
			msg: fmt.Sprintf("access denied to bucket %s: check the credentials (AWS_ACCESS_KEY_ID/AWS_PROFILE) and the bucket policy", s.bucket),
			is:  fs.ErrPermission, err: err,
		}
	case code == "NoSuchBucket" || status == http.StatusNotFound:
		return &bucketErr{
			msg: fmt.Sprintf("bucket %s does not exist (create it, or run pgward init which creates it)", s.bucket),
			is:  fs.ErrNotExist, err: err,
		}
	case status == http.StatusMovedPermanently:
		return fmt.Errorf("bucket %s is not in region %s: set the region to the bucket's: %w",
			s.bucket, s.client.Options().Region, err)
	}
	return fmt.Errorf("check bucket %s: %w", s.bucket, classify(err))
}

// bucketErr is a bucket-level error: one sentence for the user with the server's status and
// code, errors.Is for fs.ErrNotExist or fs.ErrPermission, and the SDK's whole error (request
// IDs and all) in the chain for whoever digs.
type bucketErr struct {
	msg string
	is  error
	err error
}

func (e *bucketErr) Error() string {
	status, code := statusCode(e.err)
	switch {
	case code != "" && code != http.StatusText(status):
		return fmt.Sprintf("%s (HTTP %d %s)", e.msg, status, code)
	case status != 0:
		return fmt.Sprintf("%s (HTTP %d)", e.msg, status)
	}
	return e.msg + ": " + e.err.Error()
}

func (e *bucketErr) Is(target error) bool { return target == e.is }
func (e *bucketErr) Unwrap() error        { return e.err }
func (e *bucketErr) Transient() bool      { return false }

func (s *Storage) createBucket(ctx context.Context) error {
	in := &awss3.CreateBucketInput{Bucket: &s.bucket}
	if region := s.client.Options().Region; region != defaultRegion {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{
			LocationConstraint: types.BucketLocationConstraint(region),
		}
	}
	_, err := s.client.CreateBucket(ctx, in)
	var owned *types.BucketAlreadyOwnedByYou
	var taken *types.BucketAlreadyExists
	switch {
	case err == nil, errors.As(err, &owned):
		return nil
	case errors.As(err, &taken):
		return fmt.Errorf("create bucket %s: the name is taken by another account; choose another bucket name: %w", s.bucket, err)
	}
	if status, _ := statusCode(err); status == http.StatusForbidden {
		return fmt.Errorf("create bucket %s: access denied: the credentials may not create buckets; create it yourself: %w", s.bucket, err)
	}
	return fmt.Errorf("create bucket %s: %w", s.bucket, classify(err))
}

// String returns "s3://bucket/prefix", or "s3://bucket" without a prefix.
func (s *Storage) String() string {
	if s.prefix == "" {
		return "s3://" + s.bucket
	}
	return "s3://" + s.bucket + "/" + strings.TrimSuffix(s.prefix, "/")
}

// url names the object with key for messages.
func (s *Storage) url(key string) string { return "s3://" + s.bucket + "/" + key }

// httpResponse returns the HTTP response behind an SDK error, if there was one. The SDK
// also wraps a request that never got an answer (a reset connection) in a ResponseError,
// with status 0: that is no response.
func httpResponse(err error) *http.Response {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil && re.Response.Response != nil && re.Response.StatusCode != 0 {
		return re.Response.Response
	}
	return nil
}

// statusCode returns the HTTP status (0 without a response) and the S3 error code ("" if
// none) of an SDK error.
func statusCode(err error) (int, string) {
	status := 0
	if resp := httpResponse(err); resp != nil {
		status = resp.StatusCode
	}
	var api smithy.APIError
	code := ""
	if errors.As(err, &api) {
		code = api.ErrorCode()
	}
	return status, code
}

// responseError is a server's answer other than the ones mapped to repo errors. It keeps the
// SDK error in the chain and classifies it for repo/retry.
type responseError struct {
	err       error
	transient bool
}

func (e *responseError) Error() string   { return e.err.Error() }
func (e *responseError) Unwrap() error   { return e.err }
func (e *responseError) Transient() bool { return e.transient }

// classify marks an SDK error that carries a server response as transient or permanent.
// Errors without a response (the connection failed) are left as they are: repo/retry knows
// network errors.
func classify(err error) error {
	if httpResponse(err) == nil {
		return err
	}
	status, code := statusCode(err)
	return &responseError{err: err, transient: transient(status, code)}
}

// transient reports whether a server answer may change if the request is repeated.
func transient(status int, code string) bool {
	switch code {
	case "SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout",
		"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded",
		"BandwidthLimitExceeded", "RequestThrottled",
		// A conditional write raced another one; repeating settles who won.
		"ConditionalRequestConflict", "OperationAborted":
		return true
	case "NotImplemented":
		return false
	}
	return status >= 500 || status == http.StatusTooManyRequests || status == http.StatusRequestTimeout
}

// isNotFound reports whether an SDK error says the key does not exist. NoSuchBucket is not
// among them: a vanished bucket must not look like an empty repository.
func isNotFound(err error) bool {
	status, code := statusCode(err)
	if code == "NoSuchBucket" {
		return false
	}
	return code == "NoSuchKey" || code == "NotFound" || status == http.StatusNotFound
}

// opError builds the error of an operation on key.
func (s *Storage) opError(op, key string, err error) error {
	if _, code := statusCode(err); code == "NoSuchBucket" {
		return fmt.Errorf("%s %s: bucket %s does not exist: %w", op, s.url(key), s.bucket, &responseError{err: err})
	}
	return fmt.Errorf("%s %s: %w", op, s.url(key), classify(err))
}

// Get implements repo.Storage. The reader streams the object from the server.
func (s *Storage) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	key := s.prefix + name
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get %s: %w", s.url(key), err)
	}
	in := &awss3.GetObjectInput{Bucket: &s.bucket, Key: &key}
	if s.getChecksums {
		// Verify the checksum the object was stored with, when it has one (free: S3 keeps it).
		in.ChecksumMode = types.ChecksumModeEnabled
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("get %s: %w", s.url(key), repo.ErrNotFound)
		}
		return nil, s.opError("get", key, err)
	}
	return reusableBody{out.Body}, nil
}

// GetRange implements repo.Storage with a ranged GetObject.
func (s *Storage) GetRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	key := s.prefix + name
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get %s: %w", s.url(key), err)
	}
	if offset < 0 || length <= 0 {
		if length == 0 && offset >= 0 {
			return io.NopCloser(bytes.NewReader(nil)), nil
		}
		return nil, fmt.Errorf("get %s: invalid range %d+%d", s.url(key), offset, length)
	}
	rng := fmt.Sprintf("bytes=%d-%d", offset, offset+length-1)
	out, err := s.client.GetObject(ctx, &awss3.GetObjectInput{Bucket: &s.bucket, Key: &key, Range: &rng})
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("get %s: %w", s.url(key), repo.ErrNotFound)
		}
		return nil, s.opError("get", key, err)
	}
	if out.ContentLength == nil || *out.ContentLength != length {
		out.Body.Close()
		return nil, fmt.Errorf("get %s: range %d+%d is past the object's end", s.url(key), offset, length)
	}
	return reusableBody{out.Body}, nil
}

// Stat implements repo.Storage with HeadObject.
func (s *Storage) Stat(ctx context.Context, name string) (repo.ObjectInfo, error) {
	if err := checkName(name); err != nil {
		return repo.ObjectInfo{}, fmt.Errorf("stat: %w", err)
	}
	key := s.prefix + name
	if err := ctx.Err(); err != nil {
		return repo.ObjectInfo{}, fmt.Errorf("stat %s: %w", s.url(key), err)
	}
	out, err := s.head(ctx, key)
	if err != nil {
		if isNotFound(err) {
			return repo.ObjectInfo{}, fmt.Errorf("stat %s: %w", s.url(key), repo.ErrNotFound)
		}
		return repo.ObjectInfo{}, s.opError("stat", key, err)
	}
	return s.objectInfo("stat", key, name, out.ContentLength, out.LastModified)
}

func (s *Storage) head(ctx context.Context, key string) (*awss3.HeadObjectOutput, error) {
	return s.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
}

// objectInfo describes an object the same way for Stat and List. Last-Modified is set by
// the server's clock when the upload began; S3 keeps it to the second, but some servers
// list it with fractions that their HEAD answer drops, so it is truncated to the second for
// both to agree. The S3 API always sends it: a server that does not is not one the
// repository can describe objects of, and says so rather than report a zero time.
func (s *Storage) objectInfo(op, key, name string, size *int64, modTime *time.Time) (repo.ObjectInfo, error) {
	if modTime == nil || modTime.IsZero() {
		return repo.ObjectInfo{}, &permanentError{fmt.Errorf("%s %s: the server sent no Last-Modified time", op, s.url(key))}
	}
	return repo.ObjectInfo{Name: name, Size: aws.ToInt64(size), ModTime: modTime.Truncate(time.Second)}, nil
}

// PutDeferred implements repo.Storage: a successful PUT is durable under its name at once,
// so there is nothing to defer.
func (s *Storage) PutDeferred(ctx context.Context, name string, r io.Reader, size int64) error {
	return s.Put(ctx, name, r, size)
}

// SyncDeferred implements repo.Storage: PutDeferred left nothing to do.
func (s *Storage) SyncDeferred(context.Context) error { return nil }

// List implements repo.Storage with ListObjectsV2, a page of up to 1000 keys per request.
func (s *Storage) List(ctx context.Context, prefix string, fn func(repo.ObjectInfo) error) error {
	full := s.prefix + prefix
	p := awss3.NewListObjectsV2Paginator(s.client, &awss3.ListObjectsV2Input{
		Bucket: &s.bucket,
		Prefix: &full,
		// Keys travel URL-encoded where the server supports it (it says so in the answer):
		// then no XML parser rewrites them on the way.
		EncodingType: types.EncodingTypeUrl,
	})
	last := ""
	for p.HasMorePages() {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("list %s: %w", s.url(full), err)
		}
		page, err := p.NextPage(ctx)
		if err != nil {
			return s.opError("list", full, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if page.EncodingType == types.EncodingTypeUrl {
				if key, err = url.QueryUnescape(key); err != nil {
					return fmt.Errorf("list %s: server sent a badly encoded key %q: %w", s.url(full), aws.ToString(o.Key), err)
				}
			}
			if !strings.HasPrefix(key, full) {
				continue // a server that interprets the prefix as a path, e.g. "a/../"
			}
			name := key[len(s.prefix):]
			if checkName(name) != nil {
				continue // not an object of ours
			}
			if name <= last && last != "" {
				return fmt.Errorf("list %s: server listed %q after %q, out of lexical order", s.url(full), name, last)
			}
			last = name
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("list %s: %w", s.url(full), err)
			}
			info, err := s.objectInfo("list", key, name, o.Size, o.LastModified)
			if err != nil {
				return err
			}
			if err := fn(info); err != nil {
				return err
			}
		}
	}
	return nil
}

// Delete implements repo.Storage. S3 answers a delete of a missing key with success; some
// servers answer 404, which is success too.
func (s *Storage) Delete(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	key := s.prefix + name
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %s: %w", s.url(key), err)
	}
	_, err := s.client.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil && !isNotFound(err) {
		return s.opError("delete", key, err)
	}
	return nil
}
