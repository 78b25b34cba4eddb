package gcs

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/url"

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
	key := s.prefix + name
	if err := putio.Check(ctx, name, size, checkName, func() string { return s.url(key) }); err != nil {
		return err
	}
	if size <= int64(s.chunkSize) {
		return s.putSingle(ctx, key, r, size)
	}
	return s.putResumable(ctx, key, r, size)
}

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

// writeQuery are the parameters of every upload: "only if no live object has this name".
func writeQuery(uploadType string) url.Values {
	return url.Values{"uploadType": {uploadType}, "ifGenerationMatch": {"0"}}
}

func (s *Storage) putSingle(ctx context.Context, key string, r io.Reader, size int64) error {
	bp := putio.GetBuffer(size)
	defer putio.PutBuffer(bp)
	buf := (*bp)[:size]
	if err := putio.ReadFull(ctx, r, buf); err != nil {
		return fmt.Errorf("put %s: %w", s.url(key), err)
	}
	if err := putio.End(r, size); err != nil {
		return fmt.Errorf("put %s: %w", s.url(key), err)
	}
	return s.writeError(key, s.uploadMultipart(ctx, key, buf))
}

// uploadMultipart sends data as one multipart upload: the object's metadata (its name and
// CRC32C, which the server checks against what it received) and then its bytes.
func (s *Storage) uploadMultipart(ctx context.Context, key string, data []byte) error {
	meta, err := json.Marshal(struct {
		Name   string `json:"name"`
		CRC32C string `json:"crc32c"`
	}{key, crc32cBase64(data)})
	if err != nil {
		return err
	}
	boundary := randomBoundary()
	head := []byte("--" + boundary + "\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n" + string(meta) +
		"\r\n--" + boundary + "\r\nContent-Type: application/octet-stream\r\n\r\n")
	tail := []byte("\r\n--" + boundary + "--\r\n")
	body := func() io.Reader {
		return io.MultiReader(bytes.NewReader(head), bytes.NewReader(data), bytes.NewReader(tail))
	}
	req, err := newRequest(ctx, http.MethodPost, withQuery(s.bucketURL(s.api.upload)+"/o", writeQuery("multipart")), body())
	if err != nil {
		return err
	}
	req.ContentLength = int64(len(head) + len(data) + len(tail))
	// Lets the transport send the request again on a fresh connection when a reused one
	// turns out closed before anything was sent.
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(body()), nil }
	req.Header.Set("Content-Type", "multipart/related; boundary="+boundary)
	resp, err := s.do(req, http.StatusOK)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// crc32cBase64 is the object resource's form of a CRC32C: base64 of its 4 big-endian bytes.
func crc32cBase64(data []byte) string {
	return base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc32.Checksum(data, crc32c)))
}

// randomBoundary separates the parts of a multipart upload. It is random, so that no
// object's bytes can hold it by design.
func randomBoundary() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "pgward-" + hex.EncodeToString(b[:])
}
