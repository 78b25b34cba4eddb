package engine

// The repository side of check: the repositories open and take writes, the cluster has
// recent backups, and local repositories have room.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/pgward/pgward/repo"
)

// checkRepos opens the repositories and proves each takes a write (a probe object under
// locks/, deleted at once).
func (s *checkSession) checkRepos(ctx context.Context) bool {
	repos, err := s.o.Open(ctx)
	if err != nil {
		s.res.add("repository", CheckFailed, err.Error(), "")
		return false
	}
	s.repos = repos
	var names, problems []string
	for _, r := range repos {
		names = append(names, r.String())
		if err := probeWrite(ctx, r); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		s.res.add("repository", CheckFailed, strings.Join(problems, "; "), "")
		return true // readable: the other checks can still look
	}
	enc := "not encrypted"
	if repos[0].Encrypted() {
		enc = "encrypted"
	}
	s.res.add("repository", CheckOK, fmt.Sprintf("%s open and writable (%s, format %d)", strings.Join(names, ", "), enc, repos[0].Config().Format), "")
	return true
}

// probeWrite writes and removes a small object.
func probeWrite(ctx context.Context, r *repo.Repo) error {
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "locks/.check-" + hex.EncodeToString(b[:])
	st := r.Storage()
	if err := st.Put(ctx, name, bytes.NewReader([]byte("pgward check")), 12); err != nil {
		return fmt.Errorf("%s does not take writes: %w", r, err)
	}
	if err := st.Delete(ctx, name); err != nil {
		return fmt.Errorf("%s does not take deletions: %w", r, err)
	}
	return nil
}

// checkBackups warns when the cluster has no backup, or none newer than MaxBackupAge.
func (s *checkSession) checkBackups(ctx context.Context) {
	const name = "backups"
	var newest *repo.Manifest
	count := 0
	for _, r := range s.repos {
		ids, err := r.BackupIDs(ctx, s.o.Cluster)
		if err != nil {
			s.res.add(name, CheckFailed, err.Error(), "")
			return
		}
		count = max(count, len(ids))
		if len(ids) == 0 {
			continue
		}
		m, err := r.Manifest(ctx, s.o.Cluster, ids[len(ids)-1])
		if err != nil {
			s.res.add(name, CheckWarning, fmt.Sprintf("the newest backup in %s cannot be read: %v", r, err), "")
			return
		}
		if newest == nil || m.StopTime.After(newest.StopTime) {
			newest = m
		}
	}
	switch {
	case newest == nil:
		s.res.add(name, CheckWarning, fmt.Sprintf("cluster %q has no backup yet: WAL alone restores nothing", s.o.Cluster), "pgward backup --conn ...")
	case time.Since(newest.StopTime) > s.o.MaxBackupAge:
		s.res.add(name, CheckWarning, fmt.Sprintf("the newest backup %s is %s old, older than %s: recovery would replay all the WAL since", newest.ID, humanize.RelTime(newest.StopTime, time.Now(), "", ""), humanize.RelTime(time.Now().Add(-s.o.MaxBackupAge), time.Now(), "", "")), "")
	default:
		s.res.add(name, CheckOK, fmt.Sprintf("%d backups, the newest %s (%s ago)", count, newest.ID, time.Since(newest.StopTime).Round(time.Second)), "")
	}
}

// lowSpace is the share of a file system below which check warns.
const lowSpace = 0.10

// checkFreeSpace warns when the file system of a local repository is nearly full.
func (s *checkSession) checkFreeSpace() {
	var found []string
	for _, r := range s.repos {
		d, ok := repo.As[interface{ Dir() string }](r.Storage())
		if !ok {
			continue
		}
		var fs syscall.Statfs_t
		if err := syscall.Statfs(d.Dir(), &fs); err != nil {
			continue
		}
		free := fs.Bavail * uint64(fs.Bsize)
		total := fs.Blocks * uint64(fs.Bsize)
		line := fmt.Sprintf("%s: %s free of %s", d.Dir(), humanize.IBytes(free), humanize.IBytes(total))
		if total > 0 && float64(free) < lowSpace*float64(total) {
			s.res.add("free space", CheckWarning, line+", less than 10%: expire old backups (pgward expire) or grow the file system", "")
			return
		}
		found = append(found, line)
	}
	if len(found) == 0 {
		s.res.add("free space", CheckSkipped, "no local repository (object stores have no fixed size)", "")
		return
	}
	s.res.add("free space", CheckOK, strings.Join(found, "; "), "")
}
