package wal

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseNameValid(t *testing.T) {
	tests := []struct {
		name string
		want Name
	}{
		{"000000010000000000000001", Name{Kind: Segment, Timeline: 1, Log: 0, Seg: 1}},
		{"0000000A00000003000000FF", Name{Kind: Segment, Timeline: 10, Log: 3, Seg: 0xFF}},
		{"FFFFFFFFFFFFFFFF00000FFF", Name{Kind: Segment, Timeline: 0xFFFFFFFF, Log: 0xFFFFFFFF, Seg: 0xFFF}},
		{"000000020000000000000003.partial", Name{Kind: Partial, Timeline: 2, Seg: 3}},
		{"00000002.history", Name{Kind: History, Timeline: 2}},
		{"0000001F.history", Name{Kind: History, Timeline: 31}},
		{"000000010000000000000002.00000028.backup", Name{Kind: BackupHistory, Timeline: 1, Seg: 2, Offset: 0x28}},
		{"000000010000000100000004.00F00060.backup", Name{Kind: BackupHistory, Timeline: 1, Log: 1, Seg: 4, Offset: 0xF00060}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseName(tt.name)
			if err != nil {
				t.Fatalf("ParseName: %v", err)
			}
			tt.want.Raw = tt.name
			if got != tt.want {
				t.Errorf("ParseName = %+v, want %+v", got, tt.want)
			}
			if got.String() != tt.name {
				t.Errorf("String() = %q, want %q", got.String(), tt.name)
			}
		})
	}
}

func TestParseNameInvalid(t *testing.T) {
	for _, name := range []string{
		"",
		"00000001000000000000000",   // 23 digits
		"0000000100000000000000001", // 25 digits
		"00000001000000000000000a",  // lower case: PostgreSQL writes %08X
		"0000000100000000000000Ab",  // mixed case
		"00000001000000000000000G",  // not hex
		"000000000000000000000001",  // timeline 0
		"000000010000000000001000",  // segment field beyond 1 MiB segments' 0xFFF
		"00000001 000000000000001",  // space
		"+00000010000000000000001",  // sign
		"000000010000000000000001.PARTIAL",
		"000000010000000000000001.partial.gz",
		"000000010000000000000001.gz",
		"000000010000000000000001.part",
		"00000001.History",
		"0000001.history",
		"000000001.history",
		"00000000.history",
		"0000000a.history",
		"000000010000000000000002.0000028.backup",
		"000000010000000000000002.000000028.backup",
		"000000010000000000000002.0000002g.backup",
		"000000010000000000000002.40000000.backup", // offset past 1 GiB
		"000000010000000000000002-00000028.backup",
		"000000010000000000000002.backup",
		"pg_wal/000000010000000000000001",
		"../000000010000000000000001",
		"000000010000000000000001/",
		"archive_status",
		"000000010000000000000001.ready",
		"RECOVERYHISTORY",
		"RECOVERYXLOG",
	} {
		t.Run(name, func(t *testing.T) {
			n, err := ParseName(name)
			if err == nil {
				t.Fatalf("ParseName accepted %q as %+v", name, n)
			}
			if !errors.Is(err, ErrBadName) {
				t.Errorf("error %v does not wrap ErrBadName", err)
			}
			if !strings.Contains(err.Error(), name) && name != "" {
				t.Errorf("error %q does not name the input", err)
			}
		})
	}
}

func TestSegNoAndStartLSN(t *testing.T) {
	tests := []struct {
		name     string
		segSize  uint64
		segNo    uint64
		startLSN uint64
	}{
		{"000000010000000000000001", 16 << 20, 1, 0x1000000},
		{"0000000100000001000000FF", 16 << 20, 0x1FF, 0x1FF000000},
		{"000000010000000100000003", 64 << 20, 64 + 3, 0x10C000000},
		{"000000010000000200000001", 1 << 30, 2*4 + 1, 0x240000000},
		{"000000010000000000000FFF", 1 << 20, 0xFFF, 0xFFF00000},
		{"000000010000000000000002.00000028.backup", 16 << 20, 2, 0x2000028},
		{"000000030000000000000005.partial", 16 << 20, 5, 0x5000000},
	}
	for _, tt := range tests {
		n, err := ParseName(tt.name)
		if err != nil {
			t.Fatal(err)
		}
		if got := n.SegNo(tt.segSize); got != tt.segNo {
			t.Errorf("%s SegNo(%d) = %#x, want %#x", tt.name, tt.segSize, got, tt.segNo)
		}
		if got := n.StartLSN(tt.segSize); got != tt.startLSN {
			t.Errorf("%s StartLSN(%d) = %s, want %s", tt.name, tt.segSize, FormatLSN(got), FormatLSN(tt.startLSN))
		}
		if got := SegmentName(n.Timeline, tt.segNo, tt.segSize); got != n.Segment() {
			t.Errorf("SegmentName(%d, %#x, %d) = %s, want %s", n.Timeline, tt.segNo, tt.segSize, got, n.Segment())
		}
		if got := SegmentNameForLSN(n.Timeline, tt.startLSN+1, tt.segSize); got != n.Segment() {
			t.Errorf("SegmentNameForLSN = %s, want %s", got, n.Segment())
		}
	}
}

func TestInRange(t *testing.T) {
	n, _ := ParseName("0000000100000000000000FF")
	if !n.InRange(16<<20) || n.InRange(32<<20) {
		t.Errorf("seg 0xFF: InRange(16 MiB)=%v InRange(32 MiB)=%v, want true, false", n.InRange(16<<20), n.InRange(32<<20))
	}
	n, _ = ParseName("000000010000000000000100")
	if n.InRange(16<<20) || !n.InRange(8<<20) {
		t.Errorf("seg 0x100: InRange(16 MiB)=%v InRange(8 MiB)=%v, want false, true", n.InRange(16<<20), n.InRange(8<<20))
	}
	if n.InRange(3 << 20) {
		t.Error("InRange accepted a segment size that is not a power of two")
	}
}

func TestNextSegment(t *testing.T) {
	tests := []struct {
		name    string
		segSize uint64
		want    string
	}{
		{"000000010000000000000001", 16 << 20, "000000010000000000000002"},
		{"0000000100000000000000FE", 16 << 20, "0000000100000000000000FF"},
		{"0000000100000000000000FF", 16 << 20, "000000010000000100000000"}, // next log
		{"0000000500000007000000FF", 16 << 20, "000000050000000800000000"},
		{"00000001000000000000003E", 64 << 20, "00000001000000000000003F"},
		{"00000001000000000000003F", 64 << 20, "000000010000000100000000"},
		{"000000010000000000000002", 1 << 30, "000000010000000000000003"},
		{"000000010000000000000003", 1 << 30, "000000010000000100000000"},
		{"000000010000000000000FFF", 1 << 20, "000000010000000100000000"},
	}
	for _, tt := range tests {
		got, err := NextSegment(tt.name, tt.segSize)
		if err != nil {
			t.Errorf("NextSegment(%s, %d): %v", tt.name, tt.segSize, err)
			continue
		}
		if got != tt.want {
			t.Errorf("NextSegment(%s, %s) = %s, want %s", tt.name, formatSize(tt.segSize), got, tt.want)
		}
	}
	// 64 MiB segments have 64 per log (00..3F): ...FF names no segment of that size.
	if got, err := NextSegment("0000000100000000000000FF", 64<<20); !errors.Is(err, ErrBadName) {
		t.Errorf("NextSegment(...FF, 64 MiB) = %q, %v; want an ErrBadName error", got, err)
	}
}

func TestNextSegments(t *testing.T) {
	got, err := NextSegments("0000000200000003000000FE", 16<<20, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"0000000200000003000000FF", "000000020000000400000000", "000000020000000400000001"}
	if !slices.Equal(got, want) {
		t.Errorf("NextSegments = %v, want %v", got, want)
	}
	if got, err := NextSegments("0000000200000003000000FE", 16<<20, 0); err != nil || len(got) != 0 {
		t.Errorf("NextSegments(0) = %v, %v", got, err)
	}
	// The very end of the address space.
	if got, err := NextSegment("00000001FFFFFFFF000000FE", 16<<20); err != nil || got != "00000001FFFFFFFF000000FF" {
		t.Errorf("NextSegment before the end = %q, %v", got, err)
	}
	for _, c := range []struct {
		name    string
		segSize uint64
		count   int
	}{
		{"00000001FFFFFFFF000000FF", 16 << 20, 1},
		{"00000001FFFFFFFF000000FE", 16 << 20, 2},
		{"00000001FFFFFFFF00000003", 1 << 30, 1},
		{"000000010000000000000001.partial", 16 << 20, 1},
		{"00000002.history", 16 << 20, 1},
		{"000000010000000000000001", 3 << 20, 1},
		{"000000010000000000000001", 2 << 30, 1},
		{"000000010000000000000001", 16 << 20, -1},
		{"00000001000000000000000g", 16 << 20, 1},
	} {
		if got, err := NextSegments(c.name, c.segSize, c.count); err == nil {
			t.Errorf("NextSegments(%s, %d, %d) = %v, want an error", c.name, c.segSize, c.count, got)
		}
	}
}

func TestSegmentNamePanics(t *testing.T) {
	for _, c := range []struct {
		segNo, segSize uint64
	}{
		{1, 0},
		{1, 3 << 20},
		{1, 2 << 30},
		{1 << 40, 16 << 20}, // log 2^40/256 = 2^32 does not fit 8 hex digits
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("SegmentName(1, %d, %d) did not panic", c.segNo, c.segSize)
				}
			}()
			SegmentName(1, c.segNo, c.segSize)
		}()
	}
}

func TestValidSegSize(t *testing.T) {
	for _, s := range []uint64{1 << 20, 2 << 20, 16 << 20, 64 << 20, 1 << 30} {
		if !ValidSegSize(s) {
			t.Errorf("ValidSegSize(%d) = false", s)
		}
	}
	for _, s := range []uint64{0, 1, 512 << 10, 3 << 20, 16<<20 + 1, 2 << 30} {
		if ValidSegSize(s) {
			t.Errorf("ValidSegSize(%d) = true", s)
		}
	}
}

func TestLSN(t *testing.T) {
	for _, c := range []struct {
		s   string
		lsn uint64
	}{
		{"0/0", 0},
		{"0/3000000", 0x3000000},
		{"1/F0000028", 0x1F0000028},
		{"FFFFFFFF/FFFFFFFF", 0xFFFFFFFFFFFFFFFF},
	} {
		if got := FormatLSN(c.lsn); got != c.s {
			t.Errorf("FormatLSN(%#x) = %q, want %q", c.lsn, got, c.s)
		}
		if got, err := ParseLSN(c.s); err != nil || got != c.lsn {
			t.Errorf("ParseLSN(%q) = %#x, %v", c.s, got, err)
		}
	}
	// Accepted spellings beyond FormatLSN's: lower case and PostgreSQL 19's zero padding.
	for s, want := range map[string]uint64{"1/f0000028": 0x1F0000028, "0/03000000": 0x3000000, "00000000/00000001": 1} {
		if got, err := ParseLSN(s); err != nil || got != want {
			t.Errorf("ParseLSN(%q) = %#x, %v; want %#x", s, got, err, want)
		}
	}
	for _, s := range []string{"", "/", "0/", "/0", "0", "0/0/0", "x/0", "0/123456789", "123456789/0", " 0/0", "0/0 ", "-1/0", "0x1/0"} {
		if got, err := ParseLSN(s); err == nil || !errors.Is(err, ErrBadLSN) {
			t.Errorf("ParseLSN(%q) = %#x, %v; want an ErrBadLSN error", s, got, err)
		}
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{Segment: "segment", Partial: "partial segment", History: "timeline history file", BackupHistory: "backup history file", 0: "wal.Kind(0)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}
