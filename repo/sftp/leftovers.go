package sftp

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/pgward/pgward/repo"
)

// tempBaseMax bounds the object name a temp file's name carries, so that the temp name
// stays within a file system's 255 bytes.
const tempBaseMax = 160

// tempName is the temp file for an object whose last name segment is base: ".tmp-", base
// (cut to tempBaseMax bytes), "-" and a random suffix.
func tempName(base, random string) string {
	if len(base) > tempBaseMax {
		base = base[:tempBaseMax]
	}
	return tempPrefix + base + "-" + random
}

// objectOfTemp is the object name a temp file in the relative directory rel was for (its
// base name possibly cut short).
func objectOfTemp(rel, file string) string {
	base := strings.TrimPrefix(file, tempPrefix)
	if i := strings.LastIndexByte(base, '-'); i >= 0 {
		base = base[:i]
	}
	if rel == "" || rel == "." {
		return base
	}
	return rel + "/" + base
}

// Leftovers implements repo.Storage: the temp files of Puts that never finished (the
// process was killed, or the connection broke before the temp file could be removed) under
// the directories prefix may name. A Put running now has one too; Started, the file's
// modification time by the server's clock, tells them apart by age.
func (s *Storage) Leftovers(ctx context.Context, prefix string, fn func(repo.Leftover) error) error {
	cl, err := s.client(ctx)
	if err != nil {
		return err
	}
	root := path.Dir(prefix + "x") // the deepest directory every match lies under
	if root != "." && checkName(root) != nil {
		return nil
	}
	var walk func(rel string, depth int) error
	walk = func(rel string, depth int) error {
		if depth > maxDepth {
			return fmt.Errorf("leftovers %q: directories nested more than %d deep at %s", prefix, maxDepth, rel)
		}
		dir := s.path(rel)
		fis, err := cl.ReadDir(dir)
		if err != nil {
			if isMissing(err) {
				return nil
			}
			return s.opError(cl, "leftovers", dir, err)
		}
		for _, fi := range fis {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("leftovers %q: %w", prefix, err)
			}
			sub := fi.Name()
			if rel != "." {
				sub = rel + "/" + sub
			}
			switch {
			case fi.IsDir():
				if err := walk(sub, depth+1); err != nil {
					return err
				}
			case fi.Mode().IsRegular() && strings.HasPrefix(fi.Name(), tempPrefix):
				name := objectOfTemp(rel, fi.Name())
				if !strings.HasPrefix(name, prefix) {
					continue
				}
				if err := fn(repo.Leftover{Name: name, Ref: dir + "/" + fi.Name(), Size: fi.Size(), Started: fi.ModTime()}); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walk(root, 0)
}

// RemoveLeftover implements repo.Storage. Only a temp file below the repository directory is
// removed: Ref is a path Leftovers made, and anything else is refused.
func (s *Storage) RemoveLeftover(ctx context.Context, l repo.Leftover) error {
	rel, ok := strings.CutPrefix(l.Ref, s.root+"/")
	if !ok || path.Clean(rel) != rel || strings.HasPrefix(rel, "..") || !strings.HasPrefix(path.Base(rel), tempPrefix) {
		return fmt.Errorf("remove leftover %s: not a temp file of %s", l.Ref, s.name)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	cl, err := s.client(ctx)
	if err != nil {
		return err
	}
	if err := cl.Remove(l.Ref); err != nil && !isMissing(err) {
		return s.opError(cl, "remove leftover", l.Ref, err)
	}
	return nil
}
