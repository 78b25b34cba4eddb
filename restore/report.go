package restore

import (
	"context"
	"time"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/wal"
	"github.com/pgward/pgward/wal/inventory"
)

// BackupReport is one backup in the stable shape of 'list --json' (README, "pgward list");
// info adds its sizes to it.
type BackupReport struct {
	ID               string    `json:"id"`
	Cluster          string    `json:"cluster"`
	Repo             string    `json:"repo"`
	StartTime        time.Time `json:"start_time"`
	StopTime         time.Time `json:"stop_time"`
	StartLSN         string    `json:"start_lsn"`
	StopLSN          string    `json:"stop_lsn"`
	Timeline         uint32    `json:"timeline"`
	PGVersion        int       `json:"pg_version"`
	SystemIdentifier string    `json:"system_identifier"`
	DBBytes          int64     `json:"db_bytes"`
	StoredBytes      int64     `json:"stored_bytes"`
	Compress         string    `json:"compress"`
	Label            string    `json:"label"`
}

// BackupReportOf describes a backup read from the repository named repoName.
func BackupReportOf(repoName string, m *repo.Manifest) BackupReport {
	return BackupReport{ID: m.ID, Cluster: m.Cluster, Repo: repoName, StartTime: m.StartTime, StopTime: m.StopTime,
		StartLSN: m.StartLSN, StopLSN: m.StopLSN, Timeline: m.Timeline, PGVersion: m.PGVersion,
		SystemIdentifier: m.SystemIdentifier, DBBytes: m.DBBytes, StoredBytes: m.StoredBytes, Compress: m.Compress, Label: m.Label}
}

// Report is a catalog in the stable shape of 'list --json' (README, "pgward list"):
// LSNs as PostgreSQL writes them, times in UTC, sizes in bytes.
type Report struct {
	Repo             string           `json:"repo"`
	Cluster          string           `json:"cluster"`
	SystemIdentifier string           `json:"system_identifier,omitempty"`
	PGMajor          int              `json:"pg_major,omitempty"`
	WALSegmentSize   uint64           `json:"wal_segment_size,omitempty"`
	Timelines        []TimelineReport `json:"timelines"`
	Windows          []WindowReport   `json:"windows"`
	Damaged          []DamagedReport  `json:"damaged"`
}

// TimelineReport is what the archive holds of one timeline.
type TimelineReport struct {
	Timeline     uint32         `json:"timeline"`
	Parent       uint32         `json:"parent,omitempty"`
	ForkLSN      string         `json:"fork_lsn,omitempty"`
	HistoryError string         `json:"history_error,omitempty"`
	Segments     int            `json:"segments"`
	FirstSegment string         `json:"first_segment,omitempty"`
	LastSegment  string         `json:"last_segment,omitempty"`
	Partial      *PartialReport `json:"partial,omitempty"`
	Gaps         []GapReport    `json:"gaps"`
}

// PartialReport is a streamed partial segment that extends a timeline.
type PartialReport struct {
	Segment string `json:"segment"`
	EndLSN  string `json:"end_lsn"`
}

// GapReport is a run of missing segments.
type GapReport struct {
	First string `json:"first"`
	Last  string `json:"last"`
	Count uint64 `json:"count"`
}

// WindowReport is a stretch recovery can reach.
type WindowReport struct {
	Timeline   uint32    `json:"timeline"`
	FromBackup string    `json:"from_backup"`
	FromTime   time.Time `json:"from_time"`
	FromLSN    string    `json:"from_lsn"`
	// ToTime is the last transaction end (the last point a time target can
	// name), or FromTime when none ended after the backup.
	ToTime time.Time `json:"to_time"`
	// ToLSN is the start of the last complete record (the last point an LSN
	// target can name); EndLSN where the contiguous WAL ends.
	ToLSN         string     `json:"to_lsn"`
	EndLSN        string     `json:"end_lsn"`
	EndSegment    string     `json:"end_segment,omitempty"`
	Partial       bool       `json:"partial"`
	Gap           *GapReport `json:"gap,omitempty"`
	ResumeSegment string     `json:"resume_segment,omitempty"`
}

// DamagedReport is a backup whose manifest cannot be read.
type DamagedReport struct {
	ID    string `json:"id"`
	Repo  string `json:"repo"`
	Error string `json:"error"`
}

// Report describes the catalog; repoName names where it was read from.
func (c *Catalog) Report(ctx context.Context, repoName string) (*Report, error) {
	rep := &Report{Repo: repoName, Cluster: c.Cluster, Timelines: []TimelineReport{}, Windows: []WindowReport{}, Damaged: []DamagedReport{}}
	if c.Identity != nil {
		rep.SystemIdentifier, rep.PGMajor, rep.WALSegmentSize = c.Identity.SystemIdentifier, c.Identity.PGMajor, c.Identity.WALSegSize
	}
	for _, d := range c.Damaged {
		rep.Damaged = append(rep.Damaged, DamagedReport{ID: d.ID, Repo: d.Repo, Error: d.Err.Error()})
	}
	if inv := c.WAL; inv != nil {
		for _, id := range inv.IDs() {
			rep.Timelines = append(rep.Timelines, timelineReport(inv, inv.Timelines[id]))
		}
	}
	windows, err := c.Windows(ctx)
	if err != nil {
		return nil, err
	}
	for _, w := range windows {
		wr := WindowReport{Timeline: w.Timeline, FromBackup: w.FromBackup, FromTime: w.FromTime.UTC(), FromLSN: wal.FormatLSN(w.FromLSN),
			ToTime: w.ToTime().UTC(), ToLSN: wal.FormatLSN(w.LastRecord), EndLSN: wal.FormatLSN(w.End),
			EndSegment: w.EndSegment, Partial: w.Partial, ResumeSegment: w.ResumeSegment}
		if w.Gap != nil {
			g := gapReport(c.WAL, *w.Gap)
			wr.Gap = &g
		}
		rep.Windows = append(rep.Windows, wr)
	}
	return rep, nil
}

func timelineReport(inv *inventory.Inventory, t *inventory.Timeline) TimelineReport {
	tr := TimelineReport{Timeline: t.ID, Segments: len(t.Segments), Gaps: []GapReport{}}
	if parent, fork, ok := t.Parent(); ok {
		tr.Parent, tr.ForkLSN = parent, wal.FormatLSN(fork)
	}
	if t.HistoryErr != nil {
		tr.HistoryError = t.HistoryErr.Error()
	}
	if n := len(t.Segments); n > 0 {
		tr.FirstSegment = wal.SegmentName(t.ID, t.Segments[0], inv.SegSize)
		tr.LastSegment = wal.SegmentName(t.ID, t.Segments[n-1], inv.SegSize)
	}
	for seg, end := range t.Partials {
		if tr.Partial == nil || wal.SegmentName(t.ID, seg, inv.SegSize) > tr.Partial.Segment {
			tr.Partial = &PartialReport{Segment: wal.SegmentName(t.ID, seg, inv.SegSize), EndLSN: wal.FormatLSN(end)}
		}
	}
	for _, g := range inv.Gaps(t) {
		tr.Gaps = append(tr.Gaps, gapReport(inv, g))
	}
	return tr
}

func gapReport(inv *inventory.Inventory, g inventory.Gap) GapReport {
	first, last := g.Names(inv.SegSize)
	return GapReport{First: first, Last: last, Count: g.Count()}
}
