package receive

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/pgward/pgward/internal/durable"
	"github.com/pgward/pgward/wal"
	"golang.org/x/sys/unix"
)

// The receiver's spool (docs/wal-receive.md, "What is durable where"):
//
//	<segment>.partial        the segment being received, zero-padded to the segment size
//	<segment>                a completed segment, not yet archived
//	<segment>.timeline-end   the last segment of a timeline that ended, archived as <segment>.partial
//	<TTTTTTTT>.history       a timeline history file, not yet archived
//	.lock                    held with flock by the one process using the spool; holds its pid
//
// Everything but .lock is written durably (temporary name, fsync, rename, fsync of
// the directory) before the server is told or the file is counted as pending, and
// removed only after it is durable in every repository.

const (
	partialSuffix     = ".partial"
	timelineEndSuffix = ".timeline-end"
	lockName          = ".lock"
)

// spool is a locked receiver spool directory.
type spool struct {
	dir  string
	lock *os.File
}

// ErrSpoolBusy is wrapped when another process holds the spool.
var ErrSpoolBusy = errors.New("the spool is in use by another wal-receive")

// lockSpool takes the spool's lock, so that two receivers (or a receiver and a
// --flush-only run) never write or upload the same spool.
func lockSpool(dir string) (*spool, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("wal-receive: spool %s: %w", dir, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(f.Name())
		f.Close()
		pid := strings.TrimSpace(string(holder))
		if pid == "" {
			pid = "unknown"
		}
		return nil, fmt.Errorf("wal-receive: %w (pid %s) at %s; stop it first, or give this one its own --spool-path", ErrSpoolBusy, pid, dir)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &spool{dir: dir, lock: f}, nil
}

func (s *spool) unlock() {
	if s.lock != nil {
		_ = unix.Flock(int(s.lock.Fd()), unix.LOCK_UN)
		s.lock.Close()
		s.lock = nil
	}
}

func (s *spool) path(name string) string { return filepath.Join(s.dir, name) }

// pending is what the spool holds that the repository may not have yet.
type pending struct {
	histories    []string // history file names
	segments     []string // completed segments, in order
	timelineEnds []string // segment names (without suffix)
	partials     []string // segment names (without suffix), in order
	bytes        int64    // the size of all of them
	segSize      uint64   // learned from a segment file's size (0: none)
}

// scan lists the spool.
func (s *spool) scan() (pending, error) {
	var p pending
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return p, fmt.Errorf("wal-receive: reading the spool: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !e.Type().IsRegular() {
			continue
		}
		base, kind := name, ""
		for _, suf := range []string{partialSuffix, timelineEndSuffix} {
			if b, ok := strings.CutSuffix(name, suf); ok {
				base, kind = b, suf
			}
		}
		n, err := wal.ParseName(base)
		if err != nil {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		switch {
		case n.Kind == wal.History && kind == "":
			p.histories = append(p.histories, name)
		case n.Kind == wal.Segment && kind == "":
			p.segments = append(p.segments, name)
		case n.Kind == wal.Segment && kind == timelineEndSuffix:
			p.timelineEnds = append(p.timelineEnds, base)
		case n.Kind == wal.Segment && kind == partialSuffix:
			p.partials = append(p.partials, base)
		default:
			continue
		}
		p.bytes += fi.Size()
		if n.Kind == wal.Segment && wal.ValidSegSize(uint64(fi.Size())) {
			p.segSize = uint64(fi.Size())
		}
	}
	for _, l := range [][]string{p.histories, p.segments, p.timelineEnds, p.partials} {
		sort.Strings(l)
	}
	return p, nil
}

// writeDurable stores a file in the spool so that it survives a crash.
func (s *spool) writeDurable(name string, data []byte) error {
	return durable.WriteFile(s.path(name), data)
}

// renameDurable renames a spool file and makes the rename durable.
func (s *spool) renameDurable(from, to string) error {
	if err := os.Rename(s.path(from), s.path(to)); err != nil {
		return err
	}
	return durable.SyncDir(s.dir)
}
