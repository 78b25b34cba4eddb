package gcs

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/pgward/pgward/repo"
)

// listFields keeps a listing page to what List reads.
const listFields = "items(" + objectFields + "),nextPageToken"

// listPage is one page of an object listing.
type listPage struct {
	Items         []object `json:"items"`
	NextPageToken string   `json:"nextPageToken"`
}

// List implements repo.Storage with paged object listings (up to 1000 objects a page, the
// service's default and maximum).
func (s *Storage) List(ctx context.Context, prefix string, fn func(repo.ObjectInfo) error) error {
	full := s.prefix + prefix
	q := url.Values{"prefix": {full}, "fields": {listFields}}
	last := ""
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("list %s: %w", s.url(full), err)
		}
		var page listPage
		if err := s.getJSON(ctx, withQuery(s.bucketURL(s.api.base)+"/o", q), &page); err != nil {
			if statusCode(err) == http.StatusNotFound {
				return fmt.Errorf("list %s: bucket %s does not exist: %w", s.url(full), s.bucket, err)
			}
			return s.opError("list", full, err)
		}
		for i := range page.Items {
			// A canceled listing stops at once, not at the end of its page.
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("list %s: %w", s.url(full), err)
			}
			o := &page.Items[i]
			if len(o.Name) < len(full) || o.Name[:len(full)] != full {
				continue
			}
			name := o.Name[len(s.prefix):]
			if checkName(name) != nil {
				continue // not an object of ours
			}
			if name <= last && last != "" {
				return fmt.Errorf("list %s: the server listed %q after %q, out of lexical order", s.url(full), name, last)
			}
			last = name
			info, err := s.objectInfo("list", o.Name, name, o)
			if err != nil {
				return err
			}
			if err := fn(info); err != nil {
				return err
			}
		}
		if page.NextPageToken == "" {
			return nil
		}
		q.Set("pageToken", page.NextPageToken)
	}
}
