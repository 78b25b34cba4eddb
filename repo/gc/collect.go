package gc

import (
	"context"

	"github.com/pgward/pgward/repo"
)

// Collect takes the repository's exclusive lock (waiting as the request says), plans under
// it and applies the plan. When the lock cannot be had, the error wraps repo.ErrLocked and
// nothing was done.
func Collect(ctx context.Context, r *repo.Repo, lock repo.LockRequest, o Options) (*Plan, Stats, error) {
	lock.Mode = repo.ModeExclusive
	l, err := r.TakeLock(ctx, lock)
	if err != nil {
		return nil, Stats{}, err
	}
	defer l.Unlock(context.WithoutCancel(ctx))
	p, err := MakePlan(ctx, r, o)
	if err != nil {
		return nil, Stats{}, err
	}
	st, err := Apply(ctx, r, p, l.Check)
	return p, st, err
}
