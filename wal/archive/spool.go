package archive

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pgward/pgward/repo"
)

// Spool is a local directory for one cluster and one set of repositories.
type Spool struct {
	dir string
	// repoKey identifies the repositories; markers from another set never count.
	repoKey string
}

// OpenSpool returns the spool under base for the cluster and repositories, or
// nil (spooling disabled) when base is empty or cannot be used safely: the
// spool must be a directory owned by us and not writable by others, since
// archive-push trusts its markers.
func OpenSpool(base, cluster string, repos []*repo.Repo) *Spool {
	if base == "" {
		return nil
	}
	ids := make([]string, len(repos))
	for i, r := range repos {
		ids[i] = r.Config().ID
	}
	sort.Strings(ids)
	sum := sha256.Sum256([]byte(strings.Join(ids, ",")))
	key := hex.EncodeToString(sum[:8])
	dir := filepath.Join(base, cluster+"-"+key)
	for _, d := range []string{base, dir, filepath.Join(dir, "push"), filepath.Join(dir, "get"), filepath.Join(dir, "receive")} {
		if PrivateDir(d) != nil {
			return nil
		}
	}
	return &Spool{dir: dir, repoKey: key}
}

// PrivateDir creates directory d (mode 0700) when it is missing, and checks that
// it is a directory owned by this user that nobody else can write: spools hold
// WAL and markers that later calls trust.
func PrivateDir(d string) error {
	if err := os.Mkdir(d, 0o700); err != nil && !os.IsExist(err) {
		return err
	}
	fi, err := os.Lstat(d)
	if err != nil {
		return err
	}
	if !fi.IsDir() || fi.Mode().Perm()&0o022 != 0 || !ownedByMe(fi) {
		return fmt.Errorf("%s must be a directory owned by this user (uid %d) and not writable by others", d, os.Geteuid())
	}
	return nil
}

func (s *Spool) pushDir() string { return filepath.Join(s.dir, "push") }

// ReceiveDir is where the streaming receiver keeps the segment it is writing.
func (s *Spool) ReceiveDir() string { return filepath.Join(s.dir, "receive") }
func (s *Spool) getDir() string     { return filepath.Join(s.dir, "get") }

// writeAtomic writes a file via a temporary name and rename, so readers see it
// whole or not at all.
func writeAtomic(path string, data []byte, sync bool) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if sync {
		if err := tmp.Sync(); err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			return err
		}
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("rename into %s: %w", path, err)
	}
	return nil
}

// marker records that a file with this content is archived in every repository
// of the spool's set.
func (s *Spool) markerPath(name string) string { return filepath.Join(s.pushDir(), name+".ok") }

func (s *Spool) writeMarker(name string, sum [32]byte) error {
	return writeAtomic(s.markerPath(name), []byte(hex.EncodeToString(sum[:])+"\n"), true)
}

// hasMarker reports whether a push-ahead marker exists for name.
func (s *Spool) hasMarker(name string) bool {
	_, err := os.Stat(s.markerPath(name))
	return err == nil
}

// takeMarker reports whether a marker for exactly this content exists, and
// removes it (it has served its one purpose).
func (s *Spool) takeMarker(name string, sum [32]byte) bool {
	b, err := os.ReadFile(s.markerPath(name))
	if err != nil {
		return false
	}
	os.Remove(s.markerPath(name))
	return strings.TrimSpace(string(b)) == hex.EncodeToString(sum[:])
}

// pruneMarkers drops markers of files PostgreSQL has moved past.
func (s *Spool) pruneMarkers(before string) {
	entries, _ := os.ReadDir(s.pushDir())
	for _, e := range entries {
		n := strings.TrimSuffix(e.Name(), ".ok")
		if n < before || strings.HasPrefix(e.Name(), ".tmp-") {
			os.Remove(filepath.Join(s.pushDir(), e.Name()))
		}
	}
}
