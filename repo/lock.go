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

// Locks keep two backups of one cluster from running at once, across hosts,
// using nothing but create-only objects (so they work on S3 too), as restic
// does:
//   - A holder writes locks/<cluster>/<unique name> and then lists the
//     directory. If any other live lock is there, it removes its own and fails;
//     two racing writers both see each other and both back off (safe, never two
//     winners).
//   - A holder refreshes its lock by writing a new one and deleting the old one
//     every lockRefresh; a lock not refreshed for lockStale is dead.
//   - A lock from this host whose process no longer exists is dead at once, so a
//     backup killed with SIGKILL does not block the next one.
const (
	lockRefresh = 5 * time.Minute
	lockStale   = 30 * time.Minute
)

// LockInfo is the content of a lock object.
type LockInfo struct {
	Cluster string    `json:"cluster"`
	Purpose string    `json:"purpose"`
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Time    time.Time `json:"time"`
}

// ErrLocked is wrapped when another live process holds the cluster's lock.
var ErrLocked = errors.New("cluster is locked")

// Lock is a held lock; Unlock releases it.
type Lock struct {
	r      *Repo
	info   LockInfo
	mu     sync.Mutex
	name   string
	cancel context.CancelFunc
	done   chan struct{}
}

func lockPrefix(cluster string) string { return "locks/" + cluster + "/" }

// Lock takes the cluster's exclusive lock for purpose (e.g. "backup").
func (r *Repo) Lock(ctx context.Context, cluster, purpose string) (*Lock, error) {
	host, _ := os.Hostname()
	l := &Lock{r: r, info: LockInfo{Cluster: cluster, Purpose: purpose, Host: host, PID: os.Getpid()}}
	if err := l.write(ctx); err != nil {
		return nil, err
	}
	var holder *LockInfo
	err := r.st.List(ctx, lockPrefix(cluster), func(o ObjectInfo) error {
		if o.Name == l.name {
			return nil
		}
		var other LockInfo
		if err := r.getJSON(ctx, o.Name, &other); err != nil {
			if errors.Is(err, ErrNotFound) {
				return nil // released meanwhile
			}
			return err
		}
		if other.dead(host) {
			// Dead locks are garbage: remove them so they stop costing a read.
			_ = r.st.Delete(ctx, o.Name)
			return nil
		}
		holder = &other
		return nil
	})
	if err == nil && holder != nil {
		err = fmt.Errorf("%w: %s of cluster %q has held it since %s (host %s, pid %d); wait for it to finish", ErrLocked, holder.Purpose, cluster, holder.Time.Format(time.RFC3339), holder.Host, holder.PID)
	}
	if err != nil {
		_ = r.st.Delete(context.WithoutCancel(ctx), l.name)
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l.cancel, l.done = cancel, make(chan struct{})
	go l.refresh(rctx)
	return l, nil
}

func (i *LockInfo) dead(host string) bool {
	if time.Since(i.Time) > lockStale {
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
	l.info.Time = time.Now().UTC()
	name := lockPrefix(l.info.Cluster) + l.info.Time.Format("20060102T150405Z") + "-" + hex.EncodeToString(rnd[:])
	if _, err := l.r.putJSON(ctx, name, l.info); err != nil {
		return fmt.Errorf("writing lock for cluster %q to %s: %w", l.info.Cluster, l.r.st, err)
	}
	l.mu.Lock()
	l.name = name
	l.mu.Unlock()
	return nil
}

func (l *Lock) refresh(ctx context.Context) {
	defer close(l.done)
	t := time.NewTicker(lockRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.mu.Lock()
			old := l.name
			l.mu.Unlock()
			if err := l.write(ctx); err == nil {
				_ = l.r.st.Delete(ctx, old)
			}
		}
	}
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
