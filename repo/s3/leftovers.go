package s3

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pgward/pgward/repo"
)

// Leftovers implements repo.Storage: the multipart uploads under prefix that were started
// and never completed or aborted (a process killed in the middle of a large Put). Their
// parts are stored, and billed, until aborted. Ref is "<upload id>"; Started is the time the
// server says the upload was initiated. Size is not known without listing every part, and is
// reported as 0.
func (s *Storage) Leftovers(ctx context.Context, prefix string, fn func(repo.Leftover) error) error {
	full := s.prefix + prefix
	in := &awss3.ListMultipartUploadsInput{Bucket: &s.bucket, Prefix: &full}
	for {
		out, err := s.client.ListMultipartUploads(ctx, in)
		if err != nil {
			return s.opError("list uploads", full, err)
		}
		for _, u := range out.Uploads {
			key := aws.ToString(u.Key)
			if !strings.HasPrefix(key, full) || u.UploadId == nil {
				continue
			}
			l := repo.Leftover{Name: key[len(s.prefix):], Ref: *u.UploadId, Started: aws.ToTime(u.Initiated)}
			if l.Started.IsZero() {
				continue // a server that does not say when cannot be judged by age
			}
			if err := fn(l); err != nil {
				return err
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			return nil
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
}

// RemoveLeftover implements repo.Storage: it aborts the upload, which frees its parts.
func (s *Storage) RemoveLeftover(ctx context.Context, l repo.Leftover) error {
	if err := checkName(l.Name); err != nil {
		return fmt.Errorf("remove leftover: %w", err)
	}
	key := s.prefix + l.Name
	_, err := s.client.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{Bucket: &s.bucket, Key: &key, UploadId: &l.Ref})
	if err != nil && !isNotFound(err) {
		if _, code := statusCode(err); code != "NoSuchUpload" {
			return s.opError("abort upload", key, err)
		}
	}
	return nil
}
