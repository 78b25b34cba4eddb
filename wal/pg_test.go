package wal_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgward/pgward/test/pgtest"
	"github.com/pgward/pgward/wal"
)

// testMajors is 15 plus whatever PGWARD_PG_VERSIONS asks for.
func testMajors() []int {
	majors := append([]int{15}, pgtest.Versions()...)
	slices.Sort(majors)
	return slices.Compact(majors)
}

// TestRealWAL checks the package against WAL written by real servers: a completed
// segment, a backup history file, a timeline switch (history file, the new timeline's
// first segment carrying the parent's timeline, the old timeline's .partial).
func TestRealWAL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL servers")
	}
	for _, major := range testMajors() {
		t.Run(fmt.Sprintf("pg%d", major), func(t *testing.T) {
			testRealWAL(t, major)
		})
	}
}

func testRealWAL(t *testing.T, major int) {
	// Archiving on: without it PostgreSQL deletes a backup history file as soon as it
	// writes it (CleanupBackupHistory), and does not keep the old timeline's last
	// segment as .partial at promotion.
	archiving := map[string]string{"archive_mode": "on", "archive_command": "true"}
	c := pgtest.Start(t, major, pgtest.Options{Settings: archiving})
	var sysID int64
	c.QueryRow(t, "postgres", "SELECT system_identifier FROM pg_control_system()", &sysID)
	var segSize uint64
	c.QueryRow(t, "postgres", "SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'", &segSize)
	wantMagic, ok := wal.PageMagic(major)
	if !ok {
		t.Fatalf("PageMagic(%d) unknown", major)
	}

	// A completed segment.
	c.Exec(t, "postgres", "CREATE TABLE t AS SELECT g, md5(g::text) FROM generate_series(1, 20000) g")
	var segName string
	c.QueryRow(t, "postgres", "SELECT pg_walfile_name(pg_switch_wal())", &segName)
	name, err := wal.ParseName(segName)
	if err != nil {
		t.Fatal(err)
	}
	b := readWAL(t, c.DataDir, segName)
	h, err := wal.ValidateSegment(name, b, int64(len(b)), uint64(sysID), major)
	if err != nil {
		t.Fatalf("ValidateSegment(%s): %v", segName, err)
	}
	t.Logf("PostgreSQL %d: %s magic 0x%04X, system id %d, %d-byte segments, %d-byte pages, timeline %d",
		major, segName, h.Magic, h.SystemID, h.SegSize, h.BlockSize, h.Timeline)
	if h.Magic != wantMagic || h.Major() != major {
		t.Errorf("magic 0x%04X, want 0x%04X", h.Magic, wantMagic)
	}
	if h.SystemID != uint64(sysID) || uint64(h.SegSize) != segSize || h.BlockSize != 8192 || h.Timeline != 1 ||
		h.PageAddr != name.StartLSN(segSize) || h.BigEndian {
		t.Errorf("header %+v; want system id %d, segment size %d, timeline 1, page address %s",
			h, sysID, segSize, wal.FormatLSN(name.StartLSN(segSize)))
	}
	if h2, err := wal.ParseSegmentHeader(b[:8192]); err != nil || h2 != h {
		t.Errorf("ParseSegmentHeader(first page) = %+v, %v", h2, err)
	}
	checkMutations(t, name, b, uint64(sysID), major)

	// A backup history file: its name encodes the backup's start LSN.
	startLSN, stopLSN := runBackup(t, c, major)
	backups := listWAL(t, c.DataDir, ".backup")
	if len(backups) != 1 {
		t.Fatalf("pg_wal has backup history files %v, want one", backups)
	}
	bn, err := wal.ParseName(backups[0])
	if err != nil {
		t.Fatal(err)
	}
	if bn.Kind != wal.BackupHistory || bn.StartLSN(segSize) != startLSN {
		t.Errorf("%s: kind %v, start %s; pg_backup_start said %s", backups[0], bn.Kind, wal.FormatLSN(bn.StartLSN(segSize)), wal.FormatLSN(startLSN))
	}
	if content := string(readWAL(t, c.DataDir, backups[0])); !strings.Contains(content, "START WAL LOCATION: "+wal.FormatLSN(startLSN)+" (file "+bn.Segment()+")") ||
		!strings.Contains(content, "STOP WAL LOCATION: "+wal.FormatLSN(stopLSN)) {
		t.Errorf("%s does not match pg_backup_start/stop (%s, %s):\n%s", backups[0], wal.FormatLSN(startLSN), wal.FormatLSN(stopLSN), content)
	}

	// A timeline switch: restart in archive recovery with nothing to restore, so the
	// server ends recovery at the end of pg_wal and promotes to timeline 2, mid-segment.
	c.Stop(t, "fast")
	if err := os.WriteFile(filepath.Join(c.DataDir, "recovery.signal"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	archiving["restore_command"] = "false"
	c2 := pgtest.StartDataDir(t, major, c.DataDir, archiving, true)
	hist, err := wal.ParseHistory(readWAL(t, c2.DataDir, wal.HistoryName(2)))
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 1 || hist[0].Timeline != 1 || hist[0].Reason != "no recovery target specified" {
		t.Fatalf("00000002.history = %+v", hist)
	}
	if err := wal.CheckHistoryOwner(2, hist); err != nil {
		t.Error(err)
	}
	switchLSN := hist[0].SwitchLSN
	if switchLSN%segSize == 0 {
		t.Fatalf("switch point %s is on a segment boundary; the test needs a switch mid-segment", wal.FormatLSN(switchLSN))
	}

	// The old timeline's last segment is archived as .partial, full size.
	partialName := wal.SegmentNameForLSN(1, switchLSN, segSize) + ".partial"
	pn, err := wal.ParseName(partialName)
	if err != nil {
		t.Fatal(err)
	}
	pb := readWAL(t, c2.DataDir, partialName)
	if ph, err := wal.ValidateSegment(pn, pb, int64(len(pb)), uint64(sysID), major); err != nil {
		t.Errorf("ValidateSegment(%s): %v", partialName, err)
	} else if ph.Timeline != 1 {
		t.Errorf("%s: header timeline %d, want 1", partialName, ph.Timeline)
	}

	// The new timeline's first segment starts as a copy of the old one: its first page
	// carries timeline 1 under a timeline-2 name, and must validate.
	c2.Exec(t, "postgres", "INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 1000) g")
	var switched string
	c2.QueryRow(t, "postgres", "SELECT pg_walfile_name(pg_switch_wal())", &switched)
	firstName := wal.SegmentNameForLSN(2, switchLSN, segSize)
	if switched < firstName {
		t.Fatalf("pg_switch_wal completed %s, before timeline 2's first segment %s", switched, firstName)
	}
	fn, err := wal.ParseName(firstName)
	if err != nil {
		t.Fatal(err)
	}
	fb := readWAL(t, c2.DataDir, firstName)
	fh, err := wal.ValidateSegment(fn, fb, int64(len(fb)), uint64(sysID), major)
	if err != nil {
		t.Fatalf("ValidateSegment(%s): %v", firstName, err)
	}
	if fh.Timeline != 1 {
		t.Errorf("%s: first page timeline %d; PostgreSQL copies the parent's first page, so want 1", firstName, fh.Timeline)
	}
	t.Logf("PostgreSQL %d: timeline 2 from %s; %s's first page has timeline %d", major, wal.FormatLSN(switchLSN), firstName, fh.Timeline)
	// The same bytes under the old timeline's name are fine too (timeline 1 ≤ 1), but
	// not under the next segment's.
	next, err := wal.NextSegment(firstName, segSize)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wal.ValidateSegment(mustParse(t, next), fb, int64(len(fb)), uint64(sysID), major); !errors.Is(err, wal.ErrWrongSegment) {
		t.Errorf("timeline 2's first segment renamed to %s: %v, want ErrWrongSegment", next, err)
	}
}

// TestRealSegmentSizes checks segments of non-default sizes (initdb --wal-segsize):
// the lowest-named segment initdb leaves in pg_wal holds its last checkpoint, and its
// long header must carry the size and the address its name implies. The higher names
// are segments PostgreSQL recycled ahead (renamed old files, not yet overwritten), the
// case ErrWrongSegment exists for: they must be refused.
func TestRealSegmentSizes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs initdb")
	}
	initdb := filepath.Join(pgtest.BinDir(t, 15), "initdb")
	for _, mib := range []uint64{1, 64} {
		t.Run(fmt.Sprintf("%dMiB", mib), func(t *testing.T) {
			segSize := mib << 20
			dataDir := filepath.Join(pgtest.TempDir(t), "data")
			out, err := pgtest.RunAsPostgres(t.Context(), initdb, "-D", dataDir, "-U", "postgres", "-A", "trust",
				"--no-sync", "-E", "UTF8", "--locale=C", fmt.Sprintf("--wal-segsize=%d", mib))
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			// pg_control starts with the system identifier (ControlFileData in
			// src/include/catalog/pg_control.h), in the server's byte order.
			control, err := os.ReadFile(filepath.Join(dataDir, "global", "pg_control"))
			if err != nil {
				t.Fatal(err)
			}
			sysID := binary.LittleEndian.Uint64(control)
			var segs []string
			for _, f := range listWAL(t, dataDir, "") {
				if n, err := wal.ParseName(f); err == nil && n.Kind == wal.Segment {
					segs = append(segs, f)
				}
			}
			if len(segs) == 0 {
				t.Fatal("initdb left no segment in pg_wal")
			}
			slices.Sort(segs)
			b := readWAL(t, dataDir, segs[0])
			name := mustParse(t, segs[0])
			h, err := wal.ValidateSegment(name, b, int64(len(b)), sysID, 15)
			if err != nil {
				t.Fatal(err)
			}
			if uint64(h.SegSize) != segSize || h.PageAddr != name.StartLSN(segSize) {
				t.Errorf("%s: header %+v; want %d MiB segments starting at %s", segs[0], h, mib, wal.FormatLSN(name.StartLSN(segSize)))
			}
			next, err := wal.NextSegment(segs[0], segSize)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := wal.ValidateSegment(mustParse(t, next), b, int64(len(b)), sysID, 15); !errors.Is(err, wal.ErrWrongSegment) {
				t.Errorf("renamed to %s: %v", next, err)
			}
			for _, s := range segs[1:] {
				rb := readWAL(t, dataDir, s)
				_, err := wal.ValidateSegment(mustParse(t, s), rb, int64(len(rb)), sysID, 15)
				if !errors.Is(err, wal.ErrWrongSegment) && !errors.Is(err, wal.ErrNotWAL) {
					t.Errorf("recycled segment %s: %v, want ErrWrongSegment or ErrNotWAL", s, err)
				}
				t.Logf("recycled %s: %v", s, err)
			}
		})
	}
}

// checkMutations validates damaged copies of a real segment.
func checkMutations(t *testing.T, name wal.Name, b []byte, sysID uint64, major int) {
	t.Helper()
	mutated := func(f func([]byte)) []byte {
		c := bytes.Clone(b[:8192])
		f(c)
		return c
	}
	otherMajor := 13
	if major == 13 {
		otherMajor = 17
	}
	otherMagic, _ := wal.PageMagic(otherMajor)
	next, err := wal.NextSegment(name.Raw, uint64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	random := make([]byte, len(b))
	r := rand.New(rand.NewPCG(uint64(major), 7))
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	tests := []struct {
		what  string
		name  wal.Name
		first []byte
		size  int64
		sysID uint64
		want  error
	}{
		{"truncated to one page", name, b[:8192], 8192, sysID, wal.ErrWrongSize},
		{"one byte short", name, b[:len(b)-1], int64(len(b) - 1), sysID, wal.ErrWrongSize},
		{"first 39 bytes", name, b[:39], 39, sysID, wal.ErrNotWAL},
		{"other major's magic", name, mutated(func(p []byte) { p[0], p[1] = byte(otherMagic), byte(otherMagic>>8) }), int64(len(b)), sysID, wal.ErrWrongVersion},
		{"garbage magic", name, mutated(func(p []byte) { p[0], p[1] = 0x34, 0x12 }), int64(len(b)), sysID, wal.ErrNotWAL},
		{"long-header flag cleared", name, mutated(func(p []byte) { p[2] &^= 0x02 }), int64(len(b)), sysID, wal.ErrNotWAL},
		{"other cluster", name, b, int64(len(b)), sysID + 1, wal.ErrWrongSystem},
		{"renamed to the next segment", mustParse(t, next), b, int64(len(b)), sysID, wal.ErrWrongSegment},
		{"header timeline after the name's", name, mutated(func(p []byte) { p[4] = 9 }), int64(len(b)), sysID, wal.ErrWrongTimeline},
		{"random bytes", name, random, int64(len(random)), sysID, wal.ErrNotWAL},
		{"zeros", name, make([]byte, len(b)), int64(len(b)), sysID, wal.ErrNotWAL},
	}
	for _, tt := range tests {
		_, err := wal.ValidateSegment(tt.name, tt.first, tt.size, tt.sysID, major)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.what, err, tt.want)
			continue
		}
		if !strings.HasPrefix(err.Error(), tt.name.Raw+": ") {
			t.Errorf("%s: error %q does not start with the file name", tt.what, err)
		}
	}
}

// runBackup runs a non-exclusive base backup's start and stop in one session, which
// makes the server write a backup history file into pg_wal.
func runBackup(t *testing.T, c *pgtest.Cluster, major int) (start, stop uint64) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.ConnString("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	startSQL, stopSQL := "SELECT pg_backup_start('wal-test', true)::text", "SELECT lsn::text FROM pg_backup_stop()"
	if major < 15 {
		startSQL, stopSQL = "SELECT pg_start_backup('wal-test', true, false)::text", "SELECT lsn::text FROM pg_stop_backup(false)"
	}
	var s1, s2 string
	if err := conn.QueryRow(ctx, startSQL).Scan(&s1); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, stopSQL).Scan(&s2); err != nil {
		t.Fatal(err)
	}
	if start, err = wal.ParseLSN(s1); err != nil {
		t.Fatal(err)
	}
	if stop, err = wal.ParseLSN(s2); err != nil {
		t.Fatal(err)
	}
	return start, stop
}

func readWAL(t *testing.T, dataDir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "pg_wal", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func listWAL(t *testing.T, dataDir, suffix string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dataDir, "pg_wal"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), suffix) {
			out = append(out, e.Name())
		}
	}
	return out
}

func mustParse(t *testing.T, s string) wal.Name {
	t.Helper()
	n, err := wal.ParseName(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
