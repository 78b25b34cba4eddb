package s3

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/internal/putio"
)

// ifNoneMatch makes a write conditional on the key not existing.
var ifNoneMatch = aws.String("*")

// Put implements repo.Storage: one conditional PutObject up to PartSize bytes, else a
// multipart upload completed conditionally.
func (s *Storage) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	key := s.prefix + name
	if err := putio.Check(ctx, name, size, checkName, func() string { return s.url(key) }); err != nil {
		return err
	}
	if size <= s.partSize {
		return s.putSingle(ctx, key, r, size)
	}
	return s.putMultipart(ctx, key, r, size)
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
	in := &awss3.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           &key,
		Body:          bytes.NewReader(buf),
		ContentLength: aws.Int64(size),
		IfNoneMatch:   ifNoneMatch,
	}
	if s.sse != "" {
		in.ServerSideEncryption = s.sse
	}
	if s.kmsKeyID != "" {
		in.SSEKMSKeyId = &s.kmsKeyID
	}
	if s.storageClass != "" {
		in.StorageClass = s.storageClass
	}
	_, err := s.client.PutObject(ctx, in)
	return s.writeError(key, err)
}

// writeError maps the outcome of a conditional write.
func (s *Storage) writeError(key string, err error) error {
	if err == nil {
		return nil
	}
	switch status, code := statusCode(err); {
	case status == http.StatusPreconditionFailed || code == "PreconditionFailed":
		return fmt.Errorf("put %s: %w", s.url(key), repo.ErrExists)
	case status == http.StatusNotImplemented || code == "NotImplemented":
		return fmt.Errorf("put %s: the server does not implement conditional writes (If-None-Match), "+
			"which write-once objects need: %w", s.url(key), classify(err))
	}
	return s.opError("put", key, err)
}

func (s *Storage) putMultipart(ctx context.Context, key string, r io.Reader, size int64) error {
	parts := (size + s.partSize - 1) / s.partSize
	if parts > maxParts {
		return fmt.Errorf("put %s: %d bytes need %d parts of %d bytes, more than S3's %d: raise the part size",
			s.url(key), size, parts, s.partSize, maxParts)
	}
	// Fail fast when the name is taken, rather than upload what would be refused. The
	// conditional completion below is what guarantees write-once.
	if _, err := s.head(ctx, key); err == nil {
		return fmt.Errorf("put %s: %w", s.url(key), repo.ErrExists)
	} else if !isNotFound(err) {
		return s.opError("put", key, err)
	}
	create := &awss3.CreateMultipartUploadInput{Bucket: &s.bucket, Key: &key}
	if s.sse != "" {
		create.ServerSideEncryption = s.sse
	}
	if s.kmsKeyID != "" {
		create.SSEKMSKeyId = &s.kmsKeyID
	}
	if s.storageClass != "" {
		create.StorageClass = s.storageClass
	}
	if s.partChecksums {
		create.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32
	}
	out, err := s.client.CreateMultipartUpload(ctx, create)
	if err != nil {
		return s.opError("put", key, err)
	}
	uploadID := out.UploadId
	completed := false
	defer func() {
		if !completed {
			s.abort(ctx, key, uploadID)
		}
	}()

	done, err := s.uploadParts(ctx, key, uploadID, r, size, parts)
	if err != nil {
		return fmt.Errorf("put %s: %w", s.url(key), err)
	}
	// Last chance to back out: after the completion the object exists.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", s.url(key), err)
	}
	_, err = s.client.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{
		Bucket:          &s.bucket,
		Key:             &key,
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: done},
		IfNoneMatch:     ifNoneMatch,
	})
	if err != nil {
		// Aborting is right even if the completion did happen and only its answer was lost:
		// the abort then finds no upload and changes nothing.
		return s.writeError(key, err)
	}
	completed = true
	return nil
}

// uploadParts reads r part by part and uploads each part while the next is read. A slot is
// taken before a part buffer, so at most concurrency buffers exist for this Put.
//
// When the caller's reader fails, the parts already in flight are let finish rather than
// canceled: a part request the server is still working on when the upload is aborted may
// bring the upload back (S3 documents this; versitygw 1.8 does it), leaving garbage.
func (s *Storage) uploadParts(ctx context.Context, key string, uploadID *string, r io.Reader, size, parts int64) ([]types.CompletedPart, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		done  = make([]types.CompletedPart, parts)
		slots = make(chan struct{}, s.concurrency)
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	fail := func(err error, cancelOthers bool) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil {
			first = err
			if cancelOthers {
				cancel(err)
			}
		}
	}
	failed := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return first != nil
	}
	for i := range parts {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil || failed() {
			break
		}
		n := min(s.partSize, size-i*s.partSize)
		bp := putio.GetBuffer(n)
		buf := (*bp)[:n]
		if err := putio.ReadFull(ctx, r, buf); err != nil {
			putio.PutBuffer(bp)
			<-slots
			fail(err, false)
			break
		}
		wg.Go(func() {
			defer func() {
				putio.PutBuffer(bp)
				<-slots
			}()
			num := aws.Int32(int32(i + 1))
			in := &awss3.UploadPartInput{
				Bucket:        &s.bucket,
				Key:           &key,
				UploadId:      uploadID,
				PartNumber:    num,
				Body:          bytes.NewReader(buf),
				ContentLength: aws.Int64(n),
			}
			if s.partChecksums {
				in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32
			}
			out, err := s.client.UploadPart(ctx, in)
			if err != nil {
				// The upload is doomed: stop the other parts rather than wait for them.
				fail(fmt.Errorf("upload part %d of %d: %w", i+1, parts, classify(err)), true)
				return
			}
			done[i] = types.CompletedPart{PartNumber: num, ETag: out.ETag, ChecksumCRC32: out.ChecksumCRC32}
		})
	}
	if ctx.Err() == nil && !failed() {
		if err := putio.End(r, size); err != nil {
			fail(err, false)
		}
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	if err := context.Cause(ctx); err != nil {
		return nil, err // the caller's context ended
	}
	return done, nil
}

// abort removes a failed multipart upload, so its parts are not kept (and billed). It runs
// even when ctx is canceled, and is repeated until the upload is gone: a part request that
// was canceled on our side may still be finished by the server after an abort and bring the
// upload back. Its failure only leaves garbage for a lifecycle rule.
func (s *Storage) abort(ctx context.Context, key string, uploadID *string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	wait := 50 * time.Millisecond
	for range 6 {
		_, _ = s.client.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{
			Bucket: &s.bucket, Key: &key, UploadId: uploadID,
		})
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
		wait *= 2
		_, err := s.client.ListParts(ctx, &awss3.ListPartsInput{Bucket: &s.bucket, Key: &key, UploadId: uploadID})
		if _, code := statusCode(err); code == "NoSuchUpload" || (err != nil && isNotFound(err)) {
			return
		}
	}
}
