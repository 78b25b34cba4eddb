package gcs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
)

// checkBucket makes sure the bucket exists and is readable with these credentials. It lists
// one object rather than reading the bucket's metadata: a role scoped to objects
// (roles/storage.objectUser) may list them without being allowed to read the bucket.
func (s *Storage) checkBucket(ctx context.Context) error {
	q := url.Values{"prefix": {s.prefix}, "maxResults": {"1"}, "fields": {"items(name)"}}
	var page struct{}
	if err := s.getJSON(ctx, withQuery(s.bucketURL(s.api.base)+"/o", q), &page); err != nil {
		return s.bucketError(err)
	}
	return nil
}

// createBucket inserts the bucket in s.project with the service's defaults (location,
// storage class). A bucket that exists already (a racing init, or ours) is checked instead.
func (s *Storage) createBucket(ctx context.Context) error {
	if s.project == "" {
		return fmt.Errorf("create bucket %s: no project to create it in: set %s, or create the bucket yourself", s.bucket, envProject)
	}
	body, err := json.Marshal(map[string]string{"name": s.bucket})
	if err != nil {
		return err
	}
	req, err := newRequest(ctx, http.MethodPost, withQuery(s.api.base+"b", url.Values{"project": {s.project}}), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json; charset=UTF-8")
	resp, err := s.do(req, http.StatusOK)
	switch status := statusCode(err); {
	case err == nil:
		resp.Body.Close()
		return nil
	case status == http.StatusConflict:
		return s.checkBucket(ctx)
	case status == http.StatusForbidden:
		return fmt.Errorf("create bucket %s: access denied: the credentials may not create buckets in project %s; create it yourself: %w", s.bucket, s.project, err)
	}
	return fmt.Errorf("create bucket %s: %w", s.bucket, err)
}
