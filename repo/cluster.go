package repo

import (
	"context"
	"errors"
	"fmt"
	"time"
)

const identityName = "identity"

// Identity records which PostgreSQL cluster a cluster name in the repository
// belongs to. It is written once, by the first backup; later backups and WAL
// under the same name must match it, so two clusters can never be mixed up
// under one name.
type Identity struct {
	Cluster          string `json:"cluster"`
	SystemIdentifier string `json:"system_identifier"`
	PGMajor          int    `json:"pg_major"`
	// WALSegSize is the cluster's WAL segment size in bytes (initdb --wal-segsize).
	WALSegSize uint64    `json:"wal_segment_size"`
	Created    time.Time `json:"created"`
}

func identityObject(cluster string) string { return "clusters/" + cluster + "/" + identityName }

// Identity returns the stored identity of a cluster, or ErrNotFound.
func (r *Repo) Identity(ctx context.Context, cluster string) (*Identity, error) {
	var id Identity
	if err := r.getJSON(ctx, identityObject(cluster), &id); err != nil {
		return nil, err
	}
	return &id, nil
}

// ErrWrongCluster is wrapped when a cluster name in the repository belongs to
// another PostgreSQL cluster.
var ErrWrongCluster = errors.New("cluster identity mismatch")

// EnsureIdentity checks that the cluster name belongs to this system identifier
// and major version, recording them when the name is new.
func (r *Repo) EnsureIdentity(ctx context.Context, want Identity) error {
	have, err := r.Identity(ctx, want.Cluster)
	if errors.Is(err, ErrNotFound) {
		want.Created = time.Now().UTC()
		if _, err := r.putJSON(ctx, identityObject(want.Cluster), want); err != nil && !errors.Is(err, ErrExists) {
			return fmt.Errorf("recording cluster %q in %s: %w", want.Cluster, r.st, err)
		} else if err == nil {
			return nil
		}
		// Someone else recorded it first: check against theirs.
		have, err = r.Identity(ctx, want.Cluster)
	}
	if err != nil {
		return fmt.Errorf("reading identity of cluster %q in %s: %w", want.Cluster, r.st, err)
	}
	if have.SystemIdentifier != want.SystemIdentifier {
		return fmt.Errorf("%w: cluster %q in %s belongs to the PostgreSQL system %s, but this server is system %s; use another --cluster name for this server", ErrWrongCluster, want.Cluster, r.st, have.SystemIdentifier, want.SystemIdentifier)
	}
	if have.PGMajor != want.PGMajor {
		return fmt.Errorf("%w: cluster %q in %s holds PostgreSQL %d backups, but this server runs PostgreSQL %d; after a major upgrade use a new --cluster name", ErrWrongCluster, want.Cluster, r.st, have.PGMajor, want.PGMajor)
	}
	return nil
}
