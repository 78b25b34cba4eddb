package restore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/pgward/pgward/internal/durable"
	"github.com/pgward/pgward/repo"
)

// Delta restore: a data directory that already holds the backup's cluster (a
// failed primary, a standby that fell behind, yesterday's drill copy) is brought
// to the backup's content by rewriting only what differs.
//
//   - Only the same cluster: the system identifier in the directory's
//     global/pg_control must be the backup's, and no server may be running on
//     it (postmaster.pid naming a live process). Anything else is refused before
//     the first change.
//   - Content is compared by chunk: each range of an existing file that a chunk
//     of the backup covers is read and hashed with the repository's keyed hash,
//     the hash the manifest names the chunk by; only ranges that differ are
//     fetched and written. With DeltaCheck "size-time" a file whose size and
//     modification time equal the backup's is kept without being read.
//   - Nothing stale is kept: every file, directory and link the backup does not
//     have is removed, in the data directory and in the backup's directories of
//     each tablespace (other entries at the top of a tablespace directory, such
//     as another major version's directory after pg_upgrade, are left alone).
//   - The directory is not startable while it is rewritten: global/pg_control
//     is first renamed to deltaMarker (a retried delta restore reads the
//     system identifier from there) and written again last, as in a full
//     restore. A failed delta restore is not undone: run it again.

// deltaMarker is global/pg_control while a delta restore runs.
const deltaMarker = "global/pg_control.pgward-delta"

// Delta checks, the names of the DeltaCheck modes.
const (
	DeltaHash     = "hash"
	DeltaSizeTime = "size-time"
)

// deltaTarget decides whether a delta restore into pgdata rewrites an existing
// cluster (true) or is a plain restore into an empty or absent directory
// (false), and refuses a directory that holds something else.
func deltaTarget(pgdata string, m *repo.Manifest) (bool, error) {
	entries, err := os.ReadDir(pgdata)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(entries) == 0) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("the data directory %s: %w", pgdata, err)
	}
	if err := checkNotRunning(pgdata); err != nil {
		return false, err
	}
	id, err := systemIdentifier(pgdata)
	if err != nil {
		return false, err
	}
	if strconv.FormatUint(id, 10) != m.SystemIdentifier {
		return false, fmt.Errorf("--delta: %s holds the cluster with system identifier %d, but backup %s is of cluster %q with system identifier %s; a delta restore only rewrites a data directory of the same cluster, so restore into an empty directory instead",
			pgdata, id, m.ID, m.Cluster, m.SystemIdentifier)
	}
	return true, nil
}

// checkNotRunning refuses a data directory whose postmaster.pid names a
// process that is alive.
func checkNotRunning(pgdata string) error {
	b, err := os.ReadFile(filepath.Join(pgdata, "postmaster.pid"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("--delta: reading %s: %w", filepath.Join(pgdata, "postmaster.pid"), err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return nil // not written completely: no server got as far as running
	}
	if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
		return fmt.Errorf("--delta: a server is running on %s (postmaster.pid names process %d); stop it first (pg_ctl -D %s stop), or remove postmaster.pid if that process is not PostgreSQL", pgdata, pid, pgdata)
	}
	return nil
}

// systemIdentifier reads the system identifier of the cluster in pgdata from
// global/pg_control (or from the marker a delta restore leaves while it runs).
// ControlFileData starts with the identifier (uint64) and pg_control_version
// (uint32), in the machine's byte order: little endian on every platform pgward
// builds for.
func systemIdentifier(pgdata string) (uint64, error) {
	var b [12]byte
	var err error
	for _, name := range []string{pgControl, deltaMarker} {
		var f *os.File
		if f, err = os.Open(filepath.Join(pgdata, filepath.FromSlash(name))); err != nil {
			continue
		}
		_, err = io.ReadFull(f, b[:])
		f.Close()
		break
	}
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("--delta: %s is not empty and holds no PostgreSQL cluster (no %s); a delta restore only rewrites a data directory of the backup's cluster, so restore into an empty directory instead", pgdata, pgControl)
	}
	if err != nil {
		return 0, fmt.Errorf("--delta: reading %s: %w", filepath.Join(pgdata, pgControl), err)
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v < 900 || v > 9999 {
		return 0, fmt.Errorf("--delta: %s is not a PostgreSQL control file (pg_control_version %d); restore into an empty directory instead", filepath.Join(pgdata, pgControl), v)
	}
	return binary.LittleEndian.Uint64(b[:8]), nil
}

// checkDeltaTablespace accepts the directory of a tablespace for a delta restore
// when it is empty or absent, or when the data directory's pg_tblspc/<oid>
// already links to it: a delta restore may rewrite the cluster's own tablespace,
// never a directory of another cluster (the source's, on the same host).
func checkDeltaTablespace(pgdata string, oid uint32, dir, hint string) error {
	what := fmt.Sprintf("the directory of tablespace %d", oid)
	if err := checkEmpty(dir, what, ""); err == nil || !errors.Is(err, ErrNotEmpty) {
		return err
	}
	link := filepath.Join(pgdata, "pg_tblspc", strconv.FormatUint(uint64(oid), 10))
	cur, err1 := filepath.EvalSymlinks(link)
	want, err2 := filepath.EvalSymlinks(dir)
	if err1 == nil && err2 == nil && cur == want {
		return nil
	}
	return fmt.Errorf("%s %s %w and is not the tablespace the data directory links to (%s); a delta restore rewrites only the cluster's own tablespace directories%s",
		what, dir, ErrNotEmpty, link, hint)
}

// hideControl renames pg_control to the marker, durably, so the directory cannot
// be started while it is rewritten.
func (w *writer) hideControl() error {
	p, marker := w.local(pgControl), w.local(deltaMarker)
	if err := os.Rename(p, marker); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("--delta: %w", err)
	}
	return durable.SyncDir(filepath.Dir(p))
}

// dropMarker removes the marker after the new pg_control is durable.
func (w *writer) dropMarker() error {
	if err := os.Remove(w.local(deltaMarker)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return durable.SyncDir(filepath.Dir(w.local(pgControl)))
}

// clean removes what the backup does not have, or has as another kind of
// entry, from the data directory and from the backup's directories in each
// tablespace. A symbolic link is kept only when it points where the restore
// would point it.
func (w *writer) clean() error {
	want := make(map[string]*repo.File, len(w.m.Files))
	for i := range w.m.Files {
		want[w.m.Files[i].Path] = &w.m.Files[i]
	}
	return w.cleanDir(w.pgdata, "", want)
}

func (w *writer) cleanDir(dir, rel string, want map[string]*repo.File) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("--delta: %w", err)
	}
	for _, e := range entries {
		r := e.Name()
		if rel != "" {
			r = rel + "/" + e.Name()
		}
		p := filepath.Join(dir, e.Name())
		if r == deltaMarker {
			continue
		}
		f := want[r]
		keep, descend := w.keepEntry(p, r, e.Type(), f)
		if !keep {
			if _, tsRoot := tablespaceLink(rel); tsRoot {
				// The top of a tablespace directory: another major's directory
				// lives here after pg_upgrade, so only the backup's own go.
				w.o.Log.Info("delta restore: leaving an entry of the tablespace directory that the backup does not have", "path", p)
				continue
			}
			w.removed.Add(1)
			if err := os.RemoveAll(p); err != nil {
				return fmt.Errorf("--delta: removing %s: %w", p, err)
			}
			continue
		}
		if descend {
			if err := w.cleanDir(p, r, want); err != nil {
				return err
			}
		}
	}
	return nil
}

// keepEntry decides about one existing entry: keep it, and descend into it.
// Tablespace links are followed when they point where the restore wants them.
func (w *writer) keepEntry(p, rel string, t fs.FileMode, f *repo.File) (keep, descend bool) {
	if f == nil {
		return false, false
	}
	switch f.Type {
	case repo.TypeDir:
		if rel == "pg_wal" && t&fs.ModeSymlink != 0 {
			// WAL on another disk (initdb --waldir): keep the link, clean
			// behind it; the backup's WAL is written through it.
			fi, err := os.Stat(p)
			if err != nil || !fi.IsDir() {
				return false, false
			}
			w.existed = append(w.existed, p) // synced too: it may be another file system
			return true, true
		}
		return t.IsDir(), t.IsDir()
	case repo.TypeFile:
		return t.IsRegular(), false
	case repo.TypeSymlink:
		if t&fs.ModeSymlink == 0 {
			return false, false
		}
		cur, err := os.Readlink(p)
		if err != nil || cur != w.linkTarget(f) {
			return false, false
		}
		_, ts := tablespaceLink(rel)
		return true, ts
	}
	return false, false
}

// linkTarget is where the restore points a symbolic link of the backup.
func (w *writer) linkTarget(f *repo.File) string {
	if oid, ok := tablespaceLink(f.Path); ok {
		if d, known := w.tsDir[oid]; known {
			return d
		}
	}
	return f.Target
}
