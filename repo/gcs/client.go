package gcs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// defaultEndpoint is Google's JSON API.
const defaultEndpoint = "https://storage.googleapis.com/storage/v1/"

// endpoints are the two base URLs of the JSON API: metadata requests and downloads go to
// base ("…/storage/v1/"), uploads to upload ("…/upload/storage/v1/", on the same host: the
// API puts uploads under /upload at the host's root, as Google's client libraries do).
type endpoints struct {
	base   string
	upload string
	plain  bool // http: an emulator, which gets no credentials
}

// parseEndpoint checks Config.Endpoint ("" is Google's) and derives the upload URL.
func parseEndpoint(e string) (endpoints, error) {
	if e == "" {
		e = defaultEndpoint
	}
	u, err := url.Parse(e)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.Fragment != "" {
		// The URL itself may hold a secret: never echo it.
		return endpoints{}, errors.New("GCS configuration: the endpoint must be an http:// or https:// URL with a host")
	}
	if !strings.HasSuffix(e, "/") {
		e += "/"
	}
	return endpoints{
		base:   e,
		upload: u.Scheme + "://" + u.Host + "/upload/storage/v1/",
		plain:  u.Scheme == "http",
	}, nil
}

// newTransport returns the transport of one Storage: the timeouts above, and enough idle
// connections for the workers that upload in parallel.
func newTransport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	tr.ResponseHeaderTimeout = headerTimeout
	tr.MaxIdleConnsPerHost = 64
	return tr
}

// newClient returns a client over rt that follows no redirects: the JSON API does not send
// any, and one followed would take the request's token to wherever it points.
func newClient(rt http.RoundTripper) *http.Client {
	return &http.Client{
		Transport:     rt,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// escapeName escapes an object or bucket name as one path segment: slashes included, and
// '+', which some servers read as a space even in a path.
func escapeName(name string) string {
	return strings.ReplaceAll(url.PathEscape(name), "+", "%2B")
}

// bucketURL is the bucket's URL under base, e.g. base+"b/bucket".
func (s *Storage) bucketURL(base string) string { return base + "b/" + escapeName(s.bucket) }

// objectURL is the object resource of key: base+"b/bucket/o/"+escaped key, with query q.
func (s *Storage) objectURL(key string, q url.Values) string {
	return withQuery(s.bucketURL(s.api.base)+"/o/"+escapeName(key), q)
}

func withQuery(u string, q url.Values) string {
	if len(q) == 0 {
		return u
	}
	return u + "?" + q.Encode()
}

// newRequest is http.NewRequestWithContext for the URLs built here, which are always valid.
func newRequest(ctx context.Context, method, u string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, &permanentError{fmt.Errorf("build request: %w", err)}
	}
	req.Header.Set("User-Agent", "pgward")
	return req, nil
}

// do sends req. A response whose status is not among ok is read, closed and returned as a
// *StatusError; a failure to get an answer as a *transportError.
func (s *Storage) do(req *http.Request, ok ...int) (*http.Response, error) {
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, &transportError{err: err}
	}
	for _, code := range ok {
		if resp.StatusCode == code {
			return resp, nil
		}
	}
	defer resp.Body.Close()
	return nil, readStatusError(resp)
}

// getJSON sends a GET to u and decodes the 200 answer's JSON into v.
func (s *Storage) getJSON(ctx context.Context, u string, v any) error {
	req, err := newRequest(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := s.do(req, http.StatusOK)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return decodeJSON(resp, v)
}

// decodeJSON reads a JSON answer into v. A body that is not what was asked for (a proxy's
// page, say) is a permanent error.
func decodeJSON(resp *http.Response, v any) error {
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return &transportError{err: err} // the connection ended early
		}
		return &permanentError{fmt.Errorf("decode the server's answer (HTTP %d): %w", resp.StatusCode, err)}
	}
	return nil
}
