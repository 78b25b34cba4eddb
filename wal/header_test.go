package wal

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

// fakeHeader builds a first page the way PostgreSQL lays it out (offsets in header.go).
type fakeHeader struct {
	order     binary.ByteOrder
	magic     uint16
	info      uint16
	tli       uint32
	pageAddr  uint64
	sysID     uint64
	segSize   uint32
	blockSize uint32
}

func (f fakeHeader) bytes() []byte {
	order := f.order
	if order == nil {
		order = binary.LittleEndian
	}
	b := make([]byte, 8192)
	order.PutUint16(b[0:], f.magic)
	order.PutUint16(b[2:], f.info)
	order.PutUint32(b[4:], f.tli)
	order.PutUint64(b[8:], f.pageAddr)
	order.PutUint64(b[24:], f.sysID)
	order.PutUint32(b[32:], f.segSize)
	order.PutUint32(b[36:], f.blockSize)
	return b
}

// good is the first page of 000000010000000000000003 on PostgreSQL 15, 16 MiB segments.
func good() fakeHeader {
	return fakeHeader{magic: 0xD110, info: xlpLongHeader, tli: 1, pageAddr: 0x3000000,
		sysID: 7312345678901234567, segSize: 16 << 20, blockSize: 8192}
}

func TestPageMagic(t *testing.T) {
	want := map[int]uint16{13: 0xD106, 14: 0xD10D, 15: 0xD110, 16: 0xD113, 17: 0xD116, 18: 0xD118}
	for major, magic := range want {
		if got, ok := PageMagic(major); !ok || got != magic {
			t.Errorf("PageMagic(%d) = %#x, %v; want %#x", major, got, ok, magic)
		}
		if got, ok := MajorForMagic(magic); !ok || got != major {
			t.Errorf("MajorForMagic(%#x) = %d, %v; want %d", magic, got, ok, major)
		}
	}
	for _, major := range []int{0, 9, 12, 19} {
		if _, ok := PageMagic(major); ok {
			t.Errorf("PageMagic(%d) is known", major)
		}
	}
	for _, magic := range []uint16{0, 0xD101, 0xD120, 0xD121} {
		if _, ok := MajorForMagic(magic); ok {
			t.Errorf("MajorForMagic(%#x) is known", magic)
		}
	}
}

func TestParseSegmentHeader(t *testing.T) {
	g := good()
	h, err := ParseSegmentHeader(g.bytes())
	if err != nil {
		t.Fatal(err)
	}
	want := SegmentHeader{Magic: 0xD110, Info: 2, Timeline: 1, PageAddr: 0x3000000, SystemID: g.sysID, SegSize: 16 << 20, BlockSize: 8192}
	if h != want {
		t.Errorf("got %+v, want %+v", h, want)
	}
	if h.Major() != 15 {
		t.Errorf("Major() = %d", h.Major())
	}
	// Exactly LongHeaderSize bytes suffice.
	if _, err := ParseSegmentHeader(g.bytes()[:LongHeaderSize]); err != nil {
		t.Errorf("40 bytes: %v", err)
	}
	// A big-endian server's header.
	be := g
	be.order = binary.BigEndian
	h, err = ParseSegmentHeader(be.bytes())
	if err != nil {
		t.Fatalf("big-endian: %v", err)
	}
	want.BigEndian = true
	if h != want {
		t.Errorf("big-endian: got %+v, want %+v", h, want)
	}
	// Other legal sizes and flags.
	for _, f := range []func(*fakeHeader){
		func(f *fakeHeader) { f.segSize, f.pageAddr = 1<<20, 0x100000 },
		func(f *fakeHeader) { f.segSize, f.pageAddr = 1<<30, 0x40000000 },
		func(f *fakeHeader) { f.blockSize = 1024 },
		func(f *fakeHeader) { f.blockSize = 65536 },
		func(f *fakeHeader) { f.info = xlpLongHeader | 0x0001 }, // first record continues from the previous segment
		func(f *fakeHeader) { f.info = 0x000F },
		func(f *fakeHeader) { f.pageAddr = 0 },
	} {
		v := good()
		f(&v)
		if _, err := ParseSegmentHeader(v.bytes()); err != nil {
			t.Errorf("%+v: %v", v, err)
		}
	}
}

func TestParseSegmentHeaderRejects(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*fakeHeader)
		bytes  []byte // instead of the mutated header
		want   error
		msg    string
	}{
		{name: "empty", bytes: []byte{}, want: ErrNotWAL, msg: "only 0 bytes"},
		{name: "39 bytes", bytes: good().bytes()[:39], want: ErrNotWAL, msg: "shorter than"},
		{name: "zeros", bytes: make([]byte, 8192), want: ErrNotWAL, msg: "all zeros"},
		{name: "text", bytes: []byte(strings.Repeat("hello, world\n", 10)), want: ErrNotWAL, msg: "no WAL page magic"},
		{name: "magic 0", mutate: func(f *fakeHeader) { f.magic = 0x1234 }, want: ErrNotWAL, msg: "0x1234"},
		{name: "PostgreSQL 12", mutate: func(f *fakeHeader) { f.magic = 0xD101 }, want: ErrUnknownVersion, msg: "0xD101"},
		{name: "PostgreSQL 19devel", mutate: func(f *fakeHeader) { f.magic = 0xD120 }, want: ErrUnknownVersion, msg: "0xD120"},
		{name: "short header", mutate: func(f *fakeHeader) { f.info = 0 }, want: ErrNotWAL, msg: "no long header"},
		{name: "undefined flag", mutate: func(f *fakeHeader) { f.info = xlpLongHeader | 0x0010 }, want: ErrNotWAL, msg: "invalid page flags"},
		{name: "segsize 0", mutate: func(f *fakeHeader) { f.segSize = 0 }, want: ErrNotWAL, msg: "segment size 0"},
		{name: "segsize 3 MiB", mutate: func(f *fakeHeader) { f.segSize = 3 << 20 }, want: ErrNotWAL, msg: "segment size"},
		{name: "segsize 2 GiB", mutate: func(f *fakeHeader) { f.segSize = 2 << 30 }, want: ErrNotWAL, msg: "segment size"},
		{name: "segsize 512 KiB", mutate: func(f *fakeHeader) { f.segSize = 512 << 10 }, want: ErrNotWAL, msg: "segment size"},
		{name: "block 512", mutate: func(f *fakeHeader) { f.blockSize = 512 }, want: ErrNotWAL, msg: "page size"},
		{name: "block 128 KiB", mutate: func(f *fakeHeader) { f.blockSize = 128 << 10 }, want: ErrNotWAL, msg: "page size"},
		{name: "block 8000", mutate: func(f *fakeHeader) { f.blockSize = 8000 }, want: ErrNotWAL, msg: "page size"},
		{name: "mid-segment address", mutate: func(f *fakeHeader) { f.pageAddr += 8192 }, want: ErrNotWAL, msg: "segment boundary"},
		{name: "timeline 0", mutate: func(f *fakeHeader) { f.tli = 0 }, want: ErrNotWAL, msg: "timeline 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.bytes
			if b == nil {
				f := good()
				tt.mutate(&f)
				b = f.bytes()
			}
			_, err := ParseSegmentHeader(b)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err = %q, want it to mention %q", err, tt.msg)
			}
		})
	}
}

func TestParseSegmentHeaderRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, 64)
	for i := 0; i < 100000; i++ {
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		if h, err := ParseSegmentHeader(b); err == nil {
			t.Fatalf("random bytes %x parsed as %+v", b, h)
		}
	}
}

func mustName(t *testing.T, s string) Name {
	t.Helper()
	n, err := ParseName(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestValidateSegment(t *testing.T) {
	g := good()
	seg := mustName(t, "000000010000000000000003")
	const size = 16 << 20
	if _, err := ValidateSegment(seg, g.bytes(), size, g.sysID, 15); err != nil {
		t.Fatalf("good segment: %v", err)
	}
	if _, err := ValidateSegment(seg, g.bytes(), size, 0, 0); err != nil {
		t.Fatalf("good segment, nothing expected: %v", err)
	}
	if _, err := ValidateSegment(mustName(t, "000000010000000000000003.partial"), g.bytes(), size, g.sysID, 15); err != nil {
		t.Fatalf(".partial: %v", err)
	}
	// The first segment of timeline 2 starts as a copy of timeline 1's.
	if _, err := ValidateSegment(mustName(t, "000000020000000000000003"), g.bytes(), size, g.sysID, 15); err != nil {
		t.Fatalf("older timeline in header: %v", err)
	}
	// A Name built by hand, without Raw, is named by String().
	if _, err := ValidateSegment(Name{Kind: Segment, Timeline: 1, Seg: 4}, g.bytes(), size, 0, 0); err == nil ||
		!strings.HasPrefix(err.Error(), "000000010000000000000004: ") {
		t.Errorf("hand-built name: %v", err)
	}
	// 64 MiB and 1 GiB segments: the name's segment field counts in that size.
	g64 := good()
	g64.segSize, g64.pageAddr = 64<<20, 0x10C000000 // log 1, seg 3
	if _, err := ValidateSegment(mustName(t, "000000010000000100000003"), g64.bytes(), 64<<20, 0, 15); err != nil {
		t.Errorf("64 MiB: %v", err)
	}
	g1g := good()
	g1g.segSize, g1g.pageAddr = 1<<30, 0x240000000 // log 2, seg 1
	if _, err := ValidateSegment(mustName(t, "000000010000000200000001"), g1g.bytes(), 1<<30, 0, 15); err != nil {
		t.Errorf("1 GiB: %v", err)
	}

	tests := []struct {
		name  string
		file  string
		first []byte
		size  int64
		sysID uint64
		major int
		want  error
		msg   string
	}{
		{"truncated", "000000010000000000000003", g.bytes(), size - 1, g.sysID, 15, ErrWrongSize,
			"000000010000000000000003: is 16777215 bytes but its header says segments are 16 MiB (truncated or padded?)"},
		{"empty file", "000000010000000000000003", nil, 0, g.sysID, 15, ErrNotWAL,
			"000000010000000000000003: only 0 bytes, shorter than a WAL segment's 40-byte long page header"},
		{"padded", "000000010000000000000003", g.bytes(), size + 8192, g.sysID, 15, ErrWrongSize, "is 16785408 bytes"},
		{"other cluster", "000000010000000000000003", g.bytes(), size, 7299000000000000001, 15, ErrWrongSystem,
			"000000010000000000000003: system identifier 7312345678901234567 does not match the cluster's 7299000000000000001 (a segment from another cluster?)"},
		{"other major", "000000010000000000000003", g.bytes(), size, g.sysID, 17, ErrWrongVersion,
			"000000010000000000000003: was written by PostgreSQL 15 (WAL page magic 0xD110) but the cluster runs PostgreSQL 17 (0xD116)"},
		{"unsupported major", "000000010000000000000003", g.bytes(), size, g.sysID, 12, ErrUnknownVersion, "PostgreSQL 12"},
		{"renamed", "000000010000000000000004", g.bytes(), size, g.sysID, 15, ErrWrongSegment,
			"000000010000000000000004: its header says the segment starts at 0/3000000 but its name says 0/4000000 (a renamed or recycled file?)"},
		{"renamed across logs", "000000010000000100000003", g.bytes(), size, g.sysID, 15, ErrWrongSegment, "its name says 1/3000000"},
		{"name impossible for segsize", "000000010000000000000103", g.bytes(), size, g.sysID, 15, ErrWrongSegment,
			"no segment has this name with the header's 16 MiB segments (the last 8 digits run to 000000FF at most)"},
		{"newer timeline", "000000010000000000000003", func() []byte { f := good(); f.tli = 2; return f.bytes() }(), size, g.sysID, 15, ErrWrongTimeline,
			"000000010000000000000003: its first page was written on timeline 2, newer than timeline 1 in its name (a renamed file?)"},
		{"history file", "00000002.history", g.bytes(), size, g.sysID, 15, ErrWrongSegment, "00000002.history: is a timeline history file, not a WAL segment"},
		{"backup file", "000000010000000000000003.00000028.backup", g.bytes(), size, g.sysID, 15, ErrWrongSegment, "is a backup history file"},
		{"zeros", "000000010000000000000003", make([]byte, 8192), size, g.sysID, 15, ErrNotWAL,
			"000000010000000000000003: the first page header is all zeros (a preallocated segment never written?)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ValidateSegment(mustName(t, tt.file), tt.first, tt.size, tt.sysID, tt.major)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err = %q\nwant it to contain %q", err, tt.msg)
			}
			var e *Error
			if !errors.As(err, &e) || e.File != tt.file {
				t.Errorf("err is not an *Error naming %s: %#v", tt.file, err)
			}
			if strings.Count(err.Error(), "\n") != 0 {
				t.Errorf("multi-line error %q", err)
			}
		})
	}
}
