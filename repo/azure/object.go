package azure

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/pgward/pgward/repo"
)

// Get implements repo.Storage. The reader streams the blob from the service.
func (s *Storage) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	return s.download(ctx, "get", name, blob.HTTPRange{})
}

// GetRange implements repo.Storage with a ranged Get Blob.
func (s *Storage) GetRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if offset < 0 || length < 0 {
		return nil, fmt.Errorf("get %s: invalid range %d+%d", s.url(s.prefix+name), offset, length)
	}
	if length == 0 {
		// An empty range of the service means "to the end": nothing to ask for.
		if err := checkName(name); err != nil {
			return nil, fmt.Errorf("get: %w", err)
		}
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	return s.download(ctx, "get", name, blob.HTTPRange{Offset: offset, Count: length})
}

func (s *Storage) download(ctx context.Context, op, name string, rng blob.HTTPRange) (io.ReadCloser, error) {
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	key := s.prefix + name
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s %s: %w", op, s.url(key), err)
	}
	out, err := s.client.NewBlobClient(key).DownloadStream(ctx, &blob.DownloadStreamOptions{Range: rng})
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("%s %s: %w", op, s.url(key), repo.ErrNotFound)
		}
		if _, code := statusCode(err); code == "InvalidRange" {
			return nil, fmt.Errorf("%s %s: range %d+%d is past the object's end", op, s.url(key), rng.Offset, rng.Count)
		}
		return nil, s.opError(op, key, err)
	}
	if rng.Count > 0 && (out.ContentLength == nil || *out.ContentLength != rng.Count) {
		out.Body.Close()
		return nil, fmt.Errorf("%s %s: range %d+%d is past the object's end", op, s.url(key), rng.Offset, rng.Count)
	}
	return out.Body, nil
}

// Stat implements repo.Storage with Get Blob Properties.
func (s *Storage) Stat(ctx context.Context, name string) (repo.ObjectInfo, error) {
	if err := checkName(name); err != nil {
		return repo.ObjectInfo{}, fmt.Errorf("stat: %w", err)
	}
	key := s.prefix + name
	if err := ctx.Err(); err != nil {
		return repo.ObjectInfo{}, fmt.Errorf("stat %s: %w", s.url(key), err)
	}
	out, err := s.client.NewBlobClient(key).GetProperties(ctx, nil)
	if err != nil {
		if isNotFound(err) {
			return repo.ObjectInfo{}, fmt.Errorf("stat %s: %w", s.url(key), repo.ErrNotFound)
		}
		return repo.ObjectInfo{}, s.opError("stat", key, err)
	}
	return s.objectInfo("stat", key, name, out.ContentLength, out.LastModified)
}

// objectInfo describes an object the same way for Stat and List: Last-Modified, which Azure
// keeps to the second (truncated anyway, so that an emulator's fractions cannot make the
// two disagree).
func (s *Storage) objectInfo(op, key, name string, size *int64, modTime *time.Time) (repo.ObjectInfo, error) {
	if modTime == nil || modTime.IsZero() || size == nil {
		return repo.ObjectInfo{}, &permanentError{fmt.Errorf("%s %s: the service sent no size or Last-Modified time", op, s.url(key))}
	}
	return repo.ObjectInfo{Name: name, Size: *size, ModTime: modTime.Truncate(time.Second)}, nil
}

// PutDeferred implements repo.Storage: a successful write is durable under its name at
// once, so there is nothing to defer.
func (s *Storage) PutDeferred(ctx context.Context, name string, r io.Reader, size int64) error {
	return s.Put(ctx, name, r, size)
}

// SyncDeferred implements repo.Storage: PutDeferred left nothing to do.
func (s *Storage) SyncDeferred(context.Context) error { return nil }

// List implements repo.Storage with List Blobs, up to 5000 names per request.
func (s *Storage) List(ctx context.Context, prefix string, fn func(repo.ObjectInfo) error) error {
	full := s.prefix + prefix
	p := s.client.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &full})
	last := ""
	for p.More() {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("list %s: %w", s.url(full), err)
		}
		page, err := p.NextPage(ctx)
		if err != nil {
			return s.opError("list", full, err)
		}
		if page.Segment == nil {
			continue
		}
		for _, b := range page.Segment.BlobItems {
			if b.Name == nil || b.Properties == nil {
				continue
			}
			key := *b.Name
			if len(key) < len(full) || key[:len(full)] != full {
				continue
			}
			name := key[len(s.prefix):]
			if checkName(name) != nil {
				continue // not an object of ours
			}
			if name <= last && last != "" {
				return fmt.Errorf("list %s: the service listed %q after %q, out of lexical order", s.url(full), name, last)
			}
			last = name
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("list %s: %w", s.url(full), err)
			}
			info, err := s.objectInfo("list", key, name, b.Properties.ContentLength, b.Properties.LastModified)
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

// Delete implements repo.Storage. A missing blob is success.
func (s *Storage) Delete(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	key := s.prefix + name
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %s: %w", s.url(key), err)
	}
	_, err := s.client.NewBlobClient(key).Delete(ctx, nil)
	if err != nil && !isNotFound(err) {
		return s.opError("delete", key, err)
	}
	return nil
}
