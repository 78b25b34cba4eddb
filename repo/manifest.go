package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"
)

// ManifestFormat is the version of the backup manifest layout.
const ManifestFormat = 1

// File types in a manifest.
const (
	TypeFile    = "file"
	TypeDir     = "dir"
	TypeSymlink = "symlink"
)

// Manifest describes one backup completely: with it and the chunks it names, a
// data directory can be rebuilt with no other backup (every backup is logically
// full).
type Manifest struct {
	Format           int       `json:"format"`
	ID               string    `json:"id"`
	Cluster          string    `json:"cluster"`
	SystemIdentifier string    `json:"system_identifier"`
	PGVersion        int       `json:"pg_version"` // server_version_num, e.g. 150018
	Timeline         uint32    `json:"timeline"`
	StartLSN         string    `json:"start_lsn"`
	StopLSN          string    `json:"stop_lsn"`
	StartTime        time.Time `json:"start_time"`
	StopTime         time.Time `json:"stop_time"`
	Label            string    `json:"label"`
	Compress         string    `json:"compress"`
	ChunkSize        int       `json:"chunk_size"`
	// DBBytes is the sum of the sizes of all files in the backup.
	DBBytes int64 `json:"db_bytes"`
	// StoredBytes is what this backup added to the repository (new chunks and
	// this manifest excluded); the rest was already there.
	StoredBytes int64 `json:"stored_bytes"`
	// WALFiles counts the WAL segments included to reach consistency.
	WALFiles    int          `json:"wal_files"`
	Tablespaces []Tablespace `json:"tablespaces"`
	// Databases are the cluster's databases when the backup ended (restore
	// --db-include selects them by name). Backups taken before pgward recorded
	// them, or whose server refused the query, have none.
	Databases []Database `json:"databases,omitempty"`
	// FromStandby is set when the backup was taken from a standby.
	FromStandby bool   `json:"from_standby,omitempty"`
	Files       []File `json:"files"`
}

// Database is one database of the cluster: its files are base/<oid>/ and
// pg_tblspc/<tablespace>/<version dir>/<oid>/.
type Database struct {
	OID  uint32 `json:"oid"`
	Name string `json:"name"`
}

// Tablespace is a tablespace other than pg_default and pg_global.
type Tablespace struct {
	OID      uint32 `json:"oid"`
	Location string `json:"location"`
}

// File is one entry of the data directory. Paths are relative to the data
// directory, with tablespace contents under pg_tblspc/<oid>/, as in PostgreSQL's
// own backup_manifest.
type File struct {
	Path   string      `json:"path"`
	Type   string      `json:"type"`
	Mode   os.FileMode `json:"mode"` // permission bits only
	MTime  time.Time   `json:"mtime"`
	Size   int64       `json:"size,omitempty"`
	Target string      `json:"target,omitempty"` // symlinks
	// Chunks are the file's data in order: chunk i holds bytes
	// [i*ChunkSize, min((i+1)*ChunkSize, Size)).
	Chunks []Hash `json:"chunks,omitempty"`
}

func manifestPrefix(cluster string) string { return "clusters/" + cluster + "/backups/" }

// ValidClusterName checks a cluster name: it becomes part of object names.
func ValidClusterName(name string) error {
	if name == "" || len(name) > 63 {
		return fmt.Errorf("cluster name %q must be 1 to 63 characters", name)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') || name[0] == '.' {
			return fmt.Errorf("cluster name %q may only contain letters, digits, '-', '_' and '.'", name)
		}
	}
	return nil
}

// PutManifest commits a backup: after it returns, the backup is listed. The
// caller must have stored every chunk the manifest names first.
func (r *Repo) PutManifest(ctx context.Context, m *Manifest) error {
	s, err := r.SealManifest(m)
	if err != nil {
		return err
	}
	return r.CommitManifest(ctx, s)
}

// SealedManifest is a manifest encoded and sealed, for CommitManifest.
type SealedManifest struct {
	m   *Manifest
	obj []byte
}

// SealManifest encodes and seals m (tens of ms for a manifest of many files, which
// a backup spends while its last objects are written; PutManifest does both).
func (r *Repo) SealManifest(m *Manifest) (*SealedManifest, error) {
	m.Format = ManifestFormat
	plain, err := encodeManifest(m)
	if err != nil {
		return nil, fmt.Errorf("writing manifest of backup %s: %w", m.ID, err)
	}
	obj, err := r.sealMeta(plain)
	if err != nil {
		return nil, fmt.Errorf("writing manifest of backup %s: %w", m.ID, err)
	}
	return &SealedManifest{m: m, obj: obj}, nil
}

// CommitManifest commits a backup with its sealed manifest, as PutManifest: the
// deferred writes (packs, indexes) are made durable first, then the manifest is
// stored, and the backup is listed.
func (r *Repo) CommitManifest(ctx context.Context, s *SealedManifest) error {
	if err := r.st.SyncDeferred(ctx); err != nil {
		return fmt.Errorf("committing backup %s: %w", s.m.ID, err)
	}
	name := manifestPrefix(s.m.Cluster) + s.m.ID
	if err := r.st.Put(ctx, name, bytes.NewReader(s.obj), int64(len(s.obj))); err != nil {
		return fmt.Errorf("writing manifest of backup %s to %s: %w", s.m.ID, r.st, err)
	}
	return nil
}

// BackupIDs lists the committed backups of a cluster, oldest first (IDs sort by
// time).
func (r *Repo) BackupIDs(ctx context.Context, cluster string) ([]string, error) {
	var ids []string
	prefix := manifestPrefix(cluster)
	err := r.st.List(ctx, prefix, func(o ObjectInfo) error {
		id := strings.TrimPrefix(o.Name, prefix)
		if !strings.Contains(id, "/") {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing backups of %s in %s: %w", cluster, r.st, err)
	}
	sort.Strings(ids)
	return ids, nil
}

// ErrNoBackup is wrapped when a requested backup does not exist.
var ErrNoBackup = errors.New("no such backup")

// Manifest reads a backup's manifest. id may be "latest".
func (r *Repo) Manifest(ctx context.Context, cluster, id string) (*Manifest, error) {
	if id == "" || id == "latest" {
		ids, err := r.BackupIDs(ctx, cluster)
		if err != nil {
			return nil, err
		}
		if len(ids) == 0 {
			return nil, fmt.Errorf("%w: cluster %q has no backups in %s; run 'pgward backup' first", ErrNoBackup, cluster, r.st)
		}
		id = ids[len(ids)-1]
	}
	var m Manifest
	if err := r.getMeta(ctx, manifestPrefix(cluster)+id, func(b []byte) error { return decodeManifest(b, &m) }); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("%w: backup %q of cluster %q is not in %s ('pgward list' shows the backups)", ErrNoBackup, id, cluster, r.st)
		}
		return nil, fmt.Errorf("reading manifest of backup %s: %w", id, err)
	}
	if m.Format != ManifestFormat {
		return nil, fmt.Errorf("backup %s: manifest format %d is not supported by this pgward", id, m.Format)
	}
	return &m, nil
}

// Clusters lists the cluster names that have an identity in the repository.
func (r *Repo) Clusters(ctx context.Context) ([]string, error) {
	var names []string
	err := r.st.List(ctx, "clusters/", func(o ObjectInfo) error {
		rest := strings.TrimPrefix(o.Name, "clusters/")
		if c, ok := strings.CutSuffix(rest, "/"+identityName); ok && !strings.Contains(c, "/") {
			names = append(names, c)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing clusters in %s: %w", r.st, err)
	}
	return names, nil
}
