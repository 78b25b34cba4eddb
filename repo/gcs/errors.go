package gcs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strings"

	"golang.org/x/oauth2"

	"github.com/pgward/pgward/repo/retry"
)

// StatusError is an answer of the server other than the ones an operation expects, with
// what GCS says about it: its JSON error's first reason and its message (or the start of a
// body that is not JSON).
type StatusError struct {
	StatusCode int
	Reason     string // e.g. "notFound", "conditionNotMet", "rateLimitExceeded"; may be ""
	Message    string
}

// maxErrorBody bounds what is read of an error answer.
const maxErrorBody = 8 << 10

// readStatusError reads the body of a failed request into a StatusError.
func readStatusError(resp *http.Response) *StatusError {
	e := &StatusError{StatusCode: resp.StatusCode}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var j struct {
		Error struct {
			Message string `json:"message"`
			Errors  []struct {
				Reason string `json:"reason"`
			} `json:"errors"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &j) == nil && j.Error.Message != "" {
		e.Message = j.Error.Message
		if len(j.Error.Errors) > 0 {
			e.Reason = j.Error.Errors[0].Reason
		}
	} else {
		e.Message = string(body)
	}
	e.Message = oneLine(e.Message, 300)
	return e
}

// Error says "HTTP 404 notFound: No such object: b/k" on one line.
func (e *StatusError) Error() string {
	s := fmt.Sprintf("HTTP %d", e.StatusCode)
	if e.Reason != "" {
		s += " " + e.Reason
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Transient: server trouble (5xx), a timeout (408) and throttling (429) may pass; the rest
// (401, 403, 404, a failed precondition, a bad request) will not.
func (e *StatusError) Transient() bool { return transientStatus(e.StatusCode) }

func transientStatus(code int) bool {
	return code >= 500 || code == http.StatusRequestTimeout || code == http.StatusTooManyRequests
}

// bucketMissing reports whether a 404 is about the bucket rather than the object: GCS says
// "The specified bucket does not exist.", fake-gcs-server "bucket not found".
func (e *StatusError) bucketMissing() bool {
	m := strings.ToLower(e.Message)
	return e.StatusCode == http.StatusNotFound &&
		(strings.Contains(m, "bucket does not exist") || strings.Contains(m, "bucket not found"))
}

// oneLine squeezes s onto one line of at most max bytes (error bodies may be pages).
func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

// statusCode returns the status of a StatusError in err's chain, 0 without one.
func statusCode(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.StatusCode
	}
	return 0
}

// transportError is a request that got no answer: the connection failed, timed out, or the
// token for it could not be had.
type transportError struct {
	err error
}

func (e *transportError) Error() string { return oneLine(e.err.Error(), 500) }
func (e *transportError) Unwrap() error { return e.err }

// Transient: a token endpoint's answer is classified like the server's; the rest as
// repo/retry classifies failed connections (refused, reset, timed out: yes; a certificate
// that does not verify or a canceled context: no).
func (e *transportError) Transient() bool {
	var re *oauth2.RetrieveError
	if errors.As(e.err, &re) && re.Response != nil {
		return transientStatus(re.Response.StatusCode)
	}
	return retry.IsTransient(e.err)
}

// permanentError marks an error that repo/retry must not repeat.
type permanentError struct{ err error }

func (e *permanentError) Error() string   { return e.err.Error() }
func (e *permanentError) Unwrap() error   { return e.err }
func (e *permanentError) Transient() bool { return false }

// opError builds the error of an operation on key: "get gs://b/k: HTTP 503 ...". A missing
// bucket says so, permanent.
func (s *Storage) opError(op, key string, err error) error {
	var se *StatusError
	if errors.As(err, &se) && se.bucketMissing() {
		return fmt.Errorf("%s %s: bucket %s does not exist: %w", op, s.url(key), s.bucket, err)
	}
	return fmt.Errorf("%s %s: %w", op, s.url(key), err)
}

// bucketError turns a failure to reach the bucket into a sentence for the user.
func (s *Storage) bucketError(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("check bucket %s: %w", s.bucket, err)
	}
	switch statusCode(err) {
	case http.StatusNotFound:
		return &bucketErr{msg: fmt.Sprintf("bucket %s does not exist (create it, or run pgward init which creates it)", s.bucket),
			is: fs.ErrNotExist, err: err}
	case http.StatusForbidden, http.StatusUnauthorized:
		return &bucketErr{msg: fmt.Sprintf("access denied to bucket %s: check the credentials (%s) and the principal's roles on the bucket (e.g. Storage Object User)",
			s.bucket, envCredentials), is: fs.ErrPermission, err: err}
	}
	return fmt.Errorf("check bucket %s: %w", s.bucket, err)
}

// bucketErr is a bucket-level error: one sentence for the user with the server's status,
// errors.Is for fs.ErrNotExist or fs.ErrPermission, and the StatusError in the chain.
type bucketErr struct {
	msg string
	is  error
	err error
}

func (e *bucketErr) Error() string {
	if status := statusCode(e.err); status != 0 {
		return fmt.Sprintf("%s (HTTP %d)", e.msg, status)
	}
	return e.msg
}

func (e *bucketErr) Is(target error) bool { return target == e.is }
func (e *bucketErr) Unwrap() error        { return e.err }
func (e *bucketErr) Transient() bool      { return false }
