package gcs

import (
	"context"
	"fmt"

	"github.com/pgward/pgward/repo"
)

// Leftovers implements repo.Storage. An interrupted Put leaves at most a resumable upload
// session that was never finalized: no object, not listed, and GCS expires it a week after
// it began. There is nothing for pgward to find or remove, so it reports nothing.
func (s *Storage) Leftovers(ctx context.Context, prefix string, fn func(repo.Leftover) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("leftovers %s: %w", s.url(s.prefix+prefix), err)
	}
	return nil
}

// RemoveLeftover implements repo.Storage: Leftovers reports none.
func (s *Storage) RemoveLeftover(context.Context, repo.Leftover) error { return nil }
