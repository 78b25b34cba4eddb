package restore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/wal"
	"github.com/pgward/pgward/wal/inventory"
)

// Catalog is what a cluster's repositories hold for a restore: the backups that can
// be read, the ones that cannot (named, with the reason), the cluster's identity and
// its WAL inventory. It is the one view list, restore and check share.
//
// Over several repositories it is their union, as restore reads them: a backup is
// sound when any repository holds a readable manifest of it, and WAL is present when
// any repository has it.
type Catalog struct {
	Cluster string
	// Identity is nil when nothing of the cluster is in the repositories.
	Identity *repo.Identity
	// Backups are the readable backups, oldest first.
	Backups []*repo.Manifest
	// Damaged are backups whose manifest no repository could read.
	Damaged []Damaged
	// WAL is nil when Identity is.
	WAL *inventory.Inventory
	// Skipped are repositories that could not be read at all; the catalog is
	// built from the others.
	Skipped []error

	source map[string]*repo.Repo // backup ID → the repository its manifest came from
}

// Damaged is a backup whose manifest cannot be read.
type Damaged struct {
	ID   string
	Repo string
	Err  error
}

// LoadCatalog reads the cluster's backups, identity and WAL from repos. A repository
// that cannot be listed is skipped (and named in Skipped) when another one answers;
// when none does, that is the error. An identity that exists but cannot be read is an
// error: without it the WAL cannot be placed, and a shorter window would be a lie.
func LoadCatalog(ctx context.Context, repos []*repo.Repo, cluster string) (*Catalog, error) {
	c := &Catalog{Cluster: cluster, source: map[string]*repo.Repo{}}
	var usable []*repo.Repo
	damaged := map[string]Damaged{}
	for _, r := range repos {
		ids, err := r.BackupIDs(ctx, cluster)
		if err != nil {
			c.Skipped = append(c.Skipped, err)
			continue
		}
		usable = append(usable, r)
		for _, id := range ids {
			if c.source[id] != nil {
				continue
			}
			m, err := r.Manifest(ctx, cluster, id)
			if err != nil {
				if _, seen := damaged[id]; !seen {
					damaged[id] = Damaged{ID: id, Repo: r.String(), Err: err}
				}
				continue
			}
			delete(damaged, id)
			c.source[id] = r
			c.Backups = append(c.Backups, m)
		}
	}
	if len(usable) == 0 && len(repos) > 0 {
		return nil, errors.Join(c.Skipped...)
	}
	sort.Slice(c.Backups, func(i, j int) bool { return c.Backups[i].ID < c.Backups[j].ID })
	for _, d := range damaged {
		c.Damaged = append(c.Damaged, d)
	}
	sort.Slice(c.Damaged, func(i, j int) bool { return c.Damaged[i].ID < c.Damaged[j].ID })

	var idErrs []error
	for _, r := range usable {
		id, err := r.Identity(ctx, cluster)
		if err == nil {
			c.Identity = id
			break
		}
		if !errors.Is(err, repo.ErrNotFound) {
			idErrs = append(idErrs, fmt.Errorf("reading the identity of cluster %q in %s: %w", cluster, r, err))
		}
	}
	if c.Identity == nil && len(idErrs) > 0 {
		return nil, errors.Join(idErrs...)
	}
	if c.Identity == nil {
		if len(c.Backups) > 0 {
			return nil, fmt.Errorf("cluster %q has backups but no identity object in %s: the repository is damaged", cluster, usable[0])
		}
		return c, nil
	}
	inv, err := inventory.Load(ctx, usable, cluster, c.Identity.WALSegSize)
	if err != nil {
		return nil, err
	}
	c.WAL = inv
	return c, nil
}

// Source returns the repository a backup's manifest was read from.
func (c *Catalog) Source(m *repo.Manifest) *repo.Repo { return c.source[m.ID] }

// Backup returns a backup by ID ("" or "latest": the newest readable one).
func (c *Catalog) Backup(id string) (*repo.Manifest, error) {
	if id == "" || id == "latest" {
		if len(c.Backups) == 0 {
			return nil, c.noBackups()
		}
		return c.Backups[len(c.Backups)-1], nil
	}
	for _, m := range c.Backups {
		if m.ID == id {
			return m, nil
		}
	}
	for _, d := range c.Damaged {
		if d.ID == id {
			return nil, fmt.Errorf("backup %s of cluster %q cannot be read: %w", id, c.Cluster, d.Err)
		}
	}
	return nil, fmt.Errorf("%w: backup %q of cluster %q is not in the repositories ('pgward list' shows the backups)", repo.ErrNoBackup, id, c.Cluster)
}

func (c *Catalog) noBackups() error {
	if len(c.Damaged) > 0 {
		return fmt.Errorf("%w: cluster %q has no readable backup; %d manifest(s) are damaged, the newest %s: %v", repo.ErrNoBackup, c.Cluster, len(c.Damaged), c.Damaged[len(c.Damaged)-1].ID, c.Damaged[len(c.Damaged)-1].Err)
	}
	return fmt.Errorf("%w: cluster %q has no backups; run 'pgward backup' first", repo.ErrNoBackup, c.Cluster)
}

// stop is a backup's consistency point.
func stop(m *repo.Manifest) uint64 {
	lsn, _ := wal.ParseLSN(m.StopLSN)
	return lsn
}

// Reach is how far recovery from a backup gets along a timeline, with what the
// records at its end say.
type Reach struct {
	inventory.Reach
	inventory.Tail
}

// Reach walks the archive from backup m along timeline tli and reads its tail.
func (c *Catalog) Reach(ctx context.Context, m *repo.Manifest, tli uint32) (Reach, error) {
	if c.WAL == nil {
		return Reach{Reach: inventory.Reach{Timeline: m.Timeline, From: stop(m), End: stop(m)}, Tail: inventory.Tail{LastRecord: stop(m)}}, nil
	}
	r, err := c.WAL.Reach(m.Timeline, stop(m), tli)
	if err != nil {
		return Reach{}, err
	}
	t, err := c.WAL.Tail(ctx, r)
	if err != nil {
		return Reach{}, err
	}
	return Reach{r, t}, nil
}

// Window is a stretch that recovery along one timeline can reach, from the
// consistency point of a backup to where the archive's WAL ends or breaks off.
type Window struct {
	Timeline uint32
	// From is the consistency point of the backup it starts from.
	FromBackup string
	FromTime   time.Time
	FromLSN    uint64
	Reach
}

// ToTime is the last point in time the window reaches: its last transaction end,
// or the backup's consistency time when no transaction ended after it.
func (w Window) ToTime() time.Time {
	if w.HasXact {
		return w.LastXactTime
	}
	return w.FromTime
}

// Windows lists, per timeline that some backup can follow, the windows recovery can
// reach: one from the earliest backup to the end of the WAL or the first gap, then one
// from the first backup after that gap, and so on.
func (c *Catalog) Windows(ctx context.Context) ([]Window, error) {
	var out []Window
	for _, tli := range c.timelines() {
		var cands []*repo.Manifest
		for _, m := range c.Backups {
			if c.WAL == nil || c.WAL.Followable(m.Timeline, stop(m), tli) == nil {
				cands = append(cands, m)
			}
		}
		sort.Slice(cands, func(i, j int) bool { return stop(cands[i]) < stop(cands[j]) })
		var covered uint64
		for _, m := range cands {
			if len(out) > 0 && out[len(out)-1].Timeline == tli && stop(m) <= covered {
				continue
			}
			r, err := c.Reach(ctx, m, tli)
			if err != nil {
				return nil, err
			}
			out = append(out, Window{Timeline: tli, FromBackup: m.ID, FromTime: m.StopTime, FromLSN: stop(m), Reach: r})
			covered = r.End
		}
	}
	return out, nil
}

// timelines are the backups' timelines and every archived one, ascending.
func (c *Catalog) timelines() []uint32 {
	var ids []uint32
	if c.WAL != nil {
		ids = c.WAL.IDs()
	}
	for _, m := range c.Backups {
		ids = append(ids, m.Timeline)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}
