// Package azure keeps repository objects as block blobs in an Azure Blob Storage container
// (or Azurite, Microsoft's emulator). Object name n is the blob Prefix+"/"+n, or n when
// there is no prefix.
//
// How the repo.Storage promises map onto Azure:
//   - Write once: every write is conditional. Put Blob and Put Block List carry
//     "If-None-Match: *", so the service refuses to replace an existing blob (409
//     BlobAlreadyExists or 412 ConditionNotMet, reported as repo.ErrExists) atomically, also
//     against a racing writer.
//   - Atomic visibility and durability: a blob exists only once Put Blob or Put Block List
//     succeeded, and then it is durable (Azure acknowledges a write once it is stored in
//     every replica of the account's redundancy). Staged blocks that were never committed
//     are not blobs: no listing shows them, and Azure discards them after a week. There is
//     no directory to sync, so PutDeferred is Put and SyncDeferred does nothing.
//   - Bounded memory: an object of at most BlockSize bytes is read into one pooled buffer and
//     sent with one Put Blob; a larger one is staged in BlockSize blocks, at most Concurrency
//     in flight, then committed.
//   - ModTime is the blob's Last-Modified (whole seconds), the same in Get Properties and
//     List Blobs.
//   - List Blobs returns names in byte order; List checks it, since callers and the retry
//     wrapper's resume rely on it. Names with control characters are refused: the XML
//     listing cannot carry them back.
//
// Errors: a missing blob is repo.ErrNotFound, a taken name repo.ErrExists. Other service
// answers keep the SDK's *azcore.ResponseError in their chain and say through Transient()
// whether repeating may help (5xx, 408, 429) or not (403, a missing container, other 4xx).
// The SDK's own retries are off: repo/retry is the one retry policy.
//
// Credentials come from the environment, the way Azure's tools take them, never from
// options: AZURE_STORAGE_CONNECTION_STRING; or AZURE_STORAGE_ACCOUNT with
// AZURE_STORAGE_KEY (shared key) or AZURE_STORAGE_SAS_TOKEN; or else the Azure identity
// chain (azidentity's DefaultAzureCredential: service principal variables, workload
// identity, managed identity, the Azure CLI's login). No credential ever appears in an
// error or String.
package azure

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

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/internal/objname"
)

const (
	// DefaultBlockSize is the single-request threshold and block size when Config.BlockSize is 0.
	DefaultBlockSize = 16 << 20
	// DefaultConcurrency is the number of blocks of one Put in flight when Config.Concurrency is 0.
	DefaultConcurrency = 4
	// maxBlocks is Azure's limit on the blocks of one blob.
	maxBlocks = 50000
)

// Timeouts of one HTTP request. The retry wrapper decides what happens after one fires.
const (
	dialTimeout = 10 * time.Second
	// headerTimeout fails a request whose answer does not begin within this time.
	headerTimeout = 60 * time.Second
)

// Environment variables read for credentials, as Azure's own tools name them.
const (
	envAccount          = "AZURE_STORAGE_ACCOUNT"
	envKey              = "AZURE_STORAGE_KEY"
	envSAS              = "AZURE_STORAGE_SAS_TOKEN"
	envConnectionString = "AZURE_STORAGE_CONNECTION_STRING"
)

// Config says where the repository lives.
type Config struct {
	Container string
	// Prefix is the blob name prefix ("some/prefix"); leading and trailing slashes are
	// ignored and it must otherwise be a valid object name.
	Prefix string
	// Endpoint is the account's blob service URL ("https://account.blob.core.windows.net",
	// "http://127.0.0.1:10000/devstoreaccount1" for Azurite); empty means the public cloud's
	// endpoint of AZURE_STORAGE_ACCOUNT.
	Endpoint string
	// BlockSize is the single-request threshold and block size (default 16 MiB).
	BlockSize int64
	// Concurrency is the number of blocks of one Put staged at once (default 4).
	Concurrency int
	// Getenv reads the environment; nil means os.Getenv. Tests give their own.
	Getenv func(string) string
}

// Storage is a repo.Storage in an Azure Blob Storage container.
type Storage struct {
	client      *container.Client
	container   string
	prefix      string // "" or ends with "/"
	blockSize   int64
	concurrency int
}

var _ repo.Storage = (*Storage)(nil)

// ParseURL splits "azure://container/some/prefix" into container and prefix ("some/prefix",
// or "" without one).
func ParseURL(u string) (containerName, prefix string, err error) {
	return objname.ParseURL(u, "azure", "Azure", checkContainer)
}

// checkContainer applies Azure's container naming rules: 3 to 63 lowercase letters, digits
// and hyphens, starting with a letter or digit, no two hyphens in a row.
func checkContainer(c string) error {
	if len(c) < 3 || len(c) > 63 {
		return fmt.Errorf("container name %q must be 3 to 63 characters long", c)
	}
	for i, r := range c {
		ok := 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' && i > 0 && c[i-1] != '-'
		if !ok {
			return fmt.Errorf("container name %q may hold only lowercase letters, digits and single hyphens, and must start with a letter or digit", c)
		}
	}
	if strings.HasSuffix(c, "-") {
		return fmt.Errorf("container name %q must not end with a hyphen", c)
	}
	return nil
}

// checkName applies objname.CheckName: repo.ValidName without control characters.
func checkName(name string) error { return objname.CheckName(name, "Azure") }

// normPrefix returns the name prefix for Config.Prefix p: "" or a valid name plus "/".
func normPrefix(p string) (string, error) { return objname.Prefix(p, "Azure") }

// Open returns the storage in an existing container. A missing container is an error
// wrapping fs.ErrNotExist, refused access one wrapping fs.ErrPermission, each with a
// sentence that says what to do.
func Open(ctx context.Context, c Config) (*Storage, error) {
	return open(ctx, c, false)
}

// Create is Open, but creates the container when it is missing (for pgward init).
func Create(ctx context.Context, c Config) (*Storage, error) {
	return open(ctx, c, true)
}

func open(ctx context.Context, c Config, create bool) (*Storage, error) {
	s, err := newStorage(c)
	if err != nil {
		return nil, err
	}
	err = s.checkContainer(ctx)
	if create && errors.Is(err, fs.ErrNotExist) {
		err = s.createContainer(ctx)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

func newStorage(c Config) (*Storage, error) {
	if err := checkContainer(c.Container); err != nil {
		return nil, fmt.Errorf("Azure configuration: %w", err)
	}
	prefix, err := normPrefix(c.Prefix)
	if err != nil {
		return nil, fmt.Errorf("Azure configuration: %w", err)
	}
	s := &Storage{container: c.Container, prefix: prefix, blockSize: c.BlockSize, concurrency: c.Concurrency}
	if s.blockSize == 0 {
		s.blockSize = DefaultBlockSize
	}
	if s.blockSize < 64<<10 || s.blockSize > 4000<<20 {
		return nil, fmt.Errorf("Azure configuration: block size %d is outside 64 KiB to 4000 MiB", s.blockSize)
	}
	if s.concurrency == 0 {
		s.concurrency = DefaultConcurrency
	}
	if s.concurrency < 0 {
		return nil, fmt.Errorf("Azure configuration: concurrency %d is negative", s.concurrency)
	}
	s.client, err = newClient(c)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// clientOptions turn the SDK's retries off (repo/retry is the one policy) and bound how
// long a request may wait for its answer.
func clientOptions() *container.ClientOptions {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	tr.ResponseHeaderTimeout = headerTimeout
	tr.MaxIdleConnsPerHost = 64 // workers upload in parallel: keep their connections
	return &container.ClientOptions{ClientOptions: policy.ClientOptions{
		Retry:     policy.RetryOptions{MaxRetries: -1},
		Transport: &http.Client{Transport: tr},
		Telemetry: policy.TelemetryOptions{ApplicationID: "pgward"},
	}}
}

// newClient picks the credentials from the environment (see the package comment).
func newClient(c Config) (*container.Client, error) {
	getenv := c.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	opts := clientOptions()
	if cs := getenv(envConnectionString); cs != "" {
		if c.Endpoint != "" {
			return nil, errors.New("Azure configuration: " + envConnectionString + " names the endpoint itself; do not also set the Azure endpoint option")
		}
		cl, err := container.NewClientFromConnectionString(cs, c.Container, opts)
		if err != nil {
			// The SDK's message may quote the string, which holds the key: never echo it.
			return nil, &permanentError{errors.New("Azure configuration: " + envConnectionString + " is not a valid connection string")}
		}
		return cl, nil
	}
	account, key, sas := getenv(envAccount), getenv(envKey), strings.TrimPrefix(getenv(envSAS), "?")
	endpoint, err := serviceURL(c.Endpoint, account)
	if err != nil {
		return nil, err
	}
	containerURL := endpoint + "/" + c.Container
	switch {
	case key != "":
		if account == "" {
			return nil, errors.New("Azure configuration: " + envKey + " is set but " + envAccount + " is not: set the storage account's name too")
		}
		cred, err := container.NewSharedKeyCredential(account, key)
		if err != nil {
			return nil, &permanentError{errors.New("Azure configuration: " + envKey + " is not a valid account key (it must be base64, as the portal shows it)")}
		}
		return container.NewClientWithSharedKeyCredential(containerURL, cred, opts)
	case sas != "":
		return container.NewClientWithNoCredential(containerURL+"?"+sas, opts)
	}
	if strings.HasPrefix(endpoint, "http://") {
		return nil, &permanentError{fmt.Errorf("no Azure credentials for the plain-http endpoint %s: set %s and %s, or %s (tokens of the Azure identity chain are only sent over https)",
			endpoint, envAccount, envKey, envSAS)}
	}
	cred, err := azidentity.NewDefaultAzureCredential(nil)
	if err != nil {
		return nil, &permanentError{fmt.Errorf("no Azure credentials found: set %s and %s, or %s, or %s, or run where a managed identity or an Azure CLI login is available: %s",
			envAccount, envKey, envSAS, envConnectionString, oneLine(err))}
	}
	return container.NewClient(containerURL, cred, opts)
}

// serviceURL returns the blob service URL without a trailing slash: the endpoint option,
// or the public cloud's endpoint of account.
func serviceURL(endpoint, account string) (string, error) {
	if endpoint == "" {
		if account == "" {
			return "", errors.New("Azure configuration: no storage account: set " + envAccount + ", or the Azure endpoint option")
		}
		return "https://" + account + ".blob.core.windows.net", nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.User != nil {
		// The URL itself may hold a secret: never echo it.
		return "", errors.New("Azure configuration: the endpoint must be an http:// or https:// URL with a host and no query (give a SAS token in " + envSAS + ")")
	}
	return strings.TrimSuffix(endpoint, "/"), nil
}

// checkContainer makes sure the container exists and is readable with these credentials.
// It lists one blob rather than reading the container's properties: a SAS token or a role
// scoped to the blobs may list them without being allowed to read the container itself.
func (s *Storage) checkContainer(ctx context.Context) error {
	one := int32(1)
	p := s.client.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{MaxResults: &one, Prefix: &s.prefix})
	_, err := p.NextPage(ctx)
	if err == nil {
		return nil
	}
	return s.containerError(err)
}

// containerError turns a container-level failure into a sentence for the user.
func (s *Storage) containerError(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("check container %s: %w", s.container, err)
	}
	status, code := statusCode(err)
	var authErr *azidentity.AuthenticationFailedError
	var nonRetriable interface{ NonRetriable() }
	switch {
	case status == 0 && (errors.As(err, &authErr) || errors.As(err, &nonRetriable)):
		return &permanentError{fmt.Errorf("no Azure credentials could be obtained for container %s: set %s and %s, or %s, or %s, or run where a managed identity or an Azure CLI login is available: %s",
			s.container, envAccount, envKey, envSAS, envConnectionString, oneLine(err))}
	case code == string(bloberror.ContainerNotFound) || status == http.StatusNotFound:
		return &containerErr{msg: fmt.Sprintf("container %s does not exist (create it, or run pgward init which creates it)", s.container),
			is: fs.ErrNotExist, err: err}
	case status == http.StatusForbidden || status == http.StatusUnauthorized:
		return &containerErr{msg: fmt.Sprintf("access denied to container %s: check the credentials (%s and %s, %s, or the identity's role assignment, e.g. Storage Blob Data Contributor)",
			s.container, envAccount, envKey, envSAS), is: fs.ErrPermission, err: err}
	}
	return fmt.Errorf("check container %s: %w", s.container, classify(err))
}

// containerErr is a container-level error: one sentence for the user with the service's
// status and code, errors.Is for fs.ErrNotExist or fs.ErrPermission, and the SDK's error in
// the chain for whoever digs.
type containerErr struct {
	msg string
	is  error
	err error
}

func (e *containerErr) Error() string {
	status, code := statusCode(e.err)
	switch {
	case code != "":
		return fmt.Sprintf("%s (HTTP %d %s)", e.msg, status, code)
	case status != 0:
		return fmt.Sprintf("%s (HTTP %d)", e.msg, status)
	}
	return e.msg + ": " + oneLine(e.err)
}

func (e *containerErr) Is(target error) bool { return target == e.is }
func (e *containerErr) Unwrap() error        { return e.err }
func (e *containerErr) Transient() bool      { return false }

func (s *Storage) createContainer(ctx context.Context) error {
	_, err := s.client.Create(ctx, nil)
	if err == nil || bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return nil
	}
	if status, _ := statusCode(err); status == http.StatusForbidden {
		return fmt.Errorf("create container %s: access denied: the credentials may not create containers; create it yourself: %w", s.container, classify(err))
	}
	return fmt.Errorf("create container %s: %w", s.container, classify(err))
}

// String returns "azure://container/prefix", or "azure://container" without a prefix.
func (s *Storage) String() string {
	if s.prefix == "" {
		return "azure://" + s.container
	}
	return "azure://" + s.container + "/" + strings.TrimSuffix(s.prefix, "/")
}

// url names the blob with name key for messages.
func (s *Storage) url(key string) string { return "azure://" + s.container + "/" + key }

// statusCode returns the HTTP status (0 without a response) and the Azure error code (""
// if none) of an SDK error.
func statusCode(err error) (int, string) {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode, re.ErrorCode
	}
	return 0, ""
}

// responseError is a service answer other than the ones mapped to repo errors. It keeps the
// SDK error in the chain and classifies it for repo/retry.
type responseError struct {
	err       error
	transient bool
}

// Error says the status and Azure's error code on one line (the SDK's own message spans
// a dozen lines with the request and the response body); the operation and blob are in the
// message that wraps it, the SDK's error in the chain.
func (e *responseError) Error() string {
	var re *azcore.ResponseError
	if errors.As(e.err, &re) {
		if re.ErrorCode != "" {
			return fmt.Sprintf("HTTP %d %s", re.StatusCode, re.ErrorCode)
		}
		return fmt.Sprintf("HTTP %d", re.StatusCode)
	}
	return oneLine(e.err)
}
func (e *responseError) Unwrap() error   { return e.err }
func (e *responseError) Transient() bool { return e.transient }

// oneLine says err on one line: the SDK and the identity chain spread theirs over several.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// permanentError marks an error that repo/retry must not repeat.
type permanentError struct{ err error }

func (e *permanentError) Error() string   { return e.err.Error() }
func (e *permanentError) Unwrap() error   { return e.err }
func (e *permanentError) Transient() bool { return false }

// classify marks an SDK error that carries a service answer as transient or permanent.
// Errors without one (the connection failed) are left as they are: repo/retry knows
// network errors. A credential that could not be obtained is permanent: repeating the
// search would only delay the message.
func classify(err error) error {
	var authErr *azidentity.AuthenticationFailedError
	var nonRetriable interface{ NonRetriable() } // azcore's mark of a credential that cannot be had
	if errors.As(err, &authErr) || errors.As(err, &nonRetriable) {
		return &permanentError{err}
	}
	status, _ := statusCode(err)
	if status == 0 {
		return err
	}
	return &responseError{err: err, transient: status >= 500 || status == http.StatusTooManyRequests || status == http.StatusRequestTimeout}
}

// isNotFound reports whether an SDK error says the blob does not exist. A missing container
// is not among them: it must not look like an empty repository.
func isNotFound(err error) bool {
	status, code := statusCode(err)
	if code == string(bloberror.ContainerNotFound) {
		return false
	}
	return code == string(bloberror.BlobNotFound) || status == http.StatusNotFound
}

// opError builds the error of an operation on key.
func (s *Storage) opError(op, key string, err error) error {
	if bloberror.HasCode(err, bloberror.ContainerNotFound) {
		return fmt.Errorf("%s %s: container %s does not exist: %w", op, s.url(key), s.container, &responseError{err: err})
	}
	return fmt.Errorf("%s %s: %w", op, s.url(key), classify(err))
}
