package location

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pgward/pgward/repo"
)

// Init creates a repository at every location, all or nothing: it refuses before
// creating anything when one already holds a repository, and a failure at one
// removes what the others got (their config, and the directories Init created),
// so that a rerun does not find "already exists".
func Init(ctx context.Context, specs []string, o Options, opts repo.InitOptions) ([]*repo.Repo, error) {
	if len(specs) == 0 {
		return nil, errors.New("no repository given: use --repo DIR, PGWARD_REPO, or repo in the config file")
	}
	for _, s := range specs {
		if st, err := Storage(s, o, false); err == nil {
			if exists, err := repo.Exists(ctx, st); err == nil && exists {
				return nil, fmt.Errorf("init %s: a repository already exists there; use it, or choose an empty location", st)
			}
		}
	}
	var done []repo.Storage
	var madeDirs []string
	undo := func() {
		for _, st := range done {
			_ = st.Delete(context.WithoutCancel(ctx), "config")
		}
		for _, d := range madeDirs {
			_ = os.RemoveAll(d)
		}
	}
	var repos []*repo.Repo
	for _, s := range specs {
		if !strings.Contains(s, "://") {
			if _, err := os.Stat(s); errors.Is(err, fs.ErrNotExist) {
				abs, _ := filepath.Abs(s)
				madeDirs = append(madeDirs, abs)
			}
		}
		st, err := Storage(s, o, true)
		if err != nil {
			undo()
			return nil, err
		}
		r, err := repo.Init(ctx, st, opts)
		if err != nil {
			undo()
			return nil, err
		}
		done = append(done, st)
		repos = append(repos, r)
	}
	return repos, nil
}
