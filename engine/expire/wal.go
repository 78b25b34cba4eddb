package expire

import (
	"context"
	"fmt"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/wal"
)

// WALResult is what happens to a cluster's WAL.
type WALResult struct {
	// KeptFrom is the first segment of the recovery window: everything from it on stays.
	KeptFrom string `json:"kept_from,omitempty"`
	// RemovedFiles counts the WAL objects removed (segments, .backup and .partial files,
	// summaries, streamed partials); RemovedBytes is what they held.
	RemovedFiles int   `json:"removed_files"`
	RemovedBytes int64 `json:"removed_bytes"`
	// First and Last are the oldest and newest segment removed.
	First string `json:"first,omitempty"`
	Last  string `json:"last,omitempty"`

	firstNo, lastNo uint64
}

// keptBackup is a backup the policy keeps; window tells whether the WAL after it is kept.
type keptBackup struct {
	m      *repo.Manifest
	window bool
}

// segRange is the segments a kept backup needs to reach consistency.
type segRange struct{ from, to uint64 }

// planWAL decides which WAL objects go: those below the recovery window's first segment
// that no kept backup needs to reach consistency, every streamed partial of a segment
// archived whole, and every streamed partial but the newest of its segment.
func planWAL(ctx context.Context, r *repo.Repo, cluster string, kept []keptBackup, res *WALResult) ([]repo.WALObject, error) {
	ident, err := r.Identity(ctx, cluster)
	if err != nil || ident == nil || !wal.ValidSegSize(ident.WALSegSize) {
		return nil, nil // without the segment size nothing is removed; verify reports the identity
	}
	segSize := ident.WALSegSize
	cutoff := ^uint64(0)
	var needed []segRange
	for _, k := range kept {
		from, to, err := backupSegments(k.m, segSize)
		if err != nil {
			return nil, err
		}
		needed = append(needed, segRange{from, to})
		if k.window {
			cutoff = min(cutoff, from)
		}
	}
	res.KeptFrom = wal.SegmentName(kept[0].m.Timeline, cutoff, segSize)
	for _, k := range kept {
		if from, _, _ := backupSegments(k.m, segSize); from == cutoff {
			res.KeptFrom = wal.SegmentName(k.m.Timeline, cutoff, segSize)
		}
	}
	goes := func(segNo uint64) bool {
		if segNo >= cutoff {
			return false
		}
		for _, n := range needed {
			if segNo >= n.from && segNo <= n.to {
				return false
			}
		}
		return true
	}
	var out []repo.WALObject
	whole := map[string]bool{}
	newest := map[string]uint64{}
	var partials []repo.WALObject
	err = r.ListWALObjects(ctx, cluster, func(o repo.WALObject) error {
		n, err := wal.ParseName(o.File)
		if err != nil || n.Kind == wal.History || !n.InRange(segSize) {
			return nil // history files stay; anything not named like WAL is not ours to judge
		}
		if o.Area == repo.WALFile && n.Kind == wal.Segment {
			whole[o.File] = true
		}
		if o.Area == repo.WALStreamed {
			partials = append(partials, o)
			newest[o.File] = max(newest[o.File], o.End)
			return nil
		}
		if goes(n.SegNo(segSize)) {
			out = append(out, o)
			res.note(o, n, segSize)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, o := range partials {
		n, _ := wal.ParseName(o.File)
		if goes(n.SegNo(segSize)) || whole[o.File] || o.End < newest[o.File] {
			out = append(out, o)
			res.note(o, n, segSize)
		}
	}
	return out, nil
}

// note counts a removed object; First and Last follow the segments by position.
func (res *WALResult) note(o repo.WALObject, n wal.Name, segSize uint64) {
	res.RemovedFiles++
	res.RemovedBytes += o.Size
	if o.Area != repo.WALFile || n.Kind != wal.Segment {
		return
	}
	no := n.SegNo(segSize)
	if res.First == "" || no < res.firstNo {
		res.First, res.firstNo = o.File, no
	}
	if res.Last == "" || no > res.lastNo {
		res.Last, res.lastNo = o.File, no
	}
}

// backupSegments is the range of segments from a backup's start to its stop.
func backupSegments(m *repo.Manifest, segSize uint64) (from, to uint64, err error) {
	start, err := wal.ParseLSN(m.StartLSN)
	if err != nil {
		return 0, 0, fmt.Errorf("backup %s: start LSN %q: %w", m.ID, m.StartLSN, err)
	}
	stop, err := wal.ParseLSN(m.StopLSN)
	if err != nil {
		return 0, 0, fmt.Errorf("backup %s: stop LSN %q: %w", m.ID, m.StopLSN, err)
	}
	return start / segSize, stop / segSize, nil
}
