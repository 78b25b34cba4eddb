package info

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/contents"
	"github.com/pgward/pgward/restore"
)

// Report describes one repository: the stable shape of 'info --json' (README, "pgward
// info").
type Report struct {
	Repository string `json:"repository"`
	Format     int    `json:"format"`
	// Encryption is "none" or "aes-256-gcm".
	Encryption string `json:"encryption"`
	ChunkSize  int    `json:"chunk_size"`
	// ContentBytes is what chunks, packs and index objects occupy; UnreferencedBytes the
	// part of it no backup needs (dead chunk objects, dead pack entries), which expire's
	// garbage collection frees.
	ContentBytes      int64 `json:"content_bytes"`
	ContentObjects    int   `json:"content_objects"`
	UnreferencedBytes int64 `json:"unreferenced_bytes"`
	// LastVerify is the newest verify run's result; null when verify never ran.
	LastVerify *repo.VerifyRun `json:"last_verify"`
	Clusters   []Cluster       `json:"clusters"`
}

// Cluster describes one cluster: its catalog as list shows it (timelines, windows, damaged
// backups), and its backups with their sizes.
type Cluster struct {
	restore.Report
	Backups []Backup `json:"backups"`
	// DBBytes sums the backups' logical sizes; ReferencedBytes is what the objects they need
	// occupy (each counted once), DedupRatio the first over the second; UniqueBytes sums
	// what only one backup needs.
	DBBytes         int64   `json:"db_bytes"`
	ReferencedBytes int64   `json:"referenced_bytes"`
	UniqueBytes     int64   `json:"unique_bytes"`
	DedupRatio      float64 `json:"dedup_ratio"`
	// WALFiles and WALBytes count the archived WAL files, summaries and streamed partials.
	WALFiles int   `json:"wal_files"`
	WALBytes int64 `json:"wal_bytes"`
	// Error says why the cluster's catalog cannot be read (an identity missing or damaged);
	// then only its name is reported.
	Error string `json:"error,omitempty"`
}

// Backup describes one backup: what list says of it (StoredBytes is what it added to the
// repository when it was taken), then what every object it needs occupies, its manifest
// included (ReferencedBytes), the part of that no other backup needs (UniqueBytes), and its
// pin.
type Backup struct {
	restore.BackupReport
	ReferencedBytes int64   `json:"referenced_bytes"`
	UniqueBytes     int64   `json:"unique_bytes"`
	DedupRatio      float64 `json:"dedup_ratio"`
	Pinned          bool    `json:"pinned"`
	PinNote         string  `json:"pin_note,omitempty"`
}

// Gather describes a repository: every cluster, or only cluster when it is not "".
func Gather(ctx context.Context, r *repo.Repo, cluster string) (*Report, error) {
	enc := "none"
	if r.Encrypted() {
		enc = "aes-256-gcm"
	}
	rep := &Report{Repository: r.String(), Format: r.Config().Format, Encryption: enc, ChunkSize: r.Config().ChunkSize, Clusters: []Cluster{}}
	names, err := clusterNames(ctx, r)
	if err != nil {
		return nil, err
	}
	if cluster != "" {
		if !slices.Contains(names, cluster) {
			return nil, fmt.Errorf("cluster %q has nothing in %s ('pgward info' without --cluster shows every cluster)", cluster, r)
		}
	}
	sizes, err := listSizes(ctx, r)
	if err != nil {
		return nil, err
	}
	store, err := contents.Load(ctx, r, func(name string, err error) error {
		return fmt.Errorf("%w (sizes cannot be told without the index; run 'pgward verify --all')", err)
	})
	if err != nil {
		return nil, err
	}
	a := newAccount(store, sizes)
	cats := map[string]*restore.Catalog{}
	catErrs := map[string]error{}
	for _, name := range names {
		cat, err := restore.LoadCatalog(ctx, []*repo.Repo{r}, name)
		if err != nil {
			// A damaged cluster is described as far as it can be; its backups still count.
			catErrs[name] = err
			err = a.addCluster(ctx, r, name)
		} else {
			cats[name] = cat
			for _, m := range cat.Backups {
				if err = a.add(ctx, r, m); err != nil {
					break
				}
			}
		}
		if err != nil {
			return nil, err
		}
	}
	a.finish()
	rep.ContentBytes, rep.ContentObjects, rep.UnreferencedBytes = a.content()
	for _, name := range names {
		if cluster != "" && name != cluster {
			continue
		}
		if err := catErrs[name]; err != nil {
			rep.Clusters = append(rep.Clusters, Cluster{Report: restore.Report{Repo: r.String(), Cluster: name}, Backups: []Backup{}, Error: err.Error()})
			continue
		}
		c, err := describe(ctx, r, cats[name], a, sizes)
		if err != nil {
			return nil, err
		}
		rep.Clusters = append(rep.Clusters, c)
	}
	if rep.LastVerify, err = r.LastVerifyRun(ctx); err != nil {
		return nil, err
	}
	return rep, nil
}

// clusterNames are the clusters with an identity or a backup.
func clusterNames(ctx context.Context, r *repo.Repo) ([]string, error) {
	names, err := r.Clusters(ctx)
	if err != nil {
		return nil, err
	}
	refs, err := r.AllManifests(ctx)
	if err != nil {
		return nil, err
	}
	for _, ref := range refs {
		names = append(names, ref.Cluster)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// listSizes lists every object under clusters/ with its size.
func listSizes(ctx context.Context, r *repo.Repo) (map[string]int64, error) {
	sizes := map[string]int64{}
	err := r.Storage().List(ctx, "clusters/", func(o repo.ObjectInfo) error {
		sizes[o.Name] = o.Size
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", r, err)
	}
	return sizes, nil
}

// describe builds a cluster's part of the report.
func describe(ctx context.Context, r *repo.Repo, cat *restore.Catalog, a *account, sizes map[string]int64) (Cluster, error) {
	catRep, err := cat.Report(ctx, r.String())
	if err != nil {
		return Cluster{}, fmt.Errorf("cluster %s in %s: %w", cat.Cluster, r, err)
	}
	pins, err := r.Pins(ctx, cat.Cluster)
	if err != nil {
		return Cluster{}, err
	}
	c := Cluster{Report: *catRep, Backups: []Backup{}}
	for _, m := range cat.Backups {
		u := a.usage[usageKey{m.Cluster, m.ID}]
		b := Backup{BackupReport: restore.BackupReportOf(r.String(), m), ReferencedBytes: u.referenced, UniqueBytes: u.unique,
			DedupRatio: ratio(m.DBBytes, u.referenced)}
		if p, ok := pins[m.ID]; ok {
			b.Pinned, b.PinNote = true, p.Note
		}
		c.Backups = append(c.Backups, b)
		c.DBBytes += m.DBBytes
		c.UniqueBytes += u.unique
	}
	c.ReferencedBytes = a.clusterBytes[cat.Cluster]
	c.DedupRatio = ratio(c.DBBytes, c.ReferencedBytes)
	prefix := "clusters/" + cat.Cluster + "/"
	for name, size := range sizes {
		rest, ok := strings.CutPrefix(name, prefix)
		if ok && (strings.HasPrefix(rest, "wal/") || strings.HasPrefix(rest, "wal-summary/") || strings.HasPrefix(rest, "wal-partial/")) {
			c.WALFiles++
			c.WALBytes += size
		}
	}
	return c, nil
}

func ratio(logical, stored int64) float64 {
	if stored == 0 {
		return 0
	}
	return float64(logical) / float64(stored)
}
