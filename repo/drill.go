package repo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Drill records (docs/repository-format.md, "Lifecycle"): the outcome of each restore drill,
// so that info and the daemon show when a cluster's backups were last proven restorable.

// DrillRecord is one drill's outcome and measured recovery time.
type DrillRecord struct {
	Cluster string    `json:"cluster"`
	Time    time.Time `json:"time"`
	// Requested is the backup asked for ("latest" or an ID); Backup the one restored.
	Requested string `json:"requested"`
	Backup    string `json:"backup"`
	// Target is the recovery target time, or "" for the end of the archived WAL.
	Target    string `json:"target"`
	PGVersion int    `json:"pg_version"`
	OK        bool   `json:"ok"`
	Error     string `json:"error,omitempty"`
	// RTOSeconds = RestoreSeconds + ReplaySeconds + AcceptSeconds: from the start of the
	// restore to the first committed read-write transaction.
	RTOSeconds       float64 `json:"rto_seconds"`
	RestoreSeconds   float64 `json:"restore_seconds"`
	ReplaySeconds    float64 `json:"replay_seconds"`
	AcceptSeconds    float64 `json:"accept_seconds"`
	WALBytesReplayed int64   `json:"wal_bytes_replayed"`
	RestoredBytes    int64   `json:"restored_bytes"`
	// CheckSeconds is the reading of the restored cluster, after the RTO.
	CheckSeconds float64     `json:"check_seconds"`
	Checks       DrillChecks `json:"checks"`
}

// DrillChecks says what a drill read of the restored cluster.
type DrillChecks struct {
	Databases      int   `json:"databases"`
	Tables         int   `json:"tables"`
	Rows           int64 `json:"rows"`
	Amcheck        bool  `json:"amcheck"`
	IndexesChecked int   `json:"indexes_checked"`
	HeapsChecked   int   `json:"heaps_checked"`
}

// keepDrills is how many records a cluster keeps; older ones are removed as new ones come.
const keepDrills = 100

func drillPrefix(cluster string) string { return "clusters/" + cluster + "/drills/" }

// PutDrillRecord stores a drill's outcome and prunes the oldest records.
func (r *Repo) PutDrillRecord(ctx context.Context, rec *DrillRecord) error {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	name := drillPrefix(rec.Cluster) + rec.Time.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(rnd[:])
	if _, err := r.putJSON(ctx, name, rec); err != nil {
		return fmt.Errorf("recording the drill in %s: %w", r.st, err)
	}
	names, err := r.drillNames(ctx, rec.Cluster)
	if err != nil {
		return nil // recorded; pruning waits for the next drill
	}
	for len(names) > keepDrills {
		_ = r.st.Delete(ctx, names[0])
		names = names[1:]
	}
	return nil
}

func (r *Repo) drillNames(ctx context.Context, cluster string) ([]string, error) {
	prefix := drillPrefix(cluster)
	var names []string
	err := r.st.List(ctx, prefix, func(o ObjectInfo) error {
		if !strings.Contains(strings.TrimPrefix(o.Name, prefix), "/") {
			names = append(names, o.Name)
		}
		return nil
	})
	sort.Strings(names)
	return names, err
}

// DrillRecords returns a cluster's newest drill records, newest first, at most n (0: all).
func (r *Repo) DrillRecords(ctx context.Context, cluster string, n int) ([]DrillRecord, error) {
	names, err := r.drillNames(ctx, cluster)
	if err != nil {
		return nil, fmt.Errorf("listing the drills of %s in %s: %w", cluster, r.st, err)
	}
	var out []DrillRecord
	for i := len(names) - 1; i >= 0 && (n == 0 || len(out) < n); i-- {
		var rec DrillRecord
		if err := r.getJSON(ctx, names[i], &rec); err != nil {
			if errors.Is(err, ErrNotFound) {
				continue
			}
			return out, fmt.Errorf("reading drill record %s in %s: %w", names[i], r.st, err)
		}
		out = append(out, rec)
	}
	return out, nil
}
