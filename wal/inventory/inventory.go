// Package inventory knows what a cluster's WAL archive holds, per timeline: the
// segments present and the runs missing between them, where each timeline forked from
// its parent, the newest streamed partial segment, and, read from the WAL records
// themselves, the last transaction end. It answers the question list, restore and check
// all ask: from a backup's consistency point, along which timeline, how far can
// recovery replay before it runs out of WAL, and does more WAL lie beyond a gap?
//
// The rules are PostgreSQL's (xlogrecovery.c, XLogFileReadAnyTLI and
// rescanLatestTimeLine): recovery reads segment s from the newest timeline of the
// followed timeline's history whose first segment is at or before s (so the segment
// holding a fork point is read from the child, which copied the parent's WAL up to the
// fork); it ends at the first segment no repository has, and every transaction-end
// record after the target is what a recovery_target_time stops at.
//
// Invariants:
//   - A segment counts as present when any repository lists it: archive-get falls back
//     across repositories, so the archive recovery sees is their union.
//   - A streamed partial counts only for a segment that is not archived whole (that is
//     when archive-get serves it), and only up to the end of its last complete record.
//   - A timeline is followable from a backup only when its history file (PostgreSQL
//     fetches it too) lists the backup's timeline with a fork point at or after the
//     backup's consistency point; otherwise recovery would fail at start ("requested
//     timeline is not a child of this server's history") or never reach consistency.
package inventory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/wal"
)

// Inventory is the WAL archive of one cluster, over one or more repositories.
type Inventory struct {
	Cluster string
	SegSize uint64
	// Timelines holds every timeline with a segment, a partial or a history file
	// in the archive, by ID.
	Timelines map[uint32]*Timeline

	repos     []*repo.Repo
	summaries map[string]repo.WALSummary
}

// Timeline is what the archive holds of one timeline.
type Timeline struct {
	ID uint32
	// History is the timeline's history file (ancestors, oldest first); nil for
	// timeline 1 and when the file is missing or unreadable.
	History    []wal.HistoryEntry
	HasHistory bool
	// HistoryErr is why an archived history file could not be used.
	HistoryErr error
	// Segments are the archived segment numbers, ascending.
	Segments []uint64
	// Partials maps a segment number that is not archived whole to the end of
	// the last complete record in its newest streamed partial.
	Partials map[uint64]uint64
}

// Parent returns the timeline this one forked from and the fork LSN (where the
// parent's WAL ends in this timeline's history).
func (t *Timeline) Parent() (parent uint32, fork uint64, ok bool) {
	if len(t.History) == 0 {
		return 0, 0, false
	}
	last := t.History[len(t.History)-1]
	return last.Timeline, last.SwitchLSN, true
}

// Gap is a run of missing segments on a timeline, with WAL archived after it.
type Gap struct {
	Timeline uint32
	// From and To are the first and last missing segment numbers.
	From, To uint64
}

// Names returns the first and last missing segment names.
func (g Gap) Names(segSize uint64) (first, last string) {
	return wal.SegmentName(g.Timeline, g.From, segSize), wal.SegmentName(g.Timeline, g.To, segSize)
}

// Count is the number of missing segments.
func (g Gap) Count() uint64 { return g.To - g.From + 1 }

// Load lists the cluster's WAL in every repository and reads the history files and
// the partials that count. segSize is the cluster's WAL segment size (its identity in
// the repository). A repository that cannot be listed is an error: an inventory that
// silently missed one would report gaps that are not there, or hide them.
func Load(ctx context.Context, repos []*repo.Repo, cluster string, segSize uint64) (*Inventory, error) {
	if !wal.ValidSegSize(segSize) {
		return nil, fmt.Errorf("WAL inventory of %s: invalid segment size %d in the cluster's identity", cluster, segSize)
	}
	inv := &Inventory{Cluster: cluster, SegSize: segSize, Timelines: map[uint32]*Timeline{}, repos: repos, summaries: map[string]repo.WALSummary{}}
	segs := map[uint32]map[uint64]bool{}
	histories := map[uint32]bool{}
	for _, r := range repos {
		err := r.ListWAL(ctx, cluster, func(name string, _ int64) error {
			n, err := wal.ParseName(name)
			if err != nil {
				return nil // not a WAL file name: a crashed writer's temp file
			}
			switch n.Kind {
			case wal.Segment:
				if !n.InRange(segSize) {
					return nil
				}
				if segs[n.Timeline] == nil {
					segs[n.Timeline] = map[uint64]bool{}
				}
				segs[n.Timeline][n.SegNo(segSize)] = true
				inv.timeline(n.Timeline)
			case wal.History:
				histories[n.Timeline] = true
				inv.timeline(n.Timeline)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("WAL inventory of %s: %w", cluster, err)
		}
	}
	for tli, set := range segs {
		t := inv.Timelines[tli]
		for s := range set {
			t.Segments = append(t.Segments, s)
		}
		slices.Sort(t.Segments)
	}
	for tli := range histories {
		inv.loadHistory(ctx, inv.Timelines[tli])
	}
	if err := inv.loadPartials(ctx, segs); err != nil {
		return nil, err
	}
	return inv, nil
}

func (inv *Inventory) timeline(id uint32) *Timeline {
	t := inv.Timelines[id]
	if t == nil {
		t = &Timeline{ID: id, Partials: map[uint64]uint64{}}
		inv.Timelines[id] = t
	}
	return t
}

// loadHistory reads a timeline's history file from the first repository with a
// good copy.
func (inv *Inventory) loadHistory(ctx context.Context, t *Timeline) {
	name := wal.HistoryName(t.ID)
	_, err := inv.firstGood(ctx, name, func(data []byte) error {
		entries, err := wal.ParseHistory(data)
		if err == nil {
			err = wal.CheckHistoryOwner(t.ID, entries)
		}
		if err == nil {
			t.History, t.HasHistory = entries, true
		}
		return err
	})
	if !t.HasHistory {
		t.HistoryErr = err
	}
}

// firstGood reads an archived WAL file from the first repository whose copy use
// accepts; the errors of the others are joined when none does.
func (inv *Inventory) firstGood(ctx context.Context, name string, use func([]byte) error) (found bool, err error) {
	return repo.Set(inv.repos).First(func(r *repo.Repo) error {
		data, err := r.GetWAL(ctx, inv.Cluster, name)
		if err != nil {
			return err
		}
		if err := use(data); err != nil {
			return fmt.Errorf("%s in %s: %w", name, r, err)
		}
		return nil
	})
}

// loadPartials finds, for every segment that is not archived whole, the newest
// streamed partial in any repository, and reads it to learn where its last
// complete record ends.
func (inv *Inventory) loadPartials(ctx context.Context, segs map[uint32]map[uint64]bool) error {
	type cand struct {
		r   *repo.Repo
		end uint64
	}
	best := map[string]cand{}
	for _, r := range inv.repos {
		err := r.ListWALPartials(ctx, inv.Cluster, func(segment string, end uint64) error {
			n, err := wal.ParseName(segment)
			if err != nil || n.Kind != wal.Segment || !n.InRange(inv.SegSize) || segs[n.Timeline][n.SegNo(inv.SegSize)] {
				return nil
			}
			if end <= n.StartLSN(inv.SegSize) {
				return nil // claims no WAL (a receiver stopped on the segment's boundary uploaded its zeros)
			}
			if c, ok := best[segment]; !ok || end > c.end {
				best[segment] = cand{r, end}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("WAL inventory of %s: %w", inv.Cluster, err)
		}
	}
	for segment, c := range best {
		n, _ := wal.ParseName(segment)
		data, _, err := c.r.GetWALPartial(ctx, inv.Cluster, segment)
		if err != nil {
			return fmt.Errorf("WAL inventory of %s: reading the partial segment %s: %w", inv.Cluster, segment, err)
		}
		sum, err := Summarize(data)
		if err != nil {
			return fmt.Errorf("WAL inventory of %s: partial segment %s in %s: %w", inv.Cluster, segment, c.r, err)
		}
		if sum.End == 0 {
			continue // nothing complete in it yet
		}
		t := inv.timeline(n.Timeline)
		t.Partials[n.SegNo(inv.SegSize)] = sum.End
		inv.summaries[partialKey(segment)] = sum
	}
	return nil
}

func partialKey(segment string) string { return segment + ".streamed" }

// IDs returns the timeline IDs, ascending.
func (inv *Inventory) IDs() []uint32 {
	ids := make([]uint32, 0, len(inv.Timelines))
	for id := range inv.Timelines {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Gaps returns the runs of segments missing on a timeline between its first and its
// last archived segment (a streamed partial counts as present).
func (inv *Inventory) Gaps(t *Timeline) []Gap {
	present := t.present()
	var gaps []Gap
	for i := 1; i < len(present); i++ {
		if present[i] > present[i-1]+1 {
			gaps = append(gaps, Gap{Timeline: t.ID, From: present[i-1] + 1, To: present[i] - 1})
		}
	}
	return gaps
}

// present is the sorted set of segment numbers with whole or partial WAL.
func (t *Timeline) present() []uint64 {
	out := slices.Clone(t.Segments)
	for s := range t.Partials {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func (t *Timeline) has(seg uint64) (whole bool, partialEnd uint64) {
	if _, ok := slices.BinarySearch(t.Segments, seg); ok {
		return true, 0
	}
	return false, t.Partials[seg]
}

// step is one timeline of a followed history: recovery reads this timeline's
// segments from beginSeg on, until the next step's beginSeg.
type step struct {
	tli      uint32
	begin    uint64 // LSN where the timeline starts (its fork from the parent); 0 for the first
	beginSeg uint64
	end      uint64 // fork LSN of the next timeline; 0 for the last (open ended)
}

// path is the history of timeline target as recovery follows it, oldest first.
func (inv *Inventory) path(target uint32) ([]step, error) {
	t := inv.Timelines[target]
	var hist []wal.HistoryEntry
	if target != 1 && t != nil && t.HasHistory {
		hist = t.History
	} else if target != 1 && t != nil && t.HistoryErr != nil {
		return nil, fmt.Errorf("the history file of timeline %d cannot be used: %w", target, t.HistoryErr)
	}
	var steps []step
	var begin uint64
	for _, e := range hist {
		steps = append(steps, step{tli: e.Timeline, begin: begin, beginSeg: begin / inv.SegSize, end: e.SwitchLSN})
		begin = e.SwitchLSN
	}
	return append(steps, step{tli: target, begin: begin, beginSeg: begin / inv.SegSize}), nil
}

// onSegment is the timeline recovery reads segment s from: the newest of the path
// that begins at or before it.
func onSegment(steps []step, s uint64) uint32 {
	tl := steps[0].tli
	for _, st := range steps {
		if st.beginSeg <= s {
			tl = st.tli
		}
	}
	return tl
}

// ErrNotFollowable is wrapped when a timeline does not descend from a backup.
var ErrNotFollowable = errors.New("timeline does not descend from the backup")

// Followable reports whether recovery from a backup (consistent at stop on
// timeline tli) can follow timeline target, and if not, why.
func (inv *Inventory) Followable(tli uint32, stop uint64, target uint32) error {
	if target == tli {
		return nil
	}
	if target < tli {
		return fmt.Errorf("%w: timeline %d is older than the backup's timeline %d", ErrNotFollowable, target, tli)
	}
	t := inv.Timelines[target]
	if t == nil || (!t.HasHistory && t.HistoryErr == nil) {
		return fmt.Errorf("%w: timeline %d has no history file in the archive, so recovery cannot follow it", ErrNotFollowable, target)
	}
	if t.HistoryErr != nil {
		return fmt.Errorf("%w: the history file of timeline %d cannot be used: %v", ErrNotFollowable, target, t.HistoryErr)
	}
	for _, e := range t.History {
		if e.Timeline != tli {
			continue
		}
		if e.SwitchLSN < stop {
			return fmt.Errorf("%w: timeline %d forked from timeline %d at %s, before the backup was consistent at %s",
				ErrNotFollowable, target, tli, wal.FormatLSN(e.SwitchLSN), wal.FormatLSN(stop))
		}
		return nil
	}
	return fmt.Errorf("%w: timeline %d does not descend from the backup's timeline %d", ErrNotFollowable, target, tli)
}

// Latest is the timeline recovery_target_timeline 'latest' means for a backup:
// the newest timeline that descends from it (PostgreSQL picks the newest history
// file; pgward writes the number, so a timeline that forked off before the backup is
// never picked). The backup's own timeline when none does.
func (inv *Inventory) Latest(tli uint32, stop uint64) uint32 {
	best := tli
	for id := range inv.Timelines {
		if id > best && inv.Followable(tli, stop, id) == nil {
			best = id
		}
	}
	return best
}

// Reach is how far recovery gets from a backup along one timeline.
type Reach struct {
	// Timeline is the timeline followed.
	Timeline uint32
	// From is the backup's consistency point (its stop LSN) and End where the
	// contiguous WAL ends: a segment boundary, the end of the last complete
	// record of a streamed partial, or From itself when nothing is archived past
	// the backup.
	From, End uint64
	// FirstSegment and EndSegment are the first and the last segment recovery
	// reads from the archive ("" when it reads none), and Partial tells that the
	// last one is a streamed partial.
	FirstSegment, EndSegment string
	Partial                  bool
	// Gap is the first run of missing segments after which the path has more
	// WAL; nil when the archive simply ends at End.
	Gap *Gap
	// ResumeSegment is the first segment archived after the gap.
	ResumeSegment string
}

// Reach walks the archive from a backup (consistent at stop on timeline tli) along
// timeline target, which must be followable (Followable).
func (inv *Inventory) Reach(tli uint32, stop uint64, target uint32) (Reach, error) {
	if err := inv.Followable(tli, stop, target); err != nil {
		return Reach{}, err
	}
	steps, err := inv.path(target)
	if err != nil {
		return Reach{}, err
	}
	r := Reach{Timeline: target, From: stop, End: stop}
	onSeg := func(s uint64) uint32 { return onSegment(steps, s) }
	last := inv.lastOnPath(steps)
	// The backup holds its WAL up to stop; the archive must have the segment
	// holding stop (the backup's copy of it may end there) and everything after.
	for s := stop / inv.SegSize; ; s++ {
		tl := onSeg(s)
		t := inv.Timelines[tl]
		whole, partialEnd := false, uint64(0)
		if t != nil {
			whole, partialEnd = t.has(s)
		}
		name := wal.SegmentName(tl, s, inv.SegSize)
		if whole {
			r.End, r.EndSegment = (s+1)*inv.SegSize, name
			if r.FirstSegment == "" {
				r.FirstSegment = name
			}
			continue
		}
		if partialEnd > r.End {
			r.End, r.EndSegment, r.Partial = partialEnd, name, true
			if r.FirstSegment == "" {
				r.FirstSegment = name
			}
		}
		if s < last {
			r.Gap = inv.gapFrom(s, last, onSeg)
			r.ResumeSegment = wal.SegmentName(onSeg(r.Gap.To+1), r.Gap.To+1, inv.SegSize)
		}
		return r, nil
	}
}

// lastOnPath is the highest segment number archived (whole or partial) on any
// timeline of the path, in the part of it recovery would read.
func (inv *Inventory) lastOnPath(steps []step) uint64 {
	var last uint64
	for i, st := range steps {
		t := inv.Timelines[st.tli]
		if t == nil {
			continue
		}
		for _, s := range t.present() {
			if s < st.beginSeg {
				continue
			}
			if i+1 < len(steps) && s >= steps[i+1].beginSeg {
				break
			}
			last = max(last, s)
		}
	}
	return last
}

// gapFrom measures the run of missing segments starting at from, before last.
func (inv *Inventory) gapFrom(from, last uint64, onSeg func(uint64) uint32) *Gap {
	g := &Gap{Timeline: onSeg(from), From: from, To: from}
	for s := from + 1; s < last; s++ {
		t := inv.Timelines[onSeg(s)]
		if t != nil {
			if whole, pe := t.has(s); whole || pe > 0 {
				break
			}
		}
		g.To = s
	}
	return g
}

// Tail is what the end of a Reach holds, read from the WAL records.
type Tail struct {
	// LastRecord is the start of the last complete record: the last LSN a
	// recovery_target_lsn can name (recovery stops at a record starting at or
	// after the target). From when recovery reads no archived record.
	LastRecord uint64
	// LastXactTime is the latest transaction end (commit or abort) after the
	// backup's consistency point, LastXactEnd the end of the last such record;
	// HasXact is false when no transaction ended there, and then no
	// recovery_target_time after the backup can be reached.
	LastXactTime time.Time
	LastXactEnd  uint64
	HasXact      bool
}

// Tail reads the summaries of r's segments backwards from its end until it has
// found the last record and the last transaction end after the backup's
// consistency point.
func (inv *Inventory) Tail(ctx context.Context, r Reach) (Tail, error) {
	tail := Tail{LastRecord: r.From}
	if r.EndSegment == "" {
		return tail, nil
	}
	n, err := wal.ParseName(r.EndSegment)
	if err != nil {
		return tail, err
	}
	steps, err := inv.path(r.Timeline)
	if err != nil {
		return tail, err
	}
	first := r.From / inv.SegSize
	haveRecord := false
	for s := n.SegNo(inv.SegSize); ; s-- {
		name := wal.SegmentName(onSegment(steps, s), s, inv.SegSize)
		sum, err := inv.summary(ctx, name, r.Partial && name == r.EndSegment)
		if err != nil {
			return tail, err
		}
		if !haveRecord && sum.End != 0 {
			tail.LastRecord, haveRecord = max(sum.LastRecord, r.From), true
		}
		if sum.Xacts > 0 && sum.LastXactEnd > r.From {
			tail.LastXactTime, tail.LastXactEnd, tail.HasXact = sum.LastXactTime, sum.LastXactEnd, true
			return tail, nil
		}
		if s == first || s == 0 {
			return tail, nil
		}
	}
}

// summary returns a segment's summary: stored beside it, or computed from it.
func (inv *Inventory) summary(ctx context.Context, name string, partial bool) (repo.WALSummary, error) {
	key := name
	if partial {
		key = partialKey(name)
	}
	if s, ok := inv.summaries[key]; ok {
		return s, nil
	}
	var errs []error
	for _, r := range inv.repos {
		s, err := r.GetWALSummary(ctx, inv.Cluster, name)
		if err == nil {
			inv.summaries[key] = s
			return s, nil
		}
		if !errors.Is(err, repo.ErrNotFound) {
			errs = append(errs, err)
		}
	}
	var s repo.WALSummary
	found, err := inv.firstGood(ctx, name, func(data []byte) (err error) {
		s, err = Summarize(data)
		return err
	})
	if found && err == nil {
		inv.summaries[key] = s
		return s, nil
	}
	if err != nil {
		errs = append(errs, err)
	}
	if !found {
		errs = append(errs, fmt.Errorf("%s: %w", name, repo.ErrNotFound))
	}
	return repo.WALSummary{}, fmt.Errorf("reading the records of WAL segment %s: %w", name, errors.Join(errs...))
}

// Divergence is WAL that recovery along a timeline does not replay: a timeline of
// its path that goes on after the path leaves it, or a timeline branching off the
// path.
type Divergence struct {
	Timeline uint32
	// At is where it leaves the followed path, and Last its newest segment.
	At   uint64
	Last string
}

// Diverging lists the WAL after from that recovery along target leaves behind.
func (inv *Inventory) Diverging(target uint32, from uint64) []Divergence {
	steps, err := inv.path(target)
	if err != nil {
		return nil
	}
	onPath := map[uint32]bool{}
	for _, st := range steps {
		onPath[st.tli] = true
	}
	var out []Divergence
	lastOf := func(t *Timeline) (uint64, bool) {
		p := t.present()
		if len(p) == 0 {
			return 0, false
		}
		return p[len(p)-1], true
	}
	// A parent that went on after its child forked (the old primary kept
	// writing, or a copy promoted while the source lived on).
	for i, st := range steps[:len(steps)-1] {
		t := inv.Timelines[st.tli]
		if t == nil || st.end < from {
			continue
		}
		// The parent's own copy of the segment holding the fork, or any later
		// one, was written after the child began; the fork segment recovery
		// reads is the child's.
		if last, ok := lastOf(t); ok && last >= steps[i+1].beginSeg {
			out = append(out, Divergence{Timeline: st.tli, At: st.end, Last: wal.SegmentName(st.tli, last, inv.SegSize)})
		}
	}
	// Timelines branching off the path after from.
	for _, id := range inv.IDs() {
		t := inv.Timelines[id]
		if onPath[id] {
			continue
		}
		parent, fork, ok := t.Parent()
		last, has := lastOf(t)
		if !ok || !has || !onPath[parent] || fork < from {
			continue
		}
		out = append(out, Divergence{Timeline: id, At: fork, Last: wal.SegmentName(id, last, inv.SegSize)})
	}
	return out
}

// Summarize reads a segment's records into the summary the repository keeps beside
// it (archive-push and the receiver store it; readers compute a missing one).
func Summarize(seg []byte) (repo.WALSummary, error) {
	s, err := wal.ScanSegment(seg)
	if err != nil {
		return repo.WALSummary{}, err
	}
	return repo.WALSummary{End: s.End, LastRecord: s.LastRecord, Xacts: s.Xacts, LastXactTime: s.LastXactTime, LastXactEnd: s.LastXactEnd}, nil
}
