package repo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strings"
	"time"
)

// Pins (docs/repository-format.md, "Pins"): a pinned backup is kept by every retention
// policy. A pin is an object of its own, not a field of the manifest, because manifests are
// written once.

// Pin is the content of a pin object.
type Pin struct {
	Backup string    `json:"backup"`
	Note   string    `json:"note,omitempty"`
	Time   time.Time `json:"time"`
	Host   string    `json:"host"`
	User   string    `json:"user"`
}

func pinPrefix(cluster string) string { return "clusters/" + cluster + "/pins/" }

// PinBackup pins a committed backup, replacing an existing pin (and its note).
func (r *Repo) PinBackup(ctx context.Context, cluster, id, note string) (Pin, error) {
	if _, err := r.Manifest(ctx, cluster, id); err != nil {
		return Pin{}, err
	}
	host, _ := os.Hostname()
	p := Pin{Backup: id, Note: note, Time: time.Now().UTC(), Host: host}
	if u, err := user.Current(); err == nil {
		p.User = u.Username
	}
	name := pinPrefix(cluster) + id
	// Objects are written once: a new note replaces the old pin by delete, then write.
	if err := r.st.Delete(ctx, name); err != nil {
		return Pin{}, fmt.Errorf("replacing the pin of backup %s in %s: %w", id, r.st, err)
	}
	if _, err := r.putJSON(ctx, name, p); err != nil {
		return Pin{}, fmt.Errorf("pinning backup %s in %s: %w", id, r.st, err)
	}
	return p, nil
}

// UnpinBackup removes a backup's pin; found is false when it had none.
func (r *Repo) UnpinBackup(ctx context.Context, cluster, id string) (found bool, err error) {
	name := pinPrefix(cluster) + id
	if _, err := r.st.Stat(ctx, name); err != nil {
		if errors.Is(err, ErrNotFound) {
			return false, nil
		}
		return false, fmt.Errorf("unpinning backup %s in %s: %w", id, r.st, err)
	}
	if err := r.st.Delete(ctx, name); err != nil {
		return false, fmt.Errorf("unpinning backup %s in %s: %w", id, r.st, err)
	}
	return true, nil
}

// Pins returns a cluster's pins by backup ID.
func (r *Repo) Pins(ctx context.Context, cluster string) (map[string]Pin, error) {
	prefix := pinPrefix(cluster)
	var names []string
	err := r.st.List(ctx, prefix, func(o ObjectInfo) error {
		if !strings.Contains(strings.TrimPrefix(o.Name, prefix), "/") {
			names = append(names, o.Name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the pins of %s in %s: %w", cluster, r.st, err)
	}
	pins := map[string]Pin{}
	for _, name := range names {
		var p Pin
		if err := r.getJSON(ctx, name, &p); err != nil {
			if errors.Is(err, ErrNotFound) {
				continue // unpinned meanwhile
			}
			return nil, fmt.Errorf("reading pin %s in %s: %w", name, r.st, err)
		}
		pins[strings.TrimPrefix(name, prefix)] = p
	}
	return pins, nil
}

// DeletePin removes the pin object of a backup that no longer exists.
func (r *Repo) DeletePin(ctx context.Context, cluster, id string) error {
	return r.st.Delete(ctx, pinPrefix(cluster)+id)
}
