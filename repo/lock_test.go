package repo_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/storagetest"
)

func memRepo(t *testing.T) (*repo.Repo, *storagetest.Faulty) {
	t.Helper()
	m := storagetest.NewFaulty(storagetest.NewMemory())
	r, err := repo.Init(t.Context(), m, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r, m
}

func take(t *testing.T, r *repo.Repo, mode repo.LockMode, wait time.Duration) (*repo.Lock, error) {
	t.Helper()
	return r.TakeLock(t.Context(), repo.LockRequest{Mode: mode, Purpose: string(mode) + " test", Wait: wait})
}

// Shared locks coexist; an exclusive one coexists with nothing, in either order.
func TestRepositoryLockModes(t *testing.T) {
	r, _ := memRepo(t)
	ctx := t.Context()
	s1, err := take(t, r, repo.ModeShared, 0)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := take(t, r, repo.ModeShared, 0)
	if err != nil {
		t.Fatalf("second shared lock: %v", err)
	}
	_, err = take(t, r, repo.ModeExclusive, 0)
	if !errors.Is(err, repo.ErrLocked) || !strings.Contains(err.Error(), "shared test") {
		t.Fatalf("exclusive lock beside shared ones: %v", err)
	}
	// A cluster lock is another namespace.
	if l, err := r.Lock(ctx, "main", "backup"); err != nil {
		t.Fatalf("cluster lock beside shared ones: %v", err)
	} else {
		l.Unlock(ctx)
	}
	s1.Unlock(ctx)
	s2.Unlock(ctx)
	x, err := take(t, r, repo.ModeExclusive, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := take(t, r, repo.ModeShared, 0); !errors.Is(err, repo.ErrLocked) {
		t.Fatalf("shared lock beside an exclusive one: %v", err)
	}
	if _, err := take(t, r, repo.ModeExclusive, 0); !errors.Is(err, repo.ErrLocked) {
		t.Fatalf("two exclusive locks: %v", err)
	}
	x.Unlock(ctx)
	var n int
	r.ListLocks(ctx, "locks/.repository/", func(string, repo.LockInfo) error { n++; return nil })
	if n != 0 {
		t.Fatalf("%d locks left after every holder released", n)
	}
}

// A waiting exclusive lock is granted once the shared holder goes.
func TestLockWait(t *testing.T) {
	r, _ := memRepo(t)
	repo.SetLockTiming(r, time.Minute, 10*time.Minute, 10*time.Millisecond)
	s, err := take(t, r, repo.ModeShared, 0)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(100*time.Millisecond, func() { s.Unlock(context.Background()) })
	x, err := take(t, r, repo.ModeExclusive, 10*time.Second)
	if err != nil {
		t.Fatalf("waiting exclusive lock: %v", err)
	}
	x.Unlock(t.Context())
	// Waiting gives up after Wait, naming the holder and the wait.
	s, _ = take(t, r, repo.ModeShared, 0)
	defer s.Unlock(t.Context())
	_, err = take(t, r, repo.ModeExclusive, 50*time.Millisecond)
	if !errors.Is(err, repo.ErrLocked) || !strings.Contains(err.Error(), "after waiting") {
		t.Fatalf("exclusive lock after its wait: %v", err)
	}
}

// A lock not refreshed for the stale time is dead: it is removed and blocks
// nobody. A holder that could not refresh, or whose lock was removed, has lost
// it, and Check says so.
func TestLockStaleAndLost(t *testing.T) {
	r, m := memRepo(t)
	ctx := t.Context()
	repo.SetLockTiming(r, time.Hour, 200*time.Millisecond, 10*time.Millisecond)
	s, err := take(t, r, repo.ModeShared, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(ctx); err != nil {
		t.Fatalf("fresh lock: %v", err)
	}
	time.Sleep(150 * time.Millisecond) // past half the stale time, no refresh (hourly)
	if err := s.Check(ctx); !errors.Is(err, repo.ErrLockLost) {
		t.Fatalf("Check of a lock not refreshed for 3/4 of the stale time: %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	x, err := take(t, r, repo.ModeExclusive, 0)
	if err != nil {
		t.Fatalf("exclusive lock beside a stale shared one: %v", err)
	}
	x.Unlock(ctx)
	if err := s.Check(ctx); !errors.Is(err, repo.ErrLockLost) || !strings.Contains(err.Error(), "removed") && !strings.Contains(err.Error(), "refreshed") {
		t.Fatalf("Check of a lock taken for dead: %v", err)
	}

	// Refreshing keeps a lock alive past the stale time, and Check content.
	repo.SetLockTiming(r, 20*time.Millisecond, 200*time.Millisecond, 10*time.Millisecond)
	s2, err := take(t, r, repo.ModeShared, 0)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	if err := s2.Check(ctx); err != nil {
		t.Fatalf("refreshed lock: %v", err)
	}
	if _, err := take(t, r, repo.ModeExclusive, 0); !errors.Is(err, repo.ErrLocked) {
		t.Fatalf("exclusive lock beside a refreshed shared one: %v", err)
	}
	// A refresh that fails leaves the old lock; past half the stale time, Check fails.
	m.Set(storagetest.Fault{Op: storagetest.OpPut, Prefix: "locks/", Err: storagetest.ErrInjected})
	time.Sleep(150 * time.Millisecond)
	if err := s2.Check(ctx); !errors.Is(err, repo.ErrLockLost) || !strings.Contains(err.Error(), "could not be refreshed") {
		t.Fatalf("Check after failing refreshes: %v", err)
	}
	m.Set()
	s2.Unlock(ctx)
}
