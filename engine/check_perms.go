package engine

// Judging from owners and mode bits whether the server's OS user can archive
// into a local repository.

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/pgward/pgward/repo"
)

// permissionProblem judges, from owners and mode bits, whether the server's
// OS user (the owner of its data directory) can write WAL into each local
// repository. It says nothing when it cannot tell: the data directory is not
// readable, or it is not on this machine.
func (s *checkSession) permissionProblem(ctx context.Context, seg string) string {
	dataDir, err := s.queryOne(ctx, "SHOW data_directory")
	if err != nil {
		s.o.Log.Debug("cannot read data_directory; skipping the permission check", "err", err)
		return ""
	}
	fi, err := os.Stat(dataDir)
	if err != nil {
		return ""
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	// The same path on another machine would mislead: when pg_control is
	// readable, its system identifier must be this server's.
	if b, err := os.ReadFile(filepath.Join(dataDir, "global", "pg_control")); err == nil && len(b) >= 8 && s.res.SystemIdentifier != "" {
		if strconv.FormatUint(binary.LittleEndian.Uint64(b), 10) != s.res.SystemIdentifier {
			return ""
		}
	}
	uid := int(st.Uid)
	uname := strconv.Itoa(uid)
	gids := []int{int(st.Gid)}
	if u, err := user.LookupId(uname); err == nil {
		uname = u.Username
		if gs, err := u.GroupIds(); err == nil {
			for _, g := range gs {
				if n, err := strconv.Atoi(g); err == nil {
					gids = append(gids, n)
				}
			}
		}
	}
	var problems []string
	for _, r := range s.repos {
		d, ok := repo.As[interface{ Dir() string }](r.Storage())
		if !ok {
			continue
		}
		if p := AccessProblem(d.Dir(), s.o.Cluster, seg, uid, gids, uname); p != "" {
			problems = append(problems, p)
		}
	}
	return strings.Join(problems, "; ")
}

// AccessProblem explains why the user uid (in groups gids, named uname) cannot
// archive segment seg of cluster into the local repository at dir, judging by
// owners and mode bits; "" when they allow it. It needs search on every
// directory down to the repository, read on its config, and write and search
// on the deepest existing directory of the segment's path.
func AccessProblem(dir, cluster, seg string, uid int, gids []int, uname string) string {
	if uid == 0 {
		return ""
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return ""
	}
	fix := fmt.Sprintf("make the repository writable by %s (e.g. chown -R %s %s)", uname, uname, dir)
	// Every directory above the repository must be searchable.
	var ancestors []string
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		ancestors = append(ancestors, d)
		if d == filepath.Dir(d) {
			break
		}
	}
	for i := len(ancestors) - 1; i >= 0; i-- {
		fi, err := os.Stat(ancestors[i])
		if err != nil {
			return ""
		}
		if !allowed(fi, uid, gids, 1) {
			return fmt.Sprintf("%s cannot reach %s: %s is %s", uname, dir, ancestors[i], describe(fi))
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return ""
	}
	if !allowed(fi, uid, gids, 5) {
		return fmt.Sprintf("%s cannot read %s, which is %s; %s", uname, dir, describe(fi), fix)
	}
	if cfi, err := os.Stat(filepath.Join(dir, "config")); err == nil && !allowed(cfi, uid, gids, 4) {
		return fmt.Sprintf("%s cannot read %s, which is %s; %s", uname, filepath.Join(dir, "config"), describe(cfi), fix)
	}
	// Walk down the segment's directory; the deepest existing one gets the
	// temp file (or the next directory).
	deepest, dfi := dir, fi
	rel := filepath.Join("clusters", cluster, "wal")
	if len(seg) >= 16 {
		rel = filepath.Join(rel, seg[:16])
	}
	cur := dir
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		cur = filepath.Join(cur, part)
		fi, err := os.Stat(cur)
		if err != nil {
			break
		}
		if !allowed(dfi, uid, gids, 1) {
			return fmt.Sprintf("%s cannot enter %s, which is %s; %s", uname, deepest, describe(dfi), fix)
		}
		deepest, dfi = cur, fi
	}
	if !allowed(dfi, uid, gids, 3) {
		return fmt.Sprintf("%s cannot write into %s, which is %s; %s", uname, deepest, describe(dfi), fix)
	}
	return ""
}

// allowed applies the owner, group and other mode bits (want: 4 read, 2 write,
// 1 search, combined) for a user other than root.
func allowed(fi os.FileInfo, uid int, gids []int, want uint32) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	perm := uint32(fi.Mode().Perm())
	switch {
	case int(st.Uid) == uid:
		perm >>= 6
	case slices.Contains(gids, int(st.Gid)):
		perm >>= 3
	}
	return perm&want == want
}

// describe names a file's owner, group and mode.
func describe(fi os.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Sprintf("mode %04o", fi.Mode().Perm())
	}
	owner, group := strconv.Itoa(int(st.Uid)), strconv.Itoa(int(st.Gid))
	if u, err := user.LookupId(owner); err == nil {
		owner = u.Username
	}
	if g, err := user.LookupGroupId(group); err == nil {
		group = g.Name
	}
	return fmt.Sprintf("owned by %s:%s with mode %04o", owner, group, fi.Mode().Perm())
}
