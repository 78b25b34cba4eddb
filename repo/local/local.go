// Package local keeps repository objects as files in a directory on a local file system.
//
// An object name maps to a relative path under the repository directory, one path segment
// per name segment: "chunks/ab/abcdef…" is the file dir/chunks/ab/abcdef…. Directories are
// created on demand and never removed, so a directory once seen to exist is cached and not
// created again.
//
// Invariants kept here:
//   - Atomic, durable, write-once Put. Bytes go to a temp file ".tmp-<random>" in the
//     destination directory, which is fsynced, then linked to the final name with link(2).
//     Unlike rename(2), link fails with EEXIST instead of replacing an existing file, so two
//     writers racing for one name cannot overwrite each other and exactly one wins. The temp
//     name is removed and the directory fsynced before Put returns, so the new entry survives
//     a power loss. Every directory Put relies on has had its parent fsynced by this process.
//   - PutDeferred is Put without the directory fsync: the bytes are durable when it returns,
//     the new name only after the next SyncDeferred, which fsyncs every directory that gained
//     a deferred entry since the last one. The repository stores chunks this way and calls
//     SyncDeferred before it writes the manifest that names them (one fsync per fan-out
//     directory per backup instead of one per chunk). A crash in between can lose names, never
//     expose a name whose bytes are not durable, and a Put or PutDeferred that finds the name
//     taken fsyncs the directory before it reports ErrExists, as Put does.
//   - Temp files are invisible: names with a segment starting with ".tmp-" cannot be Put and
//     are skipped by List, so a temp file left by a crash is garbage, never an object.
//     Leftovers reports them (".tmp-<object base name>-<random>", so they name their object).
//   - Only regular files are objects. Directories and anything else (sockets, FIFOs) are
//     neither reported by List nor returned by Get and Stat, and Delete never removes a
//     directory. Symlinks are followed everywhere, so part of a repository may live on
//     another disk.
//
// Puts run in parallel without a shared lock: the only shared state is the directory cache,
// a sync.Map that is read far more than written.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/pgward/pgward/internal/durable"
	"github.com/pgward/pgward/repo"
	"golang.org/x/sync/errgroup"
)

// tempPrefix starts the names of files being written. Object names may not use it, so List
// can skip such files without ever hiding an object.
const tempPrefix = ".tmp-"

const (
	fileMode = 0o600
	dirMode  = 0o700
)

// Storage is a repo.Storage over a local directory.
type Storage struct {
	dir string
	// dirs caches the relative directories (slash-separated) that are known to exist and whose
	// entries in their parents have been fsynced, so steady-state Puts make no mkdir calls.
	dirs sync.Map
	// unsynced holds the directories that gained entries through PutDeferred since the last
	// SyncDeferred.
	mu       sync.Mutex
	unsynced map[string]struct{}
}

var _ repo.Storage = (*Storage)(nil)

// Open returns the storage kept in dir, which must already exist.
func Open(dir string) (*Storage, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open repository directory %s: %w", dir, err)
	}
	fi, err := os.Stat(abs)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &notExistError{dir: abs}
	}
	if err != nil {
		return nil, fmt.Errorf("open repository directory %s: %w", abs, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("repository path %s is not a directory", abs)
	}
	return &Storage{dir: abs}, nil
}

// Create returns the storage kept in dir, creating dir (and missing parents, mode 0700) if it
// does not exist. Every directory it creates is made durable before it returns.
func Create(dir string) (*Storage, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("create repository directory %s: %w", dir, err)
	}
	// Find the missing directories first, so that exactly the parents whose contents changed
	// are fsynced afterwards.
	var missing []string
	for d := abs; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("create repository directory %s: %w", abs, err)
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if err := os.MkdirAll(abs, dirMode); err != nil {
		return nil, fmt.Errorf("create repository directory %s: %w", abs, err)
	}
	for _, d := range missing {
		if err := durable.SyncDir(filepath.Dir(d)); err != nil {
			return nil, fmt.Errorf("create repository directory %s: %w", abs, err)
		}
	}
	return Open(abs)
}

// Dir returns the absolute path of the repository directory.
func (s *Storage) Dir() string { return s.dir }

// String returns the repository directory, for messages.
func (s *Storage) String() string { return s.dir }

// notExistError is Open's error for a missing directory: one sentence for the user, and
// errors.Is(err, fs.ErrNotExist) for callers that want to offer creating it.
type notExistError struct{ dir string }

func (e *notExistError) Error() string { return "repository directory " + e.dir + " does not exist" }
func (e *notExistError) Unwrap() error { return fs.ErrNotExist }

// checkName applies repo.ValidName plus the one rule of this backend: no segment may look
// like a temp file, or List would hide the object.
func checkName(name string) error {
	if err := repo.ValidName(name); err != nil {
		return err
	}
	for seg := range strings.SplitSeq(name, "/") {
		if strings.HasPrefix(seg, tempPrefix) {
			return fmt.Errorf("%w %q: a path segment starts with %q, which local storage reserves for temp files",
				repo.ErrInvalidName, name, tempPrefix)
		}
	}
	return nil
}

// path returns the file path of a slash-separated relative name.
func (s *Storage) path(name string) string {
	if name == "." || name == "" {
		return s.dir
	}
	return filepath.Join(s.dir, filepath.FromSlash(name))
}

// copyBufs holds copy buffers for Put. A buffer larger than io.Copy's 32 KiB means a 1-4 MiB
// object goes to the kernel in a few write calls, and pooling keeps parallel Puts from
// allocating one per object.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// Put implements repo.Storage.
func (s *Storage) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	return s.put(ctx, name, r, size, false)
}

// PutDeferred implements repo.Storage: Put without the directory fsync, which the next
// SyncDeferred does once per directory.
func (s *Storage) PutDeferred(ctx context.Context, name string, r io.Reader, size int64) error {
	return s.put(ctx, name, r, size, true)
}

// SyncDeferred implements repo.Storage: it fsyncs each directory that gained a name through
// PutDeferred since the last SyncDeferred, a few at a time. Directories whose fsync failed,
// or that were not reached, stay pending for the next call.
func (s *Storage) SyncDeferred(ctx context.Context) error {
	s.mu.Lock()
	dirs := s.unsynced
	s.unsynced = nil
	s.mu.Unlock()
	g, _ := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for d := range dirs {
		g.Go(func() error { return durable.SyncDir(d) })
	}
	if err := g.Wait(); err != nil {
		for d := range dirs {
			s.markUnsynced(d)
		}
		return fmt.Errorf("making new objects durable in %s: %w", s.dir, err)
	}
	return nil
}

// markUnsynced records that dir gained an entry the next SyncDeferred must make durable.
func (s *Storage) markUnsynced(dir string) {
	s.mu.Lock()
	if s.unsynced == nil {
		s.unsynced = map[string]struct{}{}
	}
	s.unsynced[dir] = struct{}{}
	s.mu.Unlock()
}

func (s *Storage) put(ctx context.Context, name string, r io.Reader, size int64, deferSync bool) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	if size < 0 {
		return fmt.Errorf("put %s: negative size %d", name, size)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	rel := path.Dir(name)
	dir := s.path(rel)
	tmp, err := s.createTemp(rel, path.Base(name))
	if err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	tmpName := tmp.Name()
	linked := false
	defer func() {
		if !linked {
			tmp.Close() // a no-op error if already closed
			os.Remove(tmpName)
		}
	}()

	if err := writeAll(ctx, tmp, r, size); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("put %s: fsync temp file: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("put %s: close temp file: %w", name, err)
	}
	// Last chance to back out: after the link the object exists and Put must finish.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	final := s.path(name)
	if err := os.Link(tmpName, final); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return s.existing(name, final, dir)
		}
		return fmt.Errorf("put %s: %w", name, err)
	}
	linked = true
	// The object is complete under its final name. A temp name we fail to remove is harmless
	// garbage that List never shows, so it does not fail the Put.
	_ = os.Remove(tmpName)
	if deferSync {
		s.markUnsynced(dir)
		return nil
	}
	if err := durable.SyncDir(dir); err != nil {
		// Not removed: a concurrent Put of the same name may already have returned ErrExists
		// and its caller relies on this object.
		return fmt.Errorf("put %s: object written but not known to be durable: %w", name, err)
	}
	return nil
}

// createTemp creates a temp file for the object base in the relative directory rel, creating
// the directory first if needed. Its name says which object it was for (leftovers.go).
func (s *Storage) createTemp(rel, base string) (*os.File, error) {
	for attempt := 0; ; attempt++ {
		err := s.ensureDir(rel)
		var f *os.File
		if err == nil {
			f, err = os.CreateTemp(s.path(rel), tempName(base))
			if err != nil {
				err = fmt.Errorf("create temp file: %w", err)
			}
		}
		if err == nil {
			return f, nil
		}
		if attempt > 0 || !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		// A cached directory was removed behind our back (an operator cleaning up, a test).
		// Forget what we knew about this subtree and create it again, once.
		s.forgetDirs(rel)
	}
}

// existing builds Put's error when the final name is taken.
func (s *Storage) existing(name, final, dir string) error {
	fi, err := os.Stat(final)
	if err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("put %s: %s exists and is not a regular file", name, final)
	}
	// The winner of a race links first and fsyncs the directory after, so the entry we ran
	// into may not be durable yet. ErrExists promises that it is: make it so.
	if err := durable.SyncDir(dir); err != nil {
		return fmt.Errorf("put %s: object exists but its directory cannot be synced: %w", name, err)
	}
	return fmt.Errorf("put %s: %w", name, repo.ErrExists)
}

// writeAll copies exactly size bytes from r to f, checking ctx between reads. A reader with
// fewer bytes is an error; so is one with more, since it means the caller's size is wrong
// and the object would be silently truncated.
func writeAll(ctx context.Context, f *os.File, r io.Reader, size int64) error {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	// The wrappers hide ReaderFrom/WriterTo so that io.CopyBuffer uses our buffer.
	n, err := io.CopyBuffer(writerOnly{f}, &ctxReader{ctx: ctx, r: io.LimitReader(r, size)}, *bp)
	if err != nil {
		return fmt.Errorf("write temp file: %w", err)
	}
	if n < size {
		return fmt.Errorf("reader ended after %d of %d bytes: %w", n, size, io.ErrUnexpectedEOF)
	}
	var one [1]byte
	switch m, err := io.ReadFull(r, one[:]); {
	case m > 0:
		return fmt.Errorf("reader has more than the %d bytes announced", size)
	case err != io.EOF:
		return fmt.Errorf("read after the %d bytes announced: %w", size, err)
	}
	return nil
}

type writerOnly struct{ io.Writer }

// ctxReader makes a long copy stop soon after ctx is canceled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// ensureDir makes sure the relative directory rel exists and that its entry, and those of all
// its ancestors below the repository directory, are durable. A directory found already
// existing is treated like one just created (its parent is fsynced once), because a
// concurrent Put may have created it and not yet fsynced its parent, or a crashed process
// may have left it unsynced.
func (s *Storage) ensureDir(rel string) error {
	if rel == "." {
		return nil
	}
	if _, ok := s.dirs.Load(rel); ok {
		return nil
	}
	parent := path.Dir(rel)
	if err := s.ensureDir(parent); err != nil {
		return err
	}
	full := s.path(rel)
	if err := os.Mkdir(full, dirMode); err != nil {
		if !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create directory: %w", err)
		}
		fi, err := os.Stat(full)
		if err != nil {
			return fmt.Errorf("create directory: %w", err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("create directory: %s exists and is not a directory", full)
		}
	}
	if err := durable.SyncDir(s.path(parent)); err != nil {
		return fmt.Errorf("create directory %s: %w", full, err)
	}
	s.dirs.Store(rel, struct{}{})
	return nil
}

// forgetDirs drops rel and everything below it from the directory cache.
func (s *Storage) forgetDirs(rel string) {
	s.dirs.Range(func(k, _ any) bool {
		if d := k.(string); d == rel || strings.HasPrefix(d, rel+"/") || strings.HasPrefix(rel, d+"/") {
			// Ancestors go too: if rel vanished, any of them may have.
			s.dirs.Delete(d)
		}
		return true
	})
}

// isMissing reports errors meaning "no such object": the name is absent, or one of its
// parents is a file rather than a directory.
func isMissing(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// Get implements repo.Storage. The reader is the *os.File of the object.
func (s *Storage) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get %s: %w", name, err)
	}
	f, err := os.Open(s.path(name))
	if isMissing(err) {
		return nil, fmt.Errorf("get %s: %w", name, repo.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", name, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("get %s: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("get %s: %w", name, repo.ErrNotFound)
	}
	return f, nil
}

// GetRange implements repo.Storage: the file's bytes [offset, offset+length).
func (s *Storage) GetRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	rc, err := s.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	f := rc.(*os.File)
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("get %s: %w", name, err)
	}
	if offset < 0 || length < 0 || offset+length > fi.Size() {
		f.Close()
		return nil, fmt.Errorf("get %s: range %d+%d is past the object's %d bytes", name, offset, length, fi.Size())
	}
	return &sectionFile{SectionReader: io.NewSectionReader(f, offset, length), f: f}, nil
}

// sectionFile reads a range of an open file and closes the file.
type sectionFile struct {
	*io.SectionReader
	f *os.File
}

func (s *sectionFile) Close() error { return s.f.Close() }

// Stat implements repo.Storage. ModTime is the file's modification time: when the temp
// file was last written, just before it was linked under the object's name.
func (s *Storage) Stat(ctx context.Context, name string) (repo.ObjectInfo, error) {
	if err := checkName(name); err != nil {
		return repo.ObjectInfo{}, fmt.Errorf("stat: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return repo.ObjectInfo{}, fmt.Errorf("stat %s: %w", name, err)
	}
	fi, err := os.Stat(s.path(name))
	if isMissing(err) || (err == nil && !fi.Mode().IsRegular()) {
		return repo.ObjectInfo{}, fmt.Errorf("stat %s: %w", name, repo.ErrNotFound)
	}
	if err != nil {
		return repo.ObjectInfo{}, fmt.Errorf("stat %s: %w", name, err)
	}
	return objectInfo(name, fi), nil
}

// objectInfo describes the object name kept in the file fi, the same way for Stat and List.
func objectInfo(name string, fi fs.FileInfo) repo.ObjectInfo {
	return repo.ObjectInfo{Name: name, Size: fi.Size(), ModTime: fi.ModTime()}
}

// Delete implements repo.Storage. The directory is fsynced so that the removal is durable;
// emptied directories are kept (they are few, and Put expects cached ones to stay).
func (s *Storage) Delete(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	p := s.path(name)
	// A directory, or a symlink to one, is not an object: deleting it would delete (or hide)
	// the objects below it.
	fi, err := os.Lstat(p)
	if isMissing(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		if ti, err := os.Stat(p); err == nil && ti.IsDir() {
			return nil
		}
	}
	if fi.IsDir() {
		return nil
	}
	// unlink(2), not os.Remove, which falls back to rmdir: should a directory replace the
	// file after the check above, it stays.
	if err := syscall.Unlink(p); err != nil {
		if isMissing(err) {
			return nil
		}
		return fmt.Errorf("delete %s: %w", name, err)
	}
	if err := durable.SyncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}
