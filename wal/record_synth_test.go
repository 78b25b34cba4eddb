package wal_test

import (
	"testing"
	"time"

	"github.com/pgward/pgward/wal"
	"github.com/pgward/pgward/wal/waltest"
)

// TestScanSegmentSynthetic covers what real servers rarely produce on demand:
// records crossing several pages, a record running off the end of the segment, a
// partial copy cut inside a record, and out-of-order commit times.
func TestScanSegmentSynthetic(t *testing.T) {
	const segSize = 1 << 20
	base := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	s := waltest.NewSegment(1, 5, segSize, 15, 42)
	var lastStart, lastEnd, commitEnd uint64
	for i := range 40 {
		s.Filler(100 + i*997) // up to ~39 kB: several pages
		// Commit times deliberately not in LSN order.
		at := base.Add(time.Duration((i*7)%40) * time.Second)
		st, end, ok := s.Commit(at)
		if !ok {
			t.Fatal("segment full")
		}
		lastStart, lastEnd, commitEnd = st, end, end
	}
	// A record that does not fit: it continues into the next segment.
	for {
		st, end, ok := s.Filler(50000)
		if !ok {
			break
		}
		lastStart, lastEnd = st, end
	}
	s.Overflow(60000)
	sum, err := wal.ScanSegment(s.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Xacts != 40 || sum.LastXactEnd != commitEnd {
		t.Errorf("xacts %d, last xact end %s; want 40, %s", sum.Xacts, wal.FormatLSN(sum.LastXactEnd), wal.FormatLSN(commitEnd))
	}
	if want := base.Add(39 * time.Second); !sum.LastXactTime.Equal(want) {
		t.Errorf("latest xact time %s, want %s", sum.LastXactTime, want)
	}
	if sum.LastRecord != lastStart || sum.End != lastEnd {
		t.Errorf("last record %s..%s, want %s..%s", wal.FormatLSN(sum.LastRecord), wal.FormatLSN(sum.End), wal.FormatLSN(lastStart), wal.FormatLSN(lastEnd))
	}

	// Cut inside the last commit: the scan ends at the record before it.
	b := append([]byte(nil), s.Bytes()...)
	cut := int(commitEnd%segSize) - 4
	clear(b[cut:])
	cs, err := wal.ScanSegment(b)
	if err != nil {
		t.Fatal(err)
	}
	if cs.Xacts != 39 || cs.End >= commitEnd || cs.End == 0 {
		t.Errorf("cut copy: %d xacts, end %s (commit ended at %s)", cs.Xacts, wal.FormatLSN(cs.End), wal.FormatLSN(commitEnd))
	}

	// Nothing but the header: no records, no error.
	empty, err := wal.ScanSegment(waltest.NewSegment(1, 5, segSize, 15, 42).Bytes())
	if err != nil || empty.End != 0 || empty.Xacts != 0 {
		t.Errorf("empty segment: %+v, %v", empty, err)
	}
}

// BenchmarkScanSegment reads a 16 MiB segment full of records of 100 B to 8 kB
// with a commit after every few, the work archive-push adds per segment to store
// its summary. MB/s is over the segment size.
func BenchmarkScanSegment(b *testing.B) {
	const segSize = 16 << 20
	s := waltest.NewSegment(1, 9, segSize, 15, 42)
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for i := 0; ; i++ {
		if _, _, ok := s.Filler(100 + (i*7919)%8000); !ok {
			break
		}
		if i%4 == 0 {
			if _, _, ok := s.Commit(at.Add(time.Duration(i) * time.Millisecond)); !ok {
				break
			}
		}
	}
	seg := s.Bytes()
	b.SetBytes(segSize)
	for b.Loop() {
		if sum, err := wal.ScanSegment(seg); err != nil || sum.Xacts == 0 {
			b.Fatal(sum, err)
		}
	}
}
