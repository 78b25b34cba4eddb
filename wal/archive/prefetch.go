package archive

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/wal"
)

// The prefetch side of the spool, get/ under the spool directory:
//
//	<segment>            a prefetched segment, verified and decoded when it was fetched
//	.inflight-<segment>  a prefetcher is fetching this segment (archive-get waits for it)
//	.want                the segment archive-get was last asked for
//	.boot                the kernel boot id the files above were written under
//	.lock                flock held by the one running prefetcher
//
// Files are written with a temporary name and a rename but not fsynced: a
// prefetched segment is a cache, and after an operating system crash a file
// renamed but not yet written back could read as zeros or be cut short, which
// PostgreSQL would replay as an early end of WAL. So the boot id is recorded
// and a spool from an earlier boot is emptied before anything in it is served.
//
// One prefetcher keeps the window of segments after .want filled, following it
// as PostgreSQL asks for later segments, and exits when the archive has no
// next segment or when nobody asked for anything for prefetchIdle.

// prefetchIdle is how long a prefetcher with a full window waits for
// PostgreSQL to move on before it exits; the next archive-get starts another.
const prefetchIdle = 5 * time.Second

// prefetchPoll is how often a prefetcher with nothing to do rereads .want.
const prefetchPoll = 2 * time.Millisecond

func (s *Spool) wantPath() string { return filepath.Join(s.getDir(), ".want") }

// setWant records the segment archive-get was asked for, for the prefetcher.
// It is rewritten in place rather than renamed into place, which would cost a
// new file per call: a prefetcher that reads it half-written gets no valid
// name and keeps its window until the next poll.
func (s *Spool) setWant(name string) { _ = os.WriteFile(s.wantPath(), []byte(name), 0o600) }

// want returns the segment archive-get was last asked for, or "".
func (s *Spool) want() string {
	b, err := os.ReadFile(s.wantPath())
	if err != nil {
		return ""
	}
	name := string(bytes.TrimSpace(b))
	if n, err := wal.ParseName(name); err != nil || n.Kind != wal.Segment {
		return ""
	}
	return name
}

// bootID identifies the running kernel instance ("" when unknown).
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return string(bytes.TrimSpace(b))
}

// checkBoot empties the prefetch spool when it was filled before the last
// restart of the operating system (see above), and records the current boot.
func (s *Spool) checkBoot() {
	id := bootID()
	p := filepath.Join(s.getDir(), ".boot")
	if have, err := os.ReadFile(p); err == nil && string(have) == id {
		return
	}
	entries, _ := os.ReadDir(s.getDir())
	for _, e := range entries {
		if e.Name() != ".lock" && e.Name() != ".boot" {
			os.Remove(filepath.Join(s.getDir(), e.Name()))
		}
	}
	// Durable, so that segments written after it are never mistaken for ones
	// from before a crash.
	_ = writeAtomic(p, []byte(id), true)
}

// waitInflight waits, up to max, while a prefetcher is fetching name.
func (s *Spool) waitInflight(name string, max time.Duration) {
	inflight := filepath.Join(s.getDir(), ".inflight-"+name)
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) {
		fi, err := os.Stat(inflight)
		if err != nil || time.Since(fi.ModTime()) > max {
			return // not in flight, or left behind by a prefetcher that died
		}
		time.Sleep(time.Millisecond)
	}
}

// pruneGet removes prefetched files PostgreSQL has moved past.
func (s *Spool) pruneGet(current string) {
	entries, _ := os.ReadDir(s.getDir())
	for _, e := range entries {
		if e.Name() < current && !strings.HasPrefix(e.Name(), ".") {
			os.Remove(filepath.Join(s.getDir(), e.Name()))
		}
	}
}

// PrefetcherRunning reports whether a prefetcher holds the spool's lock, so a
// caller need not start another one only to see it exit.
func (s *Spool) PrefetcherRunning() bool {
	lock, err := os.OpenFile(filepath.Join(s.getDir(), ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return false
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return true
	}
	syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	return false
}

// prefetchWorkers is how many segments are fetched at once. Fetching a
// segment from a local repository is CPU work (hash verification and
// decompression), so more workers than cores only delay the segment
// PostgreSQL needs next; object stores hide latency with a few more.
func prefetchWorkers() int {
	return min(max(runtime.NumCPU(), 2), 4)
}

// Prefetch keeps up to count segments after the one archive-get was last asked
// for (initially after) in the spool (segSize 0: the size the repository
// records for the cluster), fetching them in order, a few at a time,
// until the archive has no next segment or nobody has asked for one for
// prefetchIdle. One prefetcher runs per spool at a time (an flock); a second
// returns at once.
func Prefetch(ctx context.Context, repos []*repo.Repo, after string, segSize uint64, count int, o GetOptions) error {
	if o.Spool == nil || count <= 0 {
		return nil
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if segSize == 0 {
		// Started before the first segment was fetched: the repository
		// knows the cluster's segment size.
		for _, r := range repos {
			if id, err := r.Identity(ctx, o.Cluster); err == nil && wal.ValidSegSize(id.WALSegSize) {
				segSize = id.WALSegSize
				break
			}
		}
		if segSize == 0 {
			return nil // unknown yet: a later archive-get starts another prefetcher
		}
	}
	if _, err := wal.NextSegments(after, segSize, 1); err != nil {
		return err
	}
	lock, err := os.OpenFile(filepath.Join(o.Spool.getDir(), ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return nil // another prefetcher is at work
	}
	type result struct {
		name  string
		found bool
	}
	done := make(chan result)
	inflight := map[string]bool{}
	missing := "" // the first segment no repository has: the end of the archive, for now
	lastWant, lastMove := after, time.Now()
	// The window is looked at again only when something changed: recovery
	// moved on or a fetch ended. In between, a poll reads one small file.
	rescan, idle := true, false
	for {
		want := o.Spool.want()
		if want == "" || want < lastWant {
			want = lastWant // a history file or an older timeline: keep the window
		}
		if want != lastWant {
			lastWant, lastMove, rescan = want, time.Now(), true
			if missing != "" && missing <= want {
				missing = "" // PostgreSQL got past it: archived since, or served by another path
			}
		}
		var names []string
		if rescan {
			if names, err = wal.NextSegments(want, segSize, count); err != nil {
				return err
			}
			rescan, idle = false, true
		}
		for _, name := range names {
			if len(inflight) >= prefetchWorkers() {
				idle = false
				break
			}
			if missing != "" && name >= missing {
				break
			}
			if inflight[name] {
				idle = false
				continue
			}
			p := filepath.Join(o.Spool.getDir(), name)
			if _, err := os.Stat(p); err == nil {
				continue
			}
			// Announce the fetch, so an archive-get asking for this file waits
			// for it instead of fetching it a second time.
			mark := filepath.Join(o.Spool.getDir(), ".inflight-"+name)
			f, err := os.OpenFile(mark, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err != nil {
				continue // archive-get is fetching it itself, or a stale marker
			}
			f.Close()
			inflight[name], idle = true, false
			go func() {
				defer os.Remove(mark)
				data, found, err := fetch(ctx, repos, o.Cluster, name)
				if err == nil && found {
					if err := writeAtomic(p, data, false); err != nil {
						o.Log.Debug("prefetch", "file", name, "error", err)
					}
				}
				// An error counts as missing: archive-get reports it when
				// PostgreSQL asks for the file.
				done <- result{name, err == nil && found}
			}()
		}
		if idle && len(inflight) == 0 && (missing != "" || time.Since(lastMove) > prefetchIdle) {
			return nil
		}
		select {
		case r := <-done:
			delete(inflight, r.name)
			rescan = true
			if !r.found && (missing == "" || r.name < missing) {
				missing = r.name
			}
		case <-time.After(prefetchPoll):
		case <-ctx.Done():
			for range inflight {
				<-done
			}
			return ctx.Err()
		}
	}
}
