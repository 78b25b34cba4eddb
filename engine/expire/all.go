package expire

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pgward/pgward/engine/retention"
	"github.com/pgward/pgward/repo"
)

// All expires every repository in turn with the same policy; it stops at the first
// failure and returns the results so far. It is what the CLI's expire, a backup's
// retention after its commit and the daemon call.
func All(ctx context.Context, repos []*repo.Repo, cluster string, p retention.Policy, dryRun bool, log *slog.Logger) ([]*Result, error) {
	results := []*Result{}
	for _, r := range repos {
		res, err := Run(ctx, r, Options{Cluster: cluster, Policy: p, DryRun: dryRun, Log: log})
		if res != nil {
			results = append(results, res)
		}
		if err != nil {
			return results, fmt.Errorf("expire in %s: %w", r, err)
		}
	}
	return results, nil
}
