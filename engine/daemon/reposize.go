package daemon

import (
	"context"
	"sort"
	"time"

	"github.com/pgward/pgward/repo"
)

// Repository sizes come from listing every object: one LIST per thousand objects on S3,
// a directory walk on local storage. That is cheap once in a while and wasteful on every
// scrape, so it runs first shortly after start and then every repoSizeEvery.
const (
	repoSizeFirst = 10 * time.Second
	repoSizeEvery = 10 * time.Minute
)

// measureRepos keeps the repository sizes (metrics and /status) until ctx ends.
func (d *Daemon) measureRepos(ctx context.Context) {
	wait := repoSizeFirst
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = repoSizeEvery
		sizes := d.repoSizes(ctx)
		if ctx.Err() != nil {
			return
		}
		d.mu.Lock()
		d.sizes = sizes
		d.mu.Unlock()
		d.metrics.repositories(sizes)
	}
}

// repoSizes lists every repository of every cluster once (clusters may share one).
func (d *Daemon) repoSizes(ctx context.Context) []RepoSize {
	seen := map[string]bool{}
	var out []RepoSize
	for _, c := range d.allClusters() {
		repos, err := c.openRepos(ctx)
		if err != nil {
			continue // the cluster's own refresh reports it
		}
		for _, r := range repos {
			loc := r.String()
			if seen[loc] {
				continue
			}
			seen[loc] = true
			size, err := repoSize(ctx, r)
			if err != nil {
				d.log.Warn("listing the repository to measure its size failed", "repo", loc, "error", err)
				continue
			}
			out = append(out, size)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Location < out[j].Location })
	return out
}

func repoSize(ctx context.Context, r *repo.Repo) (RepoSize, error) {
	s := RepoSize{Location: r.String()}
	err := r.Storage().List(ctx, "", func(o repo.ObjectInfo) error {
		s.Bytes += o.Size
		s.Objects++
		return nil
	})
	s.Measured = time.Now().UTC()
	return s, err
}
