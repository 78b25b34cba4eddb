package verify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/pgward/pgward/repo"
)

// clusterScope is one cluster in scope and what the run learned of it.
type clusterScope struct {
	name string
	// ids are the backups to check; every says they are all of the cluster's.
	ids   []string
	every bool
	// ident is nil when the identity is missing or damaged (reported).
	ident *repo.Identity
	// wal lists the cluster's WAL objects, by object name.
	wal map[string]repo.WALObject
	// walNeeds maps an archived WAL object to the backups that need it to reach consistency.
	walNeeds map[string][]string
	// pins maps the pin objects of backups in scope to their size.
	pins map[string]int64
}

// scope decides the clusters and backups to check.
func (v *run) scope(ctx context.Context) error {
	var names []string
	if v.o.All {
		var err error
		if names, err = v.r.Clusters(ctx); err != nil {
			return err
		}
		refs, err := v.r.AllManifests(ctx)
		if err != nil {
			return err
		}
		for _, ref := range refs {
			names = append(names, ref.Cluster)
		}
		slices.Sort(names)
		names = slices.Compact(names)
	} else {
		names = []string{v.o.Cluster}
	}
	for _, name := range names {
		ids, err := v.r.BackupIDs(ctx, name)
		if err != nil {
			return err
		}
		c := &clusterScope{name: name, ids: ids, every: true, walNeeds: map[string][]string{}}
		if v.o.Backup != "" {
			id, ok := chooseBackup(ids, v.o.Backup)
			if !ok {
				return absent(fmt.Sprintf("backup %q of cluster %q is not in %s ('pgward list' shows the backups)", v.o.Backup, name, v.r))
			}
			c.ids, c.every = []string{id}, false
		}
		v.clusters = append(v.clusters, c)
	}
	v.res.Scope = v.describe()
	v.res.Counts.Clusters = len(v.clusters)
	return nil
}

// chooseBackup resolves an ID or "latest" among a cluster's backups.
func chooseBackup(ids []string, want string) (string, bool) {
	if want == "latest" {
		if len(ids) == 0 {
			return "", false
		}
		return ids[len(ids)-1], true
	}
	return want, slices.Contains(ids, want)
}

// ErrAbsent is wrapped when the cluster or the backup to verify is not in the repository
// (the CLI skips such a repository when another one has it).
var ErrAbsent = errors.New("not in the repository")

// absent is an error that says what is absent in its own words and wraps ErrAbsent.
type absent string

func (e absent) Error() string        { return string(e) }
func (e absent) Is(target error) bool { return target == ErrAbsent }

// describe is the scope in words, for reports and the run record.
func (v *run) describe() string {
	var parts []string
	switch {
	case v.o.All:
		parts = append(parts, "every cluster, every backup, the whole WAL archive")
	case v.o.Backup != "" && len(v.clusters) == 1:
		parts = append(parts, fmt.Sprintf("cluster %s, backup %s", v.o.Cluster, v.clusters[0].ids[0]))
	default:
		parts = append(parts, fmt.Sprintf("cluster %s, every backup", v.o.Cluster))
	}
	if v.o.WAL && !v.o.All {
		parts = append(parts, "the whole WAL archive")
	}
	return strings.Join(parts, ", ")
}

// listCluster lists what the run needs of a cluster beyond its backups: its WAL objects, and
// reading data, its pins.
func (v *run) listCluster(ctx context.Context, c *clusterScope) error {
	c.wal = map[string]repo.WALObject{}
	err := v.r.ListWALObjects(ctx, c.name, func(w repo.WALObject) error {
		c.wal[w.Name] = w
		return nil
	})
	if err != nil {
		return err
	}
	if v.o.Mode == Structure {
		return nil
	}
	c.pins = map[string]int64{}
	prefix := repo.PinPrefix(c.name)
	return v.r.Storage().List(ctx, prefix, func(o repo.ObjectInfo) error {
		id := strings.TrimPrefix(o.Name, prefix)
		if !strings.Contains(id, "/") && (c.every || slices.Contains(c.ids, id)) {
			c.pins[o.Name] = o.Size
		}
		return nil
	})
}

// identity reads a cluster's identity; a missing one is a problem when the cluster has
// backups or WAL.
func (v *run) identity(ctx context.Context, c *clusterScope) {
	id, err := v.r.Identity(ctx, c.name)
	switch {
	case err == nil:
		c.ident = id
	case errors.Is(err, repo.ErrNotFound):
		if len(c.ids) > 0 || len(c.wal) > 0 {
			v.probs.add(repo.VerifyProblem{Object: repo.IdentityObjectName(c.name), Kind: KindIdentity,
				Error: fmt.Sprintf("cluster %q has backups or WAL but no identity object: its WAL cannot be checked", c.name)})
		}
	default:
		v.probs.add(repo.VerifyProblem{Object: repo.IdentityObjectName(c.name), Kind: KindIdentity, Error: err.Error()})
	}
}
