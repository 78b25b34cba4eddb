package gcs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/pgward/pgward/repo"
)

// objectFields are the fields of an object resource pgward reads, in Stat's and List's
// "fields" parameter: the rest of the resource (ACLs, hashes, metadata) is not sent.
const objectFields = "name,size,timeCreated,updated"

// object is the part of an object resource that pgward reads. Size is a decimal string in
// the JSON API (a number in some emulators): json.Number takes both.
type object struct {
	Name        string      `json:"name"`
	Size        json.Number `json:"size"`
	TimeCreated time.Time   `json:"timeCreated"`
	Updated     time.Time   `json:"updated"`
}

// isNotFound reports whether err is a 404 about the object. A missing bucket is not: it
// must not look like an empty repository.
func isNotFound(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.StatusCode == http.StatusNotFound && !se.bucketMissing()
}

// Get implements repo.Storage. The reader streams the object from the server.
func (s *Storage) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	return s.read(ctx, name, 0, -1)
}

// GetRange implements repo.Storage with a ranged read.
func (s *Storage) GetRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if offset < 0 || length < 0 {
		return nil, fmt.Errorf("get %s: invalid range %d+%d", s.url(s.prefix+name), offset, length)
	}
	if length == 0 {
		if err := checkName(name); err != nil {
			return nil, fmt.Errorf("get: %w", err)
		}
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	return s.read(ctx, name, offset, length)
}

// read downloads the object (length -1) or length bytes of it from offset, which must all
// exist. Objects are stored without a Content-Encoding, so what is read is what was written.
func (s *Storage) read(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	key := s.prefix + name
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get %s: %w", s.url(key), err)
	}
	req, err := newRequest(ctx, http.MethodGet, s.objectURL(key, url.Values{"alt": {"media"}}), nil)
	if err != nil {
		return nil, err
	}
	if length > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", offset, offset+length-1))
	}
	resp, err := s.do(req, http.StatusOK, http.StatusPartialContent)
	switch {
	case isNotFound(err):
		return nil, fmt.Errorf("get %s: %w", s.url(key), repo.ErrNotFound)
	case statusCode(err) == http.StatusRequestedRangeNotSatisfiable:
		return nil, fmt.Errorf("get %s: range %d+%d is past the object's end", s.url(key), offset, length)
	case err != nil:
		return nil, s.opError("get", key, err)
	}
	if length > 0 && (resp.ContentLength != length || resp.StatusCode == http.StatusOK && offset != 0) {
		// A short answer: the range ends past the object's end (or the server sent all of it).
		resp.Body.Close()
		return nil, fmt.Errorf("get %s: range %d+%d is past the object's end", s.url(key), offset, length)
	}
	return resp.Body, nil
}

// Stat implements repo.Storage with the object's resource.
func (s *Storage) Stat(ctx context.Context, name string) (repo.ObjectInfo, error) {
	if err := checkName(name); err != nil {
		return repo.ObjectInfo{}, fmt.Errorf("stat: %w", err)
	}
	key := s.prefix + name
	if err := ctx.Err(); err != nil {
		return repo.ObjectInfo{}, fmt.Errorf("stat %s: %w", s.url(key), err)
	}
	var o object
	err := s.getJSON(ctx, s.objectURL(key, url.Values{"fields": {objectFields}}), &o)
	if isNotFound(err) {
		return repo.ObjectInfo{}, fmt.Errorf("stat %s: %w", s.url(key), repo.ErrNotFound)
	}
	if err != nil {
		return repo.ObjectInfo{}, s.opError("stat", key, err)
	}
	return s.objectInfo("stat", key, name, &o)
}

// objectInfo describes an object the same way for Stat and List: its creation time (an
// object written once is never updated), to the microsecond, as the JSON API and emulators
// may keep different fractions in different answers.
func (s *Storage) objectInfo(op, key, name string, o *object) (repo.ObjectInfo, error) {
	t := o.TimeCreated
	if t.IsZero() {
		t = o.Updated
	}
	if t.IsZero() {
		return repo.ObjectInfo{}, &permanentError{fmt.Errorf("%s %s: the server sent no creation time", op, s.url(key))}
	}
	size, err := strconv.ParseInt(string(o.Size), 10, 64)
	if err != nil || size < 0 {
		return repo.ObjectInfo{}, &permanentError{fmt.Errorf("%s %s: the server sent the size %q", op, s.url(key), o.Size)}
	}
	return repo.ObjectInfo{Name: name, Size: size, ModTime: t.Truncate(time.Microsecond)}, nil
}

// PutDeferred implements repo.Storage: a finalized upload is durable under its name at
// once, so there is nothing to defer.
func (s *Storage) PutDeferred(ctx context.Context, name string, r io.Reader, size int64) error {
	return s.Put(ctx, name, r, size)
}

// SyncDeferred implements repo.Storage: PutDeferred left nothing to do.
func (s *Storage) SyncDeferred(context.Context) error { return nil }

// Delete implements repo.Storage. A missing object is success.
func (s *Storage) Delete(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	key := s.prefix + name
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %s: %w", s.url(key), err)
	}
	req, err := newRequest(ctx, http.MethodDelete, s.objectURL(key, nil), nil)
	if err != nil {
		return err
	}
	resp, err := s.do(req, http.StatusNoContent, http.StatusOK)
	if err == nil {
		resp.Body.Close()
		return nil
	}
	if isNotFound(err) {
		return nil
	}
	return s.opError("delete", key, err)
}
