package gcs

import (
	"context"
	"fmt"
	"net/http"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
)

// scopeReadWrite lets the token read, write and delete objects and create buckets.
const scopeReadWrite = "https://www.googleapis.com/auth/devstorage.read_write"

// defaultCredentials finds the application default credentials and gets a first token, so
// that a missing or broken credential says so at Open rather than surfacing as a confusing
// error of the first request. Token requests go through client (the Storage's transport,
// without credentials).
func defaultCredentials(ctx context.Context, client *http.Client) (*google.Credentials, error) {
	// The token source keeps this context for every later refresh: it must outlive Open's.
	tctx := context.WithValue(context.Background(), oauth2.HTTPClient, client)
	creds, err := google.FindDefaultCredentials(tctx, scopeReadWrite)
	if err != nil {
		return nil, errNoCredentials(err)
	}
	// TokenSource.Token takes no context: wait for it here, so that Open stays cancelable.
	done := make(chan error, 1)
	go func() {
		_, err := creds.TokenSource.Token()
		done <- err
	}()
	select {
	case err = <-done:
	case <-ctx.Done():
		return nil, fmt.Errorf("get Google credentials: %w", ctx.Err())
	}
	if err != nil {
		return nil, errNoCredentials(err)
	}
	return creds, nil
}

// errNoCredentials says that no usable credentials were found. It is permanent for
// repo/retry: repeating the search would only delay this message.
func errNoCredentials(err error) error {
	return &permanentError{fmt.Errorf("no usable Google credentials: set %s to a credentials file (a service account key), "+
		"run 'gcloud auth application-default login', or run on Google Cloud with a service account: %w", envCredentials, &oneLineError{err})}
}

// oneLineError says err on one line (the token endpoint's answer comes on a line of its
// own) and keeps it in the chain.
type oneLineError struct{ err error }

func (e *oneLineError) Error() string { return oneLine(e.err.Error(), 1000) }
func (e *oneLineError) Unwrap() error { return e.err }

// authorizedClient returns a client whose requests carry a token of creds (the token source
// caches it and refreshes it before it expires).
func authorizedClient(tr http.RoundTripper, creds *google.Credentials) *http.Client {
	return newClient(&oauth2.Transport{Source: creds.TokenSource, Base: tr})
}
