package verify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/pgward/pgward/internal/config"
	"github.com/pgward/pgward/repo"
)

// OptionsFrom maps resolved options to a verify run: the one mapping the CLI's verify and
// the daemon's scheduled verifies share.
func OptionsFrom(o *config.Options) (Options, error) {
	v := o.Verify
	opts := Options{All: v.All, WAL: v.WAL, Mode: Structure, Period: v.Period, Jobs: o.Jobs, Log: slog.Default()}
	if v.ReadData {
		opts.Mode = ReadData
	}
	if o.Origin("read-data-subset") != config.FromDefault {
		if v.ReadData {
			return opts, errors.New("give --read-data (everything) or --read-data-subset N% (a share), not both")
		}
		opts.Mode, opts.Subset = ReadSubset, v.Subset
	}
	if v.Backup != "" {
		if v.All {
			return opts, errors.New("give --backup ID (one backup) or --all (everything), not both")
		}
		opts.Backup = v.Backup
	}
	if !v.All {
		var err error
		if err = repo.ValidClusterName(o.Cluster); err != nil {
			return opts, err
		}
		opts.Cluster = o.Cluster
	}
	return opts, nil
}

// All verifies every repository in turn. A repository without the backup (or the cluster)
// asked for is skipped when another one has it.
func All(ctx context.Context, repos []*repo.Repo, opts Options) ([]*Result, error) {
	results := []*Result{}
	var absent []error
	for _, r := range repos {
		res, err := Run(ctx, r, opts)
		if errors.Is(err, ErrAbsent) {
			absent = append(absent, err)
			continue
		}
		if res != nil {
			results = append(results, res)
		}
		if err != nil {
			return results, fmt.Errorf("verify in %s: %w", r, err)
		}
	}
	if len(results) == 0 && len(absent) > 0 {
		return results, errors.Join(absent...)
	}
	return results, nil
}
