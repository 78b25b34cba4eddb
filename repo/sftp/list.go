package sftp

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/pkg/sftp"

	"github.com/pgward/pgward/repo"
)

// maxDepth bounds the walk: only a symlink loop nests this deep.
const maxDepth = 32

// List implements repo.Storage. The walk starts at the deepest directory the prefix names,
// reads each directory once (one SSH_FXP_READDIR exchange per few hundred entries, with
// every entry's attributes), and sorts it so that names come in byte order: a directory d
// sorts as d+"/", since every name below it starts so.
func (s *Storage) List(ctx context.Context, prefix string, fn func(repo.ObjectInfo) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list %q: %w", prefix, err)
	}
	start, rest, ok := splitPrefix(prefix)
	if !ok {
		return nil // no valid name can start with this prefix
	}
	cl, err := s.client(ctx)
	if err != nil {
		return err
	}
	w := walker{s: s, cl: cl, ctx: ctx, fn: fn, prefix: prefix}
	return w.walk(start, rest)
}

// splitPrefix splits a List prefix into the relative directory where the walk starts (""
// for the root) and the part of the prefix that entries of that directory must start with.
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

type walker struct {
	s      *Storage
	cl     *sftp.Client
	ctx    context.Context
	fn     func(repo.ObjectInfo) error
	prefix string
}

type entry struct {
	key  string // name, plus "/" for a directory: the sort key
	name string
	fi   fs.FileInfo
}

func (w *walker) walk(rel, match string) error {
	if strings.Count(rel, "/") >= maxDepth {
		return fmt.Errorf("list %q: directories nested more than %d deep at %s (symlink loop?)", w.prefix, maxDepth, rel)
	}
	dir := w.s.path(rel)
	fis, err := w.cl.ReadDir(dir)
	if err != nil {
		if isMissing(err) {
			return nil // nothing was ever stored under this prefix, or it was deleted meanwhile
		}
		return w.s.opError(w.cl, "list", dir, err)
	}
	entries := make([]entry, 0, len(fis))
	for _, fi := range fis {
		n := fi.Name()
		if strings.HasPrefix(n, tempPrefix) || !strings.HasPrefix(n, match) {
			continue
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			// Followed, as Get and Stat follow it; a dangling one is no object.
			if fi, err = w.cl.Stat(dir + "/" + n); err != nil {
				continue
			}
		}
		switch {
		case fi.IsDir():
			entries = append(entries, entry{key: n + "/", name: n, fi: fi})
		case fi.Mode().IsRegular():
			entries = append(entries, entry{key: n, name: n, fi: fi})
		}
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.key, b.key) })
	for _, e := range entries {
		name := e.name
		if rel != "" {
			name = rel + "/" + e.name
		}
		if e.fi.IsDir() {
			if err := w.walk(name, ""); err != nil {
				return err
			}
			continue
		}
		if err := w.ctx.Err(); err != nil {
			return fmt.Errorf("list %q: %w", w.prefix, err)
		}
		if err := w.fn(objectInfo(name, e.fi)); err != nil {
			return err
		}
	}
	return nil
}
