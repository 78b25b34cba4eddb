package local

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/pgward/pgward/repo"
)

// List implements repo.Storage.
//
// The walk starts at the deepest directory the prefix names ("chunks/ab/" and "chunks/ab/cd"
// both start in dir/chunks/ab), so listing one chunk fan-out directory reads one directory,
// not the whole repository. Each directory is read once, sorted, and walked depth first.
//
// Lexical order of whole names is not the order a plain sorted directory walk gives: '/'
// sorts after '-' and '.', so "a-b" < "a.b" < "a/x" < "a0", while a walk sorting entry names
// would visit a/ first. Sorting directories under the key name+"/" fixes that, because every
// name below directory d starts with d+"/" and no sibling file can share that prefix.
func (s *Storage) List(ctx context.Context, prefix string, fn func(repo.ObjectInfo) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list %q: %w", prefix, err)
	}
	start, rest, ok := splitPrefix(prefix)
	if !ok {
		return nil // no valid name can start with this prefix
	}
	w := walker{s: s, ctx: ctx, fn: fn, prefix: prefix}
	return w.walk(start, rest)
}

// splitPrefix splits a List prefix into the relative directory where the walk starts ("" for
// the root) and the part of the prefix that entries of that directory must start with. ok is
// false when no valid object name can start with the prefix: a valid name's leading complete
// segments are themselves valid names, so an invalid directory part rules everything out.
func splitPrefix(prefix string) (start, rest string, ok bool) {
	i := strings.LastIndexByte(prefix, '/')
	if i < 0 {
		return "", prefix, true
	}
	start, rest = prefix[:i], prefix[i+1:]
	if checkName(start) != nil {
		return "", "", false
	}
	return start, rest, true
}

// maxDepth bounds the walk; see walk.
const maxDepth = 32

type walker struct {
	s      *Storage
	ctx    context.Context
	fn     func(repo.ObjectInfo) error
	prefix string
}

type entry struct {
	key   string // name, plus "/" for a directory: the sort key
	name  string
	isDir bool
}

// walk reports the objects in the relative directory rel (slash-separated, "" for the root)
// whose own names start with match, and everything below its matching subdirectories.
func (w *walker) walk(rel, match string) error {
	dir := w.s.dir
	if rel != "" {
		dir = w.s.path(rel)
	}
	// Only a symlink loop can nest this deep: repository names have a handful of segments.
	// (The kernel would stop a loop at 40 links, but by then it would have listed every
	// object 40 times.)
	if strings.Count(rel, "/") >= maxDepth {
		return fmt.Errorf("list %q: directories nested more than %d deep at %s (symlink loop?)", w.prefix, maxDepth, dir)
	}
	entries, err := readDir(dir)
	if err != nil {
		if isMissing(err) {
			return nil // nothing was ever stored under this prefix, or it was deleted meanwhile
		}
		return fmt.Errorf("list %q: %w", w.prefix, err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.name, match) {
			continue
		}
		name := e.name
		if rel != "" {
			name = rel + "/" + e.name
		}
		if e.isDir {
			// match holds no slash, so everything below a matching directory matches.
			if err := w.walk(name, ""); err != nil {
				return err
			}
			continue
		}
		fi, err := os.Stat(dir + string(os.PathSeparator) + e.name)
		if err != nil {
			if isMissing(err) {
				continue // deleted since the directory was read
			}
			return fmt.Errorf("list %q: %w", w.prefix, err)
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		if err := w.ctx.Err(); err != nil {
			return fmt.Errorf("list %q: %w", w.prefix, err)
		}
		if err := w.fn(objectInfo(name, fi)); err != nil {
			return err
		}
	}
	return nil
}

// readDir returns the candidate entries of dir in walk order, skipping temp files and
// anything that is neither a regular file nor a directory. The type comes from the directory
// entry (os falls back to lstat where the file system does not fill it in), so this costs no
// stat per entry. Symlinks are followed, as Get and Stat follow them, so an operator may put
// part of a repository on another disk with a symlink and List still sees all of it.
func readDir(dir string) ([]entry, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	des, err := f.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	entries := make([]entry, 0, len(des))
	for _, de := range des {
		n := de.Name()
		if strings.HasPrefix(n, tempPrefix) {
			continue
		}
		t := de.Type()
		if t&fs.ModeSymlink != 0 {
			fi, err := os.Stat(dir + string(os.PathSeparator) + n)
			if err != nil {
				continue // dangling: no object here
			}
			t = fi.Mode().Type()
		}
		switch {
		case t.IsDir():
			entries = append(entries, entry{key: n + "/", name: n, isDir: true})
		case t.IsRegular():
			entries = append(entries, entry{key: n, name: n})
		}
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.key, b.key) })
	return entries, nil
}
