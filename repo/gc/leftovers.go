package gc

import (
	"context"
	"strings"
	"time"

	"github.com/pgward/pgward/repo"
)

// protected reports whether only holders of a repository lock write the object name: then a
// leftover there belongs to a writer that is dead once the exclusive lock is held.
func protected(name string) bool {
	if strings.HasPrefix(name, repo.ChunkPrefix) || strings.HasPrefix(name, repo.PackPrefix) || strings.HasPrefix(name, repo.IndexPrefix) {
		return true
	}
	parts := strings.Split(name, "/")
	return len(parts) >= 3 && parts[0] == "clusters" && parts[2] == "backups"
}

// planLeftovers finds the leftovers a collection removes.
func (p *Plan) planLeftovers(ctx context.Context, r *repo.Repo, o Options) error {
	cutoff := time.Now().Add(-o.LeftoverAge)
	return r.Storage().Leftovers(ctx, "", func(l repo.Leftover) error {
		if protected(l.Name) || l.Started.Before(cutoff) {
			p.Leftovers = append(p.Leftovers, l)
			p.Freed += l.Size
		}
		return nil
	})
}
