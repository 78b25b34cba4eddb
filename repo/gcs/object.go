package gcs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/internal/putio"
)

// Put implements repo.Storage: one upload with the precondition ifGenerationMatch=0. Up to
// ChunkSize bytes are read into a pooled buffer first, so a failing reader fails before
// anything is sent, and go in one request with their CRC32C, which the server checks.
// Larger objects are resumable uploads of ChunkSize chunks; a failure of the caller's
// reader, or a canceled context, abandons the upload before its last chunk, so nothing is
// finalized.
func (s *Storage) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	key := s.prefix + name
	if size < 0 {
		return fmt.Errorf("put %s: negative size %d", s.url(key), size)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", s.url(key), err)
	}
	uctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := s.client.Bucket(s.bucket).Object(key).If(storage.Conditions{DoesNotExist: true}).NewWriter(uctx)
	if size <= int64(s.chunkSize) {
		bp := putio.GetBuffer(size)
		defer putio.PutBuffer(bp)
		buf := (*bp)[:size]
		if err := putio.ReadFull(ctx, r, buf); err != nil {
			return fmt.Errorf("put %s: %w", s.url(key), err)
		}
		if err := putio.End(r, size); err != nil {
			return fmt.Errorf("put %s: %w", s.url(key), err)
		}
		w.ChunkSize = 0 // one request
		w.CRC32C, w.SendCRC32C = crc32.Checksum(buf, crc32c), true
		if _, err := w.Write(buf); err != nil {
			cancel()
			_ = w.Close()
			return s.writeError(key, err)
		}
		return s.writeError(key, w.Close())
	}
	w.ChunkSize = s.chunkSize
	if _, err := io.Copy(w, putio.Reader(ctx, r, size)); err != nil {
		// The upload must fail, never finalize what was written so far: the error ends the
		// request body, the canceled context the request, and Close waits for both.
		_ = w.CloseWithError(err) //nolint:staticcheck // canceling alone races with Close finalizing
		cancel()
		_ = w.Close()
		var src *putio.SourceError
		if errors.As(err, &src) || ctx.Err() != nil {
			return fmt.Errorf("put %s: %w", s.url(key), err)
		}
		return s.writeError(key, err)
	}
	return s.writeError(key, w.Close())
}

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// writeError maps the outcome of a conditional write.
func (s *Storage) writeError(key string, err error) error {
	if err == nil {
		return nil
	}
	if statusCode(err) == http.StatusPreconditionFailed {
		return fmt.Errorf("put %s: %w", s.url(key), repo.ErrExists)
	}
	return s.opError("put", key, err)
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

func (s *Storage) read(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	key := s.prefix + name
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get %s: %w", s.url(key), err)
	}
	// Objects are stored without a Content-Encoding, so what is read is what was written.
	rd, err := s.client.Bucket(s.bucket).Object(key).NewRangeReader(ctx, offset, length)
	if err != nil {
		switch {
		case errors.Is(err, storage.ErrObjectNotExist):
			return nil, fmt.Errorf("get %s: %w", s.url(key), repo.ErrNotFound)
		case statusCode(err) == http.StatusRequestedRangeNotSatisfiable:
			return nil, fmt.Errorf("get %s: range %d+%d is past the object's end", s.url(key), offset, length)
		}
		return nil, s.opError("get", key, err)
	}
	if length > 0 && rd.Remain() != length {
		rd.Close()
		return nil, fmt.Errorf("get %s: range %d+%d is past the object's end", s.url(key), offset, length)
	}
	return rd, nil
}

// Stat implements repo.Storage with the object's metadata.
func (s *Storage) Stat(ctx context.Context, name string) (repo.ObjectInfo, error) {
	if err := checkName(name); err != nil {
		return repo.ObjectInfo{}, fmt.Errorf("stat: %w", err)
	}
	key := s.prefix + name
	if err := ctx.Err(); err != nil {
		return repo.ObjectInfo{}, fmt.Errorf("stat %s: %w", s.url(key), err)
	}
	a, err := s.client.Bucket(s.bucket).Object(key).Attrs(ctx)
	if err != nil {
		if errors.Is(err, storage.ErrObjectNotExist) {
			return repo.ObjectInfo{}, fmt.Errorf("stat %s: %w", s.url(key), repo.ErrNotFound)
		}
		return repo.ObjectInfo{}, s.opError("stat", key, err)
	}
	return s.objectInfo("stat", key, name, a)
}

// objectInfo describes an object the same way for Stat and List: its creation time (an
// object written once is never updated), to the microsecond, as the JSON API and emulators
// may keep different fractions in different answers.
func (s *Storage) objectInfo(op, key, name string, a *storage.ObjectAttrs) (repo.ObjectInfo, error) {
	t := a.Created
	if t.IsZero() {
		t = a.Updated
	}
	if t.IsZero() {
		return repo.ObjectInfo{}, &permanentError{fmt.Errorf("%s %s: the server sent no creation time", op, s.url(key))}
	}
	return repo.ObjectInfo{Name: name, Size: a.Size, ModTime: t.Truncate(time.Microsecond)}, nil
}

// PutDeferred implements repo.Storage: a finalized upload is durable under its name at
// once, so there is nothing to defer.
func (s *Storage) PutDeferred(ctx context.Context, name string, r io.Reader, size int64) error {
	return s.Put(ctx, name, r, size)
}

// SyncDeferred implements repo.Storage: PutDeferred left nothing to do.
func (s *Storage) SyncDeferred(context.Context) error { return nil }

// List implements repo.Storage with paged object listings.
func (s *Storage) List(ctx context.Context, prefix string, fn func(repo.ObjectInfo) error) error {
	full := s.prefix + prefix
	q := &storage.Query{Prefix: full}
	if err := q.SetAttrSelection([]string{"Name", "Size", "Created", "Updated"}); err != nil {
		return fmt.Errorf("list %s: %w", s.url(full), err)
	}
	it := s.client.Bucket(s.bucket).Objects(ctx, q)
	last := ""
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("list %s: %w", s.url(full), err)
		}
		a, err := it.Next()
		if err == iterator.Done {
			return nil
		}
		if err != nil {
			return s.opError("list", full, err)
		}
		key := a.Name
		if len(key) < len(full) || key[:len(full)] != full {
			continue
		}
		name := key[len(s.prefix):]
		if checkName(name) != nil {
			continue // not an object of ours
		}
		if name <= last && last != "" {
			return fmt.Errorf("list %s: the server listed %q after %q, out of lexical order", s.url(full), name, last)
		}
		last = name
		info, err := s.objectInfo("list", key, name, a)
		if err != nil {
			return err
		}
		if err := fn(info); err != nil {
			return err
		}
	}
}

// Delete implements repo.Storage. A missing object is success.
func (s *Storage) Delete(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	key := s.prefix + name
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %s: %w", s.url(key), err)
	}
	err := s.client.Bucket(s.bucket).Object(key).Delete(ctx)
	if err != nil && !errors.Is(err, storage.ErrObjectNotExist) {
		return s.opError("delete", key, err)
	}
	return nil
}
