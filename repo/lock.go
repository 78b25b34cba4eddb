package repo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Locks are objects, so they work wherever objects do, S3 included
// (docs/repository-format.md, "Locks"). The protocol, as restic's:
//   - A holder writes its lock object, waits the settle delay, then lists the
//     lock directory. If a live lock there conflicts with its own, it removes its
//     own and waits or fails; two racing holders both see each other (each
//     listed after the other's write), so both back off and never both proceed.
//   - A holder refreshes its lock by writing a new one and then deleting the old
//     one every lockRefresh; a lock not refreshed for lockStale is dead.
//   - A lock from this host whose process no longer exists is dead at once, so a
//     process killed with SIGKILL does not block the next one.
//   - A holder that could not refresh for lockStale/2 has lost its lock: others
//     may take it for dead soon. Check reports that, and writers check before
//     they commit.

// lockTiming is the lock protocol's clock; tests shorten it.
type lockTiming struct {
	refresh, stale, poll time.Duration
}

var defaultLockTiming = lockTiming{refresh: 5 * time.Minute, stale: 30 * time.Minute, poll: 2 * time.Second}

// LockMode says what a lock conflicts with.
type LockMode string

const (
	// ModeCluster: one holder per cluster (backups of one cluster).
	ModeCluster LockMode = "cluster"
	// ModeShared: any number of holders, but no exclusive one (writers that
	// add objects others will name, and verify).
	ModeShared LockMode = "shared"
	// ModeExclusive: no other holder at all (the garbage collection sweep).
	ModeExclusive LockMode = "exclusive"
)

// repositoryLocks is the directory of the repository-wide locks; a cluster name
// never starts with a dot, so it cannot be a cluster's.
const repositoryLocks = "locks/.repository/"

// LockRequest says which lock to take and how patiently.
type LockRequest struct {
	// Cluster is the cluster of a ModeCluster lock; empty for repository locks.
	Cluster string
	Mode    LockMode
	// Purpose says why, for messages ("backup", "expire").
	Purpose string
	// Wait is how long to keep trying while a conflicting lock is held; 0 fails
	// at once.
	Wait time.Duration
	// Settle is how long to wait between writing the lock and listing the
	// others, for storages whose listings lag behind writes.
	Settle time.Duration
	// OnWait, if set, is told once who holds the lock when TakeLock starts to
	// wait for it (so a user learns why nothing happens).
	OnWait func(holder LockInfo)
}

func (q LockRequest) dir() string {
	if q.Mode == ModeCluster {
		return "locks/" + q.Cluster + "/"
	}
	return repositoryLocks
}

// conflicts reports whether a live lock of mode other keeps q from holding.
func (q LockRequest) conflicts(other LockMode) bool {
	switch q.Mode {
	case ModeShared:
		return other == ModeExclusive
	default:
		return true
	}
}

// LockInfo is the content of a lock object.
type LockInfo struct {
	Cluster string    `json:"cluster"`
	Purpose string    `json:"purpose"`
	Mode    LockMode  `json:"mode,omitempty"`
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Time    time.Time `json:"time"`
}

// ErrLocked is wrapped when another live process holds a conflicting lock.
var ErrLocked = errors.New("repository is locked")

// ErrLockLost is wrapped when a holder could not keep its lock fresh.
var ErrLockLost = errors.New("lock lost")

// Lock is a held lock; Unlock releases it.
type Lock struct {
	r      *Repo
	req    LockRequest
	info   LockInfo
	timing lockTiming

	mu          sync.Mutex
	name        string
	lastRefresh time.Time // monotonic: when the current object was written
	cancel      context.CancelFunc
	done        chan struct{}
}

// Lock takes the cluster's lock for purpose (e.g. "backup"): one holder per
// cluster, failing at once when another holds it.
func (r *Repo) Lock(ctx context.Context, cluster, purpose string) (*Lock, error) {
	return r.TakeLock(ctx, LockRequest{Cluster: cluster, Mode: ModeCluster, Purpose: purpose})
}

// LockPolicy is how patiently a repository's locks are taken (config lock-wait and
// lock-settle); the opener sets it.
type LockPolicy struct {
	// Wait applies to repository locks requested without a Wait of their own.
	Wait time.Duration
	// Settle is the least settle delay of every lock.
	Settle time.Duration
}

// SetLockPolicy sets how this repository's locks are taken.
func (r *Repo) SetLockPolicy(p LockPolicy) { r.lockPolicy = p }

// TakeLock takes the lock q describes, waiting up to q.Wait while a conflicting
// one is held (for repository locks without a Wait, the repository's policy's).
func (r *Repo) TakeLock(ctx context.Context, q LockRequest) (*Lock, error) {
	q.Settle = max(q.Settle, r.lockPolicy.Settle)
	if q.Mode != ModeCluster && q.Wait == 0 {
		q.Wait = r.lockPolicy.Wait
	}
	host, _ := os.Hostname()
	l := &Lock{r: r, req: q, timing: r.lockTiming, info: LockInfo{Cluster: q.Cluster, Purpose: q.Purpose, Host: host, PID: os.Getpid()}}
	if q.Mode != ModeCluster {
		l.info.Mode = q.Mode
	}
	deadline := time.Now().Add(q.Wait)
	for {
		holder, err := l.try(ctx)
		if err != nil {
			return nil, err
		}
		if holder == nil {
			break
		}
		if !time.Now().Before(deadline) {
			return nil, l.lockedError(holder)
		}
		if q.OnWait != nil {
			q.OnWait(*holder)
			q.OnWait = nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(l.timing.poll):
		}
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l.cancel, l.done = cancel, make(chan struct{})
	go l.refresh(rctx)
	return l, nil
}

// try writes the lock and looks for a conflicting holder; with one, it removes
// its own lock again and returns the holder.
func (l *Lock) try(ctx context.Context) (*LockInfo, error) {
	if err := l.write(ctx); err != nil {
		return nil, err
	}
	holder, err := l.conflicting(ctx)
	if err == nil && holder == nil {
		return nil, nil
	}
	_ = l.r.st.Delete(context.WithoutCancel(ctx), l.name)
	return holder, err
}

// conflicting waits the settle delay, then lists the live locks of the
// directory and returns one that conflicts with l, removing dead ones.
func (l *Lock) conflicting(ctx context.Context) (*LockInfo, error) {
	if l.req.Settle > 0 {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(l.req.Settle):
		}
	}
	var holder *LockInfo
	err := l.r.ListLocks(ctx, l.req.dir(), func(name string, other LockInfo) error {
		if name == l.name || !l.req.conflicts(other.mode()) {
			return nil
		}
		holder = &other
		return nil
	})
	return holder, err
}

// ListLocks calls fn for every live lock in dir ("locks/<cluster>/" or the
// repository's), deleting the dead ones it meets: they are garbage.
func (r *Repo) ListLocks(ctx context.Context, dir string, fn func(name string, info LockInfo) error) error {
	host, _ := os.Hostname()
	var names []string
	err := r.st.List(ctx, dir, func(o ObjectInfo) error {
		if !strings.Contains(strings.TrimPrefix(o.Name, dir), "/") {
			names = append(names, o.Name)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("listing locks in %s: %w", r.st, err)
	}
	for _, name := range names {
		var info LockInfo
		if err := r.getJSON(ctx, name, &info); err != nil {
			if errors.Is(err, ErrNotFound) {
				continue // released meanwhile
			}
			return fmt.Errorf("reading lock %s: %w", name, err)
		}
		if info.dead(host, r.lockTiming.stale) {
			_ = r.st.Delete(ctx, name)
			continue
		}
		if err := fn(name, info); err != nil {
			return err
		}
	}
	return nil
}

func (l *Lock) lockedError(h *LockInfo) error {
	what := fmt.Sprintf("the repository (%s)", h.mode())
	if l.req.Mode == ModeCluster {
		what = fmt.Sprintf("cluster %q", l.req.Cluster)
	}
	hint := "wait for it to finish"
	if l.req.Wait > 0 {
		hint = fmt.Sprintf("it was still held after waiting %s; wait for it to finish or raise lock-wait", l.req.Wait)
	}
	return fmt.Errorf("%w: %s of %s has held it since %s (host %s, pid %d); %s", ErrLocked, h.Purpose, what, h.Time.Format(time.RFC3339), h.Host, h.PID, hint)
}

func (i *LockInfo) mode() LockMode {
	if i.Mode == "" {
		return ModeCluster
	}
	return i.Mode
}

func (i *LockInfo) dead(host string, stale time.Duration) bool {
	if time.Since(i.Time) > stale {
		return true
	}
	if i.Host == host && i.PID > 0 {
		if err := syscall.Kill(i.PID, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
	}
	return false
}

func (l *Lock) write(ctx context.Context) error {
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return err
	}
	wrote := time.Now()
	l.info.Time = wrote.UTC()
	name := l.req.dir() + l.info.Time.Format("20060102T150405Z") + "-" + hex.EncodeToString(rnd[:])
	if _, err := l.r.putJSON(ctx, name, l.info); err != nil {
		return fmt.Errorf("writing a %s lock to %s: %w", l.req.Mode, l.r.st, err)
	}
	l.mu.Lock()
	l.name, l.lastRefresh = name, wrote
	l.mu.Unlock()
	return nil
}

// refresh rewrites the lock every refresh interval; after a failure it tries
// again sooner, until the lock is lost (Check then says so).
func (l *Lock) refresh(ctx context.Context) {
	defer close(l.done)
	wait := l.timing.refresh
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		l.mu.Lock()
		old := l.name
		l.mu.Unlock()
		if err := l.write(ctx); err != nil {
			wait = max(l.timing.refresh/10, time.Second)
			continue
		}
		wait = l.timing.refresh
		_ = l.r.st.Delete(ctx, old)
	}
}

// Check reports whether the lock is still held: refreshed within half the
// stale time, and its object still there (nobody took it for dead). A writer
// calls it just before it commits, so it never commits after a garbage
// collector may have taken its unnamed objects for garbage.
func (l *Lock) Check(ctx context.Context) error {
	l.mu.Lock()
	name, last := l.name, l.lastRefresh
	l.mu.Unlock()
	if age := time.Since(last); age > l.timing.stale/2 {
		return fmt.Errorf("%w: the %s lock in %s could not be refreshed for %s; the %s stops so that nothing is committed unprotected", ErrLockLost, l.req.Mode, l.r.st, age.Round(time.Second), l.req.Purpose)
	}
	if _, err := l.r.st.Stat(ctx, name); err != nil {
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("%w: the %s lock %s in %s was removed by another process (taken for dead); the %s stops", ErrLockLost, l.req.Mode, name, l.r.st, l.req.Purpose)
		}
		return fmt.Errorf("checking the %s lock in %s: %w", l.req.Mode, l.r.st, err)
	}
	return nil
}

// Unlock releases the lock.
func (l *Lock) Unlock(ctx context.Context) error {
	l.cancel()
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.st.Delete(context.WithoutCancel(ctx), l.name)
}

// IsLockObject reports whether an object name is a lock (for tools that walk the
// repository).
func IsLockObject(name string) bool { return strings.HasPrefix(name, "locks/") }
