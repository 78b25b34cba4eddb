package repo_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/pgward/pgward/repo"
)

// The several-repository policy: the first good copy wins, "not found" is quiet,
// every other failure is reported when no copy is good; writes stop at the first
// failure.
func TestSet(t *testing.T) {
	a, _ := newRepo(t, nil)
	b, _ := newRepo(t, nil)
	set := repo.Set{a, b}
	bad := errors.New("corrupt copy")
	answers := map[*repo.Repo]error{a: fmt.Errorf("x: %w", repo.ErrNotFound), b: nil}
	var used *repo.Repo
	found, err := set.First(func(r *repo.Repo) error { used = r; return answers[r] })
	if !found || err != nil || used != b {
		t.Errorf("first good: found=%v err=%v used second=%v", found, err, used == b)
	}
	answers[b] = fmt.Errorf("y: %w", repo.ErrNotFound)
	if found, err := set.First(func(r *repo.Repo) error { return answers[r] }); found || err != nil {
		t.Errorf("nowhere: found=%v err=%v, want a quiet not-found", found, err)
	}
	answers[a] = bad
	if found, err := set.First(func(r *repo.Repo) error { return answers[r] }); !found || !errors.Is(err, bad) {
		t.Errorf("a bad copy and nothing else: found=%v err=%v", found, err)
	}
	calls := 0
	if err := set.All(func(r *repo.Repo) error { calls++; return bad }); !errors.Is(err, bad) || calls != 1 {
		t.Errorf("All: %v after %d calls", err, calls)
	}
}
