package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/pgward/pgward/repo"
)

// tempBaseMax bounds the object name a temp file's name carries, so that the temp name
// stays within a file system's 255 bytes.
const tempBaseMax = 160

// tempName is the pattern of the temp file for an object whose last name segment is base.
func tempName(base string) string {
	if len(base) > tempBaseMax {
		base = base[:tempBaseMax]
	}
	return tempPrefix + base + "-*"
}

// objectOfTemp is the object name a temp file in the relative directory rel was for (its
// base name possibly cut short).
func objectOfTemp(rel, file string) string {
	base := strings.TrimPrefix(file, tempPrefix)
	if i := strings.LastIndexByte(base, '-'); i >= 0 {
		base = base[:i]
	}
	if rel == "." {
		return base
	}
	return rel + "/" + base
}

// Leftovers implements repo.Storage: the temp files of Puts that never finished, under the
// directories prefix may name. A Put running now has one too; Started (the file's
// modification time) tells them apart by age.
func (s *Storage) Leftovers(ctx context.Context, prefix string, fn func(repo.Leftover) error) error {
	root := path.Dir(prefix + "x") // the deepest directory every match lies under
	err := filepath.WalkDir(s.path(root), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if isMissing(err) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !strings.HasPrefix(d.Name(), tempPrefix) {
			return nil
		}
		rel, err := filepath.Rel(s.dir, filepath.Dir(p))
		if err != nil {
			return err
		}
		name := objectOfTemp(filepath.ToSlash(rel), d.Name())
		if !strings.HasPrefix(name, prefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if isMissing(err) {
				return nil // finished meanwhile
			}
			return err
		}
		return fn(repo.Leftover{Name: name, Ref: p, Size: fi.Size(), Started: fi.ModTime()})
	})
	if err != nil {
		return fmt.Errorf("looking for leftovers under %s in %s: %w", prefix, s.dir, err)
	}
	return nil
}

// RemoveLeftover implements repo.Storage. Only a temp file inside the repository is removed:
// Ref is a path Leftovers made, and anything else is refused.
func (s *Storage) RemoveLeftover(ctx context.Context, l repo.Leftover) error {
	rel, err := filepath.Rel(s.dir, l.Ref)
	if err != nil || strings.HasPrefix(rel, "..") || !strings.HasPrefix(filepath.Base(l.Ref), tempPrefix) {
		return fmt.Errorf("remove leftover %s: not a temp file of %s", l.Ref, s.dir)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Remove(l.Ref); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove leftover %s: %w", l.Ref, err)
	}
	return nil
}
