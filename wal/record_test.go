package wal_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/pgward/pgward/test/pgtest"
	"github.com/pgward/pgward/wal"
)

// TestScanSegmentRealWAL reads records written by real servers: rows large enough
// to cross pages, full-page images (compressed, with holes), commits and a final
// abort whose time is known to the microsecond range, then a segment switch whose
// end the scan must reach exactly.
func TestScanSegmentRealWAL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL servers")
	}
	for _, major := range testMajors() {
		t.Run(fmt.Sprintf("pg%d", major), func(t *testing.T) {
			t.Parallel()
			testScanSegment(t, major)
		})
	}
}

func testScanSegment(t *testing.T, major int) {
	c := pgtest.Start(t, major, pgtest.Options{Settings: map[string]string{"wal_compression": "on", "wal_keep_size": "256MB"}})
	c.Exec(t, "postgres", "CREATE TABLE t (id int, pad text)")
	c.Exec(t, "postgres", "ALTER TABLE t ALTER COLUMN pad SET STORAGE EXTERNAL")
	c.Exec(t, "postgres", "INSERT INTO t SELECT g, repeat('y', 100) FROM generate_series(1, 2000) g")
	var first string
	c.QueryRow(t, "postgres", "SELECT pg_walfile_name(pg_switch_wal())", &first)
	c.Exec(t, "postgres", "CHECKPOINT") // the next changes log full-page images
	var seg string
	c.QueryRow(t, "postgres", "SELECT pg_walfile_name(pg_current_wal_insert_lsn())", &seg)
	c.Exec(t, "postgres", "UPDATE t SET id = id + 1 WHERE id % 7 = 0")
	for i := range 20 {
		// 3 kB rows cross 8 kB pages; 20 kB ones span several.
		c.Exec(t, "postgres", fmt.Sprintf("INSERT INTO t VALUES (%d, repeat(md5('%d'), %d))", i, i, 100+i*30))
	}
	var before, after time.Time
	c.QueryRow(t, "postgres", "SELECT clock_timestamp()", &before)
	c.Exec(t, "postgres", "DO $$ BEGIN INSERT INTO t VALUES (-1, 'x'); RAISE EXCEPTION 'abort'; EXCEPTION WHEN OTHERS THEN NULL; END $$")
	c.Exec(t, "postgres", "BEGIN; INSERT INTO t VALUES (-2, 'rolled back'); SELECT txid_current(); ROLLBACK")
	c.QueryRow(t, "postgres", "SELECT clock_timestamp()", &after)
	var switchEnd, lastSeg string
	c.QueryRow(t, "postgres", "SELECT pg_switch_wal()::text", &switchEnd)
	c.QueryRow(t, "postgres", fmt.Sprintf("SELECT pg_walfile_name('%s'::pg_lsn)", switchEnd), &lastSeg)
	if lastSeg != seg {
		t.Skipf("the writes crossed a segment (%s to %s); rerun", seg, lastSeg)
	}
	b := readWAL(t, c.DataDir, seg)
	sum, err := wal.ScanSegment(b)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := wal.ParseLSN(switchEnd)
	if sum.End != want {
		t.Errorf("scan ended at %s, want the switch record's end %s", wal.FormatLSN(sum.End), switchEnd)
	}
	if sum.Xacts < 22 {
		t.Errorf("found %d transaction ends, want at least 22", sum.Xacts)
	}
	if sum.LastXactTime.Before(before) || sum.LastXactTime.After(after) {
		t.Errorf("last transaction end at %s, want between %s and %s", sum.LastXactTime, before, after)
	}
	if sum.LastXactEnd == 0 || sum.LastXactEnd >= sum.End {
		t.Errorf("last transaction end LSN %s, want before the switch at %s", wal.FormatLSN(sum.LastXactEnd), switchEnd)
	}

	// A flipped byte ends valid WAL at the record holding it, never later.
	flipAt := int(sum.LastXactEnd%uint64(len(b))) - 3
	bad := append([]byte(nil), b...)
	bad[flipAt] ^= 0x55
	bs, err := wal.ScanSegment(bad)
	if err != nil {
		t.Fatal(err)
	}
	if bs.End >= sum.LastXactEnd || bs.LastXactEnd >= sum.LastXactEnd {
		t.Errorf("after a flipped byte at offset %d the scan reached %s (last xact end %s)", flipAt, wal.FormatLSN(bs.End), wal.FormatLSN(bs.LastXactEnd))
	}

	// A copy cut short and zero-padded (a streamed partial segment) ends where
	// the copy does.
	cut := int(sum.LastXactEnd % uint64(len(b)))
	part := make([]byte, len(b))
	copy(part, b[:cut])
	ps, err := wal.ScanSegment(part)
	if err != nil {
		t.Fatal(err)
	}
	if ps.End != sum.LastXactEnd || !ps.LastXactTime.Equal(sum.LastXactTime) {
		t.Errorf("partial copy up to %s: scan ended at %s, last xact %s at %s", wal.FormatLSN(sum.LastXactEnd), wal.FormatLSN(ps.End), wal.FormatLSN(ps.LastXactEnd), ps.LastXactTime)
	}

	// The previous segment: the records at its end are complete, so its end is
	// its switch record's.
	fb := readWAL(t, c.DataDir, first)
	fs, err := wal.ScanSegment(fb)
	if err != nil {
		t.Fatal(err)
	}
	if fs.Xacts == 0 || fs.End == 0 {
		t.Errorf("first segment %s: %+v", first, fs)
	}
}
