package gcs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/pgward/pgward/repo/internal/putio"
)

// statusResumeIncomplete is GCS's answer to a chunk that does not end the upload.
const statusResumeIncomplete = 308

// putResumable uploads an object larger than a chunk: a session is started (carrying the
// precondition), then the chunks are read into one buffer and sent in turn, each with its
// place in the object. The last chunk finalizes the object, so it is only sent once the
// whole source is known good: a failing reader or a canceled context leaves an unfinished
// session, which is invisible and which GCS discards after a week.
func (s *Storage) putResumable(ctx context.Context, key string, r io.Reader, size int64) error {
	session, err := s.startResumable(ctx, key, size)
	if err != nil {
		return s.writeError(key, err)
	}
	bp := putio.GetBuffer(int64(s.chunkSize))
	defer putio.PutBuffer(bp)
	for off := int64(0); off < size; {
		chunk := (*bp)[:min(int64(s.chunkSize), size-off)]
		if err := putio.ReadFull(ctx, r, chunk); err != nil {
			return fmt.Errorf("put %s: %w", s.url(key), err)
		}
		if off+int64(len(chunk)) == size {
			if err := putio.End(r, size); err != nil {
				return fmt.Errorf("put %s: %w", s.url(key), err)
			}
		}
		if err := s.putChunk(ctx, session, chunk, off, size); err != nil {
			return s.writeError(key, err)
		}
		off += int64(len(chunk))
	}
	return nil
}

// startResumable starts an upload session for size bytes and returns its URL.
func (s *Storage) startResumable(ctx context.Context, key string, size int64) (string, error) {
	meta, err := json.Marshal(struct {
		Name string `json:"name"`
	}{key})
	if err != nil {
		return "", err
	}
	req, err := newRequest(ctx, http.MethodPost, withQuery(s.bucketURL(s.api.upload)+"/o", writeQuery("resumable")), bytes.NewReader(meta))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json; charset=UTF-8")
	req.Header.Set("X-Upload-Content-Type", "application/octet-stream")
	req.Header.Set("X-Upload-Content-Length", strconv.FormatInt(size, 10))
	resp, err := s.do(req, http.StatusOK, http.StatusCreated)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	return s.checkSession(resp.Header.Get("Location"))
}

// checkSession accepts the session URL the server gave if chunks sent there keep what the
// endpoint promised: an absolute URL, and https when the endpoint is (the token goes along).
func (s *Storage) checkSession(loc string) (string, error) {
	u, err := url.Parse(loc)
	if err != nil || !u.IsAbs() || (!s.api.plain && u.Scheme != "https") {
		return "", &permanentError{fmt.Errorf("start resumable upload: the server sent the session URL %q", oneLine(loc, 200))}
	}
	return loc, nil
}

// putChunk sends chunk, the bytes at off of an object of size bytes, to the session. GCS may
// keep fewer bytes than it got (its 308 answer's Range says how many); the rest is sent
// again, as the protocol asks.
func (s *Storage) putChunk(ctx context.Context, session string, chunk []byte, off, size int64) error {
	end := off + int64(len(chunk)) // the first byte after the chunk
	for next := off; ; {
		part := chunk[next-off:]
		req, err := newRequest(ctx, http.MethodPut, session, bytes.NewReader(part))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", next, end-1, size))
		resp, err := s.do(req, http.StatusOK, http.StatusCreated, statusResumeIncomplete)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
		if resp.StatusCode != statusResumeIncomplete {
			if end != size {
				return &permanentError{fmt.Errorf("resumable upload: the server finalized the object after %d of %d bytes", end, size)}
			}
			return nil
		}
		kept, err := keptBytes(resp)
		switch {
		case err != nil:
			return err
		case kept == end:
			return nil
		case kept <= next || kept > end:
			// No progress, or more than was sent: the session is not what this Put made.
			return &permanentError{fmt.Errorf("resumable upload: after bytes %d-%d the server holds %d of %d bytes", next, end-1, kept, size)}
		}
		next = kept
	}
}

// keptBytes returns how many bytes of the upload the server holds after a 308 answer to a
// chunk: what its Range header says ("bytes=0-n" for n+1 bytes; no header for none).
func keptBytes(resp *http.Response) (int64, error) {
	rng := resp.Header.Get("Range")
	if rng == "" {
		return 0, nil
	}
	last, ok := strings.CutPrefix(rng, "bytes=0-")
	n, err := strconv.ParseInt(last, 10, 64)
	if !ok || err != nil || n < 0 {
		return 0, &permanentError{fmt.Errorf("resumable upload: the server answered with Range %q", oneLine(rng, 100))}
	}
	return n + 1, nil
}
