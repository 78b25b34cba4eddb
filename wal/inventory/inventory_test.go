package inventory_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/pgward/pgward/compress"
	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/local"
	"github.com/pgward/pgward/wal"
	"github.com/pgward/pgward/wal/inventory"
	"github.com/pgward/pgward/wal/waltest"
)

const segSize = 1 << 20

var base = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func newRepo(t *testing.T) *repo.Repo {
	t.Helper()
	st, err := local.Create(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(context.Background(), st, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var zstd, _ = compress.Parse("zstd:1")

// segment archives segment segNo of timeline tli with one commit at base+segNo
// seconds (none when commit is false), and its summary when summary is true.
func segment(t *testing.T, r *repo.Repo, tli uint32, segNo uint64, commit, summary bool) {
	t.Helper()
	s := waltest.NewSegment(tli, segNo, segSize, 15, 7)
	s.Filler(3000)
	if commit {
		s.Commit(base.Add(time.Duration(segNo) * time.Second))
	}
	s.Filler(100)
	name := wal.SegmentName(tli, segNo, segSize)
	ctx := context.Background()
	if _, err := r.PutWAL(ctx, "main", name, s.Bytes(), zstd); err != nil {
		t.Fatal(err)
	}
	if summary {
		sum, err := inventory.Summarize(s.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if err := r.PutWALSummary(ctx, "main", name, sum); err != nil {
			t.Fatal(err)
		}
	}
}

func history(t *testing.T, r *repo.Repo, tli uint32, lines string) {
	t.Helper()
	if _, err := r.PutWAL(context.Background(), "main", wal.HistoryName(tli), []byte(lines), zstd); err != nil {
		t.Fatal(err)
	}
}

func load(t *testing.T, repos ...*repo.Repo) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.Load(context.Background(), repos, "main", segSize)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func lsn(seg uint64, off uint64) uint64 { return seg*segSize + off }

// A gap on the followed timeline ends the reach at its start and is reported with
// the segment where WAL resumes; the last transaction is read from the summaries
// (stored or computed) of the segments before it.
func TestReachGap(t *testing.T) {
	r := newRepo(t)
	for s := uint64(3); s <= 12; s++ {
		if s == 7 || s == 8 {
			continue
		}
		segment(t, r, 1, s, s != 6, s%2 == 0)
	}
	inv := load(t, r)
	gaps := inv.Gaps(inv.Timelines[1])
	if len(gaps) != 1 || gaps[0].From != 7 || gaps[0].To != 8 {
		t.Fatalf("gaps %+v, want segments 7-8", gaps)
	}
	reach, err := inv.Reach(1, lsn(3, 100), 1)
	if err != nil {
		t.Fatal(err)
	}
	if reach.End != lsn(7, 0) || reach.Gap == nil || reach.Gap.From != 7 || reach.Gap.To != 8 || reach.ResumeSegment != wal.SegmentName(1, 9, segSize) {
		t.Fatalf("reach %+v (gap %+v)", reach, reach.Gap)
	}
	tail, err := inv.Tail(context.Background(), reach)
	if err != nil {
		t.Fatal(err)
	}
	// Segment 6 has no commit: the last one is segment 5's.
	if !tail.HasXact || !tail.LastXactTime.Equal(base.Add(5*time.Second)) {
		t.Errorf("tail %+v, want the commit of segment 5", tail)
	}

	// A backup after the gap reaches the end, and is not affected by it.
	after, err := inv.Reach(1, lsn(9, 10), 1)
	if err != nil || after.Gap != nil || after.End != lsn(13, 0) {
		t.Errorf("reach from after the gap: %+v, %v", after, err)
	}
}

// Timelines: one that forked before the backup is not followable; one that forked
// after it is, and 'latest' means it; the parent's later WAL is reported as
// diverging.
func TestTimelines(t *testing.T) {
	r := newRepo(t)
	for s := uint64(1); s <= 10; s++ {
		segment(t, r, 1, s, true, true)
	}
	// Timeline 2 forked at segment 4 (before a backup at 6), timeline 3 at
	// segment 8 (after it).
	history(t, r, 2, fmt.Sprintf("1\t%s\tno recovery target specified\n", wal.FormatLSN(lsn(4, 512))))
	history(t, r, 3, fmt.Sprintf("1\t%s\tbefore 2000-01-01 00:00:00+00\n", wal.FormatLSN(lsn(8, 0))))
	for s := uint64(4); s <= 5; s++ {
		segment(t, r, 2, s, true, false)
	}
	for s := uint64(8); s <= 9; s++ {
		segment(t, r, 3, s, true, false)
	}
	inv := load(t, r)
	stop := lsn(6, 200)
	if err := inv.Followable(1, stop, 2); !errors.Is(err, inventory.ErrNotFollowable) {
		t.Errorf("timeline 2 forked before the backup: %v", err)
	}
	if got := inv.Latest(1, stop); got != 3 {
		t.Errorf("latest timeline from the backup: %d, want 3", got)
	}
	if got := inv.Latest(1, lsn(3, 0)); got != 3 {
		t.Errorf("latest timeline from an older backup: %d, want 3", got)
	}
	reach, err := inv.Reach(1, stop, 3)
	if err != nil {
		t.Fatal(err)
	}
	if reach.End != lsn(10, 0) || reach.Gap != nil || reach.EndSegment != wal.SegmentName(3, 9, segSize) {
		t.Errorf("reach along 3: %+v", reach)
	}
	div := inv.Diverging(3, stop)
	if len(div) != 1 || div[0].Timeline != 1 || div[0].Last != wal.SegmentName(1, 10, segSize) {
		t.Errorf("diverging from 3: %+v, want timeline 1 up to segment 10", div)
	}
	// Along timeline 1 itself: timeline 3 branches off after the backup.
	div = inv.Diverging(1, stop)
	if len(div) != 1 || div[0].Timeline != 3 {
		t.Errorf("diverging from 1: %+v, want timeline 3", div)
	}
}

// The union of two repositories is what recovery sees: a segment missing in one
// but present in the other is no gap.
func TestUnionOfRepositories(t *testing.T) {
	a, b := newRepo(t), newRepo(t)
	for s := uint64(1); s <= 6; s++ {
		if s != 3 {
			segment(t, a, 1, s, true, false)
		}
		if s != 5 {
			segment(t, b, 1, s, true, false)
		}
	}
	if len(load(t, a).Gaps(load(t, a).Timelines[1])) != 1 {
		t.Error("repository a alone should show a gap")
	}
	reach, err := load(t, a, b).Reach(1, lsn(1, 0), 1)
	if err != nil || reach.Gap != nil || reach.End != lsn(7, 0) {
		t.Errorf("union reach %+v, %v", reach, err)
	}
}

// A streamed partial of the segment after the last archived one extends the reach
// to its last complete record, and its commits count.
func TestPartialExtendsReach(t *testing.T) {
	r := newRepo(t)
	for s := uint64(1); s <= 4; s++ {
		segment(t, r, 1, s, true, true)
	}
	p := waltest.NewSegment(1, 5, segSize, 15, 7)
	p.Filler(200)
	_, end, _ := p.Commit(base.Add(time.Hour))
	if err := r.PutWALPartial(context.Background(), "main", wal.SegmentName(1, 5, segSize), end+500, p.Bytes(), zstd); err != nil {
		t.Fatal(err)
	}
	inv := load(t, r)
	reach, err := inv.Reach(1, lsn(2, 0), 1)
	if err != nil {
		t.Fatal(err)
	}
	if !reach.Partial || reach.End != end {
		t.Fatalf("reach %+v, want the partial's end %s", reach, wal.FormatLSN(end))
	}
	tail, err := inv.Tail(context.Background(), reach)
	if err != nil || !tail.LastXactTime.Equal(base.Add(time.Hour)) {
		t.Errorf("tail %+v, %v", tail, err)
	}
}

// A streamed partial that claims no WAL (its end is its segment's start: zeros, as a
// receiver stopped on a segment boundary uploaded them) is no WAL and no error.
func TestEmptyPartialIgnored(t *testing.T) {
	r := newRepo(t)
	for s := uint64(1); s <= 4; s++ {
		segment(t, r, 1, s, true, true)
	}
	if err := r.PutWALPartial(context.Background(), "main", wal.SegmentName(1, 5, segSize), lsn(5, 0), make([]byte, segSize), zstd); err != nil {
		t.Fatal(err)
	}
	inv := load(t, r)
	reach, err := inv.Reach(1, lsn(2, 0), 1)
	if err != nil {
		t.Fatal(err)
	}
	if reach.Partial || reach.End != lsn(5, 0) {
		t.Errorf("reach %+v, want the end of segment 4", reach)
	}
}
