package restore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/wal"
)

// Request is what the user asked to restore.
type Request struct {
	Cluster string
	// BackupID is a backup ID; "" or "latest" lets the plan choose the newest
	// backup that can reach the target.
	BackupID string
	Target   Target
	// StopAtGap accepts a recovery that ends at the first gap in the archive
	// instead of refusing it.
	StopAtGap bool
	// Standby plans a streaming standby: no target, and a gap in the archive
	// is a warning (the standby streams what the archive lacks from the
	// primary, if the primary still has it).
	Standby bool
}

// Plan is a restore decided before anything is written: which backup, along which
// timeline, how far the archive reaches, and what the user should know.
type Plan struct {
	Catalog *Catalog
	Backup  *repo.Manifest
	// Source is the repository the backup's manifest was read from.
	Source *repo.Repo
	// Timeline is written as recovery_target_timeline: a number, never 'latest',
	// so that PostgreSQL cannot pick a timeline that does not descend from the
	// backup.
	Timeline uint32
	Reach    Reach
	// Zone is the time zone a --target-time without one was read in ("" when
	// it had one, or when there is no time target).
	Zone string
	// Notes say which timeline is followed and why; Warnings are what the user
	// must know (WAL left behind on other timelines, a gap accepted, ...).
	Notes, Warnings []string
	// standby is set for a standby restore (Request.Standby).
	standby bool
}

// Prepare plans a restore over repos. It refuses, before anything is written, a
// target the archive cannot reach: a time or LSN after the end of the WAL or beyond
// a gap, a timeline that does not descend from the backup, and (unless
// req.StopAtGap) a latest-point recovery that a gap would cut short.
func Prepare(ctx context.Context, repos []*repo.Repo, req Request) (*Plan, error) {
	cat, err := LoadCatalog(ctx, repos, req.Cluster)
	if err != nil {
		return nil, err
	}
	p := &Plan{Catalog: cat, standby: req.Standby}
	for _, e := range cat.Skipped {
		p.Warnings = append(p.Warnings, fmt.Sprintf("a repository could not be read and is not used for planning: %v", e))
	}
	newest, err := cat.Backup("")
	if err != nil {
		return nil, err
	}
	for _, d := range cat.Damaged {
		if d.ID > newest.ID {
			p.Warnings = append(p.Warnings, fmt.Sprintf("backup %s is damaged and skipped (%v); using older backups", d.ID, d.Err))
		}
	}
	t := req.Target
	if req.Standby && t.Set() {
		return nil, fmt.Errorf("--standby cannot be combined with a recovery target: a standby follows its primary; restore without --target-* options")
	}
	if t.Time != "" {
		if p.Zone, err = t.Resolve(ctx, cat.Source(newest), newest); err != nil {
			return nil, err
		}
	}
	if err := p.choose(ctx, req, &t); err != nil {
		if t.Time != "" || t.LSN != "" {
			return nil, fmt.Errorf("%w; %s", err, p.windowText(ctx))
		}
		return nil, err
	}
	p.Source = cat.Source(p.Backup)
	if err := p.checkTarget(&t, req.StopAtGap || req.Standby); err != nil {
		return nil, fmt.Errorf("%w; %s", err, p.windowText(ctx))
	}
	p.describe()
	return p, nil
}

// choose picks the backup and the timeline: the given backup, or the newest one
// consistent before the target that can follow the asked timeline.
func (p *Plan) choose(ctx context.Context, req Request, t *Target) error {
	cat := p.Catalog
	var cands []*repo.Manifest
	if req.BackupID != "" && req.BackupID != "latest" {
		m, err := cat.Backup(req.BackupID)
		if err != nil {
			return err
		}
		cands = []*repo.Manifest{m}
	} else {
		for i := len(cat.Backups) - 1; i >= 0; i-- {
			if m := cat.Backups[i]; t.after(m) {
				cands = append(cands, m)
			}
		}
		if len(cands) == 0 {
			return t.beforeFirst(cat)
		}
	}
	var firstErr error
	for _, m := range cands {
		tli, err := p.timeline(m, t.Timeline)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		r, err := cat.Reach(ctx, m, tli)
		if err != nil {
			return err
		}
		p.Backup, p.Timeline, p.Reach = m, tli, r
		return nil
	}
	return firstErr
}

// timeline resolves --target-timeline for a backup.
func (p *Plan) timeline(m *repo.Manifest, asked string) (uint32, error) {
	inv := p.Catalog.WAL
	switch asked {
	case "", "latest":
		if inv == nil {
			return m.Timeline, nil
		}
		return inv.Latest(m.Timeline, stop(m)), nil
	case "current":
		return m.Timeline, nil
	}
	n, err := strconv.ParseUint(asked, 10, 32)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("--target-timeline %q: use latest, current or a timeline number", asked)
	}
	tli := uint32(n)
	if inv != nil {
		if err := inv.Followable(m.Timeline, stop(m), tli); err != nil {
			return 0, fmt.Errorf("backup %s (timeline %d, consistent at %s) cannot recover along timeline %d: %w",
				m.ID, m.Timeline, m.StopLSN, tli, err)
		}
	} else if tli != m.Timeline {
		return 0, fmt.Errorf("timeline %d is not in the archive; backup %s is on timeline %d", tli, m.ID, m.Timeline)
	}
	return tli, nil
}

// after reports whether backup m is consistent at or before a time or LSN target
// (always true for the other kinds: they cannot be placed before reading the WAL).
func (t *Target) after(m *repo.Manifest) bool {
	switch {
	case t.Time != "":
		return !m.StopTime.After(t.at)
	case t.LSN != "":
		target, _ := wal.ParseLSN(t.LSN)
		return stop(m) <= target
	}
	return true
}

func (t *Target) beforeFirst(cat *Catalog) error {
	first := cat.Backups[0]
	switch {
	case t.Time != "":
		return fmt.Errorf("--target-time %s is before the earliest backup was consistent (%s, backup %s); no restore can reach it",
			formatTime(t.at), formatTime(first.StopTime), first.ID)
	default:
		return fmt.Errorf("--target-lsn %s is before the earliest backup was consistent (%s, backup %s); no restore can reach it",
			t.LSN, first.StopLSN, first.ID)
	}
}

// checkTarget refuses what the chosen path cannot reach.
func (p *Plan) checkTarget(t *Target, stopAtGap bool) error {
	r := p.Reach
	gap := ""
	if r.Gap != nil {
		first, last := r.Gap.Names(p.Catalog.WAL.SegSize)
		gap = fmt.Sprintf("the archive is missing %s", first)
		if r.Gap.Count() > 1 {
			gap += fmt.Sprintf(" to %s (%d segments)", last, r.Gap.Count())
		}
		gap += fmt.Sprintf(" on timeline %d, and WAL resumes at %s", r.Gap.Timeline, r.ResumeSegment)
	}
	end := fmt.Sprintf("the last reachable point is %s", wal.FormatLSN(r.LastRecord))
	if r.HasXact {
		end += fmt.Sprintf(", the last transaction ended at %s", formatTime(r.LastXactTime))
	} else {
		end += " (no transaction ended after the backup was consistent)"
	}
	switch {
	case t.Time != "":
		reachable := r.HasXact && (t.at.Before(r.LastXactTime) || (t.Exclusive && t.at.Equal(r.LastXactTime)))
		if !reachable {
			why := "PostgreSQL stops at a time target only on a transaction that ended after it, and none in the archive did"
			if gap != "" {
				why = gap
			}
			return fmt.Errorf("--target-time %s cannot be reached from backup %s along timeline %d: %s; %s. Choose an earlier time, or restore without a target for the latest point",
				formatTime(t.at), p.Backup.ID, p.Timeline, why, end)
		}
	case t.LSN != "":
		target, _ := wal.ParseLSN(t.LSN)
		if target > r.LastRecord {
			why := "the archived WAL ends before it"
			if gap != "" {
				why = gap
			}
			return fmt.Errorf("--target-lsn %s cannot be reached from backup %s along timeline %d: %s; %s", t.LSN, p.Backup.ID, p.Timeline, why, end)
		}
	case t.XID != "" || t.Name != "":
		if gap != "" {
			p.Warnings = append(p.Warnings, fmt.Sprintf("%s; if the target lies after that, recovery will stop there with an error", gap))
		}
	case t.Immediate:
	default:
		if gap != "" && !stopAtGap {
			return fmt.Errorf("restoring the latest point of backup %s along timeline %d would stop short: %s; %s. Restore the missing segments into the repository, or give --stop-at-gap to recover up to the gap",
				p.Backup.ID, p.Timeline, gap, end)
		}
		switch {
		case gap != "" && p.standby:
			p.Warnings = append(p.Warnings, fmt.Sprintf("%s: the standby can get past %s only by streaming it from the primary, which must still have that WAL (a replication slot keeps it)", gap, wal.FormatLSN(r.End)))
		case gap != "":
			p.Warnings = append(p.Warnings, fmt.Sprintf("--stop-at-gap: recovery will end at %s because %s", wal.FormatLSN(r.End), gap))
		}
	}
	return nil
}

// describe notes the timeline followed and warns about WAL left behind.
func (p *Plan) describe() {
	inv := p.Catalog.WAL
	note := fmt.Sprintf("backup %s (timeline %d), recovering along timeline %d", p.Backup.ID, p.Backup.Timeline, p.Timeline)
	if inv != nil {
		if t := inv.Timelines[p.Timeline]; t != nil {
			if parent, fork, ok := t.Parent(); ok {
				note += fmt.Sprintf(" (forked from timeline %d at %s)", parent, wal.FormatLSN(fork))
			}
		}
	}
	p.Notes = append(p.Notes, note)
	if inv == nil {
		return
	}
	for _, d := range inv.Diverging(p.Timeline, stop(p.Backup)) {
		how := fmt.Sprintf("--target-timeline %d follows it", d.Timeline)
		if inv.Followable(p.Backup.Timeline, stop(p.Backup), d.Timeline) != nil {
			how = "it does not descend from this backup"
		}
		p.Warnings = append(p.Warnings, fmt.Sprintf("timeline %d also has WAL after %s (up to %s), which this restore does not replay; %s",
			d.Timeline, wal.FormatLSN(d.At), d.Last, how))
	}
}

func formatTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000000Z07:00") }

// Probe names a WAL file to try the restore_command with (CommandCheck): the
// history file of the timeline followed or the first segment recovery reads, when
// archived; else a history file no timeline has yet, which a working command
// reports as not archived.
func (p *Plan) Probe() (name string, archived bool) {
	inv := p.Catalog.WAL
	if inv != nil {
		if t := inv.Timelines[p.Timeline]; t != nil && t.HasHistory {
			return wal.HistoryName(p.Timeline), true
		}
		if p.Reach.FirstSegment != "" {
			return p.Reach.FirstSegment, true
		}
	}
	next := p.Timeline + 1
	if inv != nil {
		if ids := inv.IDs(); len(ids) > 0 {
			next = max(next, ids[len(ids)-1]+1)
		}
	}
	return wal.HistoryName(next), false
}

// Settings are the recovery settings the restored cluster gets: the target, the
// timeline by number, and, unless preserveArchiving, archive_mode = off, so that a
// restored copy never archives its new timeline into the source's repository.
func (p *Plan) Settings(restoreCommand string, t Target, preserveArchiving bool) []Setting {
	s := t.RecoverySettings(restoreCommand, p.Timeline)
	if !preserveArchiving {
		s = append(s, Setting{"archive_mode", "off"})
	}
	return s
}

// StandbySettings are the settings of a restored streaming standby: it replays
// the archive through restore_command, streams from the primary, and falls back
// to the archive whenever streaming breaks (PostgreSQL's standby loop), along
// the newest timeline so that it follows the primary's promotions.
func StandbySettings(restoreCommand, primaryConnInfo, slot string) []Setting {
	s := []Setting{{"restore_command", restoreCommand}, {"primary_conninfo", primaryConnInfo}}
	if slot != "" {
		s = append(s, Setting{"primary_slot_name", slot})
	}
	return append(s, Setting{"recovery_target_timeline", "latest"})
}

// windowText describes what can be reached, for refusals.
func (p *Plan) windowText(ctx context.Context) string {
	ws, err := p.Catalog.Windows(ctx)
	if err != nil || len(ws) == 0 {
		return "no recoverable window is known"
	}
	var parts []string
	for _, w := range ws {
		parts = append(parts, fmt.Sprintf("%s (%s) to %s (%s) along timeline %d",
			formatTime(w.FromTime), wal.FormatLSN(w.FromLSN), formatTime(w.ToTime()), wal.FormatLSN(w.LastRecord), w.Timeline))
	}
	return "the recoverable window is " + strings.Join(parts, ", and ")
}
