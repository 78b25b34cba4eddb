package wal

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/pgward/pgward/internal/zeros"
)

// pageMagic is XLOG_PAGE_MAGIC, the first two bytes of every WAL page, per major. It
// changes whenever the WAL format does, so it tells which major wrote a segment.
//
// Where each value was checked (docs/wal.md has the details):
//   - pgBackRest's src/postgres/interface/version.vendor.h (commit bd22b680), which
//     carries xlog_internal.h's define for every major it supports, copied from each
//     release branch: 13 0xD106, 14 0xD10D, 15 0xD110, 16 0xD113, 17 0xD116, 18 0xD118.
//   - Real WAL: the tests read the first page of a segment written by a server of
//     each major (13.23, 14.23, 15 (Debian), 16.14, 17.10, 18.4 were run) and compare.
//   - postgres/postgres master's xlog_internal.h is at 0xD120 (19devel): not a
//     released major, so it is deliberately absent; its WAL fails as ErrUnknownVersion.
var pageMagic = map[int]uint16{
	13: 0xD106,
	14: 0xD10D,
	15: 0xD110,
	16: 0xD113,
	17: 0xD116,
	18: 0xD118,
}

// PageMagic returns the WAL page magic of a PostgreSQL major (13–18).
func PageMagic(major int) (uint16, bool) {
	m, ok := pageMagic[major]
	return m, ok
}

// MajorForMagic returns the PostgreSQL major whose WAL pages carry magic.
func MajorForMagic(magic uint16) (int, bool) {
	for major, m := range pageMagic {
		if m == magic {
			return major, true
		}
	}
	return 0, false
}

// Page header layout, from XLogPageHeaderData and XLogLongPageHeaderData in
// src/include/access/xlog_internal.h (identical in 13–18), in the server's byte order:
//
//	offset  size  field
//	0       2     xlp_magic
//	2       2     xlp_info (flags; XLP_LONG_HEADER = 0x0002)
//	4       4     xlp_tli (timeline of the first record on the page)
//	8       8     xlp_pageaddr (LSN of the page's first byte)
//	16      4     xlp_rem_len, then 4 bytes of padding (MAXALIGN to 24)
//	24      8     xlp_sysid (long header: pg_control's system identifier)
//	32      4     xlp_seg_size
//	36      4     xlp_xlog_blcksz
//
// SizeOfXLogLongPHD is MAXALIGN(40) = 40.
const (
	LongHeaderSize = 40

	xlpLongHeader = 0x0002
	// xlpAllFlags is XLP_ALL_FLAGS of 13–18: FIRST_IS_CONTRECORD 0x0001,
	// LONG_HEADER 0x0002, BKP_REMOVABLE 0x0004, FIRST_IS_OVERWRITE_CONTRECORD 0x0008
	// (the last added in the 2021 minor releases). master (19devel) dropped
	// BKP_REMOVABLE and moved the overwrite flag to 0x0004. PostgreSQL rejects a page
	// with any other bit (XLogReaderValidatePageHeader, xlogreader.c).
	xlpAllFlags = 0x000F

	minBlockSize = 1 << 10 // configure --with-wal-blocksize allows 1..64 kB
	maxBlockSize = 64 << 10
)

// Sentinel errors. Every error from ParseSegmentHeader and ValidateSegment wraps
// exactly one of them.
var (
	// ErrNotWAL: the bytes are not the start of a PostgreSQL WAL segment (too short,
	// all zeros, no page magic, no long header, impossible sizes).
	ErrNotWAL = errors.New("not a WAL segment")
	// ErrUnknownVersion: a well-formed segment header whose page magic belongs to no
	// major pgward supports (PostgreSQL 12 or older, or 19 and newer).
	ErrUnknownVersion = errors.New("WAL from an unsupported PostgreSQL version")
	// ErrWrongVersion: WAL of a supported major, but not the cluster's.
	ErrWrongVersion = errors.New("WAL from another PostgreSQL major version")
	// ErrWrongSystem: the system identifier is not the cluster's.
	ErrWrongSystem = errors.New("WAL from another cluster")
	// ErrWrongSize: the file is not as long as its header says segments are.
	ErrWrongSize = errors.New("WAL segment of the wrong size")
	// ErrWrongSegment: the header's page address is not where the file's name says
	// the segment starts (a renamed, misplaced or recycled file), or the name is not
	// a segment name at all.
	ErrWrongSegment = errors.New("WAL segment under the wrong name")
	// ErrWrongTimeline: the first page was written on a timeline newer than the one
	// in the file's name.
	ErrWrongTimeline = errors.New("WAL segment from the wrong timeline")
)

// Error is the error type of this package's checks: one sentence about one file,
// wrapping a sentinel.
type Error struct {
	File string // the file's name, when known
	Msg  string
	Err  error // one of the sentinels
}

func (e *Error) Error() string {
	if e.File == "" {
		return e.Msg
	}
	return e.File + ": " + e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

func fail(sentinel error, format string, args ...any) *Error {
	return &Error{Msg: fmt.Sprintf(format, args...), Err: sentinel}
}

// SegmentHeader is the long page header at the start of a WAL segment.
type SegmentHeader struct {
	Magic     uint16 // XLOG_PAGE_MAGIC of the major that wrote it
	Info      uint16 // xlp_info flags
	Timeline  uint32 // timeline of the first record on the page
	PageAddr  uint64 // LSN of the segment's first byte
	SystemID  uint64 // cluster's system identifier (pg_control)
	SegSize   uint32 // WAL segment size in bytes
	BlockSize uint32 // WAL page size (XLOG_BLCKSZ), 8192 unless built otherwise
	BigEndian bool   // written by a big-endian server
}

// Major is the PostgreSQL major that wrote the segment (0 if the magic is unknown).
func (h SegmentHeader) Major() int {
	m, _ := MajorForMagic(h.Magic)
	return m
}

// ParseSegmentHeader decodes the long page header from the first bytes of a WAL
// segment (at least LongHeaderSize bytes; the whole first page or file is fine). It
// checks what makes the bytes a segment start at all: a page magic of PostgreSQL
// 13–18, no undefined flag bits, XLP_LONG_HEADER set, a legal segment size and page
// size, a page address on a segment boundary and a non-zero timeline. Servers write
// headers in their native byte order; both orders are recognised by the magic.
func ParseSegmentHeader(first []byte) (SegmentHeader, error) {
	if len(first) < LongHeaderSize {
		return SegmentHeader{}, fail(ErrNotWAL, "only %d bytes, shorter than a WAL segment's %d-byte long page header", len(first), LongHeaderSize)
	}
	if zeros.Is(first[:LongHeaderSize]) {
		return SegmentHeader{}, fail(ErrNotWAL, "the first page header is all zeros (a preallocated segment never written?)")
	}
	var order binary.ByteOrder = binary.LittleEndian
	bigEndian := false
	if _, ok := MajorForMagic(binary.LittleEndian.Uint16(first)); !ok {
		if _, ok := MajorForMagic(binary.BigEndian.Uint16(first)); ok {
			order, bigEndian = binary.BigEndian, true
		}
	}
	h := SegmentHeader{
		Magic:     order.Uint16(first[0:]),
		Info:      order.Uint16(first[2:]),
		Timeline:  order.Uint32(first[4:]),
		PageAddr:  order.Uint64(first[8:]),
		SystemID:  order.Uint64(first[24:]),
		SegSize:   order.Uint32(first[32:]),
		BlockSize: order.Uint32(first[36:]),
		BigEndian: bigEndian,
	}
	if err := h.checkShape(); err != nil {
		return h, err
	}
	if _, ok := MajorForMagic(h.Magic); !ok {
		return h, fail(ErrUnknownVersion, "WAL page magic 0x%04X is not that of PostgreSQL 13–18 (0xD106–0xD118); pgward supports no other version", h.Magic)
	}
	return h, nil
}

// checkShape checks everything but the magic; a header that passes it and has an
// unknown magic is WAL of another version rather than random bytes.
func (h SegmentHeader) checkShape() error {
	if h.Magic>>8 != 0xD0 && h.Magic>>8 != 0xD1 {
		return fail(ErrNotWAL, "no WAL page magic at the start (found 0x%04X)", h.Magic)
	}
	if h.Info&^xlpAllFlags != 0 {
		return fail(ErrNotWAL, "invalid page flags 0x%04X in the first page header", h.Info)
	}
	if h.Info&xlpLongHeader == 0 {
		return fail(ErrNotWAL, "the first page has no long header (flags 0x%04X), so it does not start a segment", h.Info)
	}
	if !ValidSegSize(uint64(h.SegSize)) {
		return fail(ErrNotWAL, "the header's segment size %d is not a power of two from 1 MiB to 1 GiB", h.SegSize)
	}
	if h.BlockSize < minBlockSize || h.BlockSize > maxBlockSize || h.BlockSize&(h.BlockSize-1) != 0 {
		return fail(ErrNotWAL, "the header's WAL page size %d is not a power of two from 1 to 64 KiB", h.BlockSize)
	}
	if h.PageAddr%uint64(h.SegSize) != 0 {
		return fail(ErrNotWAL, "the first page's address %s is not on a %s segment boundary", FormatLSN(h.PageAddr), formatSize(uint64(h.SegSize)))
	}
	if h.Timeline == 0 {
		return fail(ErrNotWAL, "the first page header has timeline 0, which does not exist")
	}
	return nil
}

// ValidateSegment checks that a segment (or .partial segment) file is what its name
// says it is. first holds the file's first bytes (at least LongHeaderSize; the whole
// file is fine) and size its total length. On top of ParseSegmentHeader it checks:
//   - size equals the header's segment size (a .partial is padded to full size too,
//     by PostgreSQL and by pg_receivewal, uncompressed);
//   - when major != 0, the page magic is that major's;
//   - when wantSystemID != 0, the header's system identifier equals it;
//   - the name's segment field fits the header's segment size, and the header's page
//     address equals the start LSN the name implies;
//   - the header's timeline is not newer than the name's. It may be older: when a
//     server switches timeline mid-segment, the new timeline's first segment starts
//     as a copy of the old one up to the switch point (XLogInitNewTimeline and
//     XLogFileCopy in xlog.c), so its first page carries the parent's timeline.
//
// Errors are *Error naming the file and wrap one sentinel.
func ValidateSegment(name Name, first []byte, size int64, wantSystemID uint64, major int) (SegmentHeader, error) {
	file := name.Raw
	if file == "" {
		file = name.String()
	}
	named := func(err error) error {
		var e *Error
		if errors.As(err, &e) && e.File == "" {
			e.File = file
		}
		return err
	}
	if name.Kind != Segment && name.Kind != Partial {
		return SegmentHeader{}, named(fail(ErrWrongSegment, "is a %s, not a WAL segment", name.Kind))
	}
	h, err := ParseSegmentHeader(first)
	if err != nil {
		return h, named(err)
	}
	if size != int64(h.SegSize) {
		return h, named(fail(ErrWrongSize, "is %d bytes but its header says segments are %s (truncated or padded?)", size, formatSize(uint64(h.SegSize))))
	}
	if major != 0 {
		want, ok := PageMagic(major)
		if !ok {
			return h, named(fail(ErrUnknownVersion, "cannot be checked against PostgreSQL %d, which pgward does not support (13–18)", major))
		}
		if h.Magic != want {
			return h, named(fail(ErrWrongVersion, "was written by PostgreSQL %d (WAL page magic 0x%04X) but the cluster runs PostgreSQL %d (0x%04X)",
				h.Major(), h.Magic, major, want))
		}
	}
	if wantSystemID != 0 && h.SystemID != wantSystemID {
		return h, named(fail(ErrWrongSystem, "system identifier %d does not match the cluster's %d (a segment from another cluster?)", h.SystemID, wantSystemID))
	}
	segSize := uint64(h.SegSize)
	if !name.InRange(segSize) {
		return h, named(fail(ErrWrongSegment, "no segment has this name with the header's %s segments (the last 8 digits run to %08X at most)",
			formatSize(segSize), segsPerLog(segSize)-1))
	}
	if start := name.StartLSN(segSize); h.PageAddr != start {
		return h, named(fail(ErrWrongSegment, "its header says the segment starts at %s but its name says %s (a renamed or recycled file?)",
			FormatLSN(h.PageAddr), FormatLSN(start)))
	}
	if h.Timeline > name.Timeline {
		return h, named(fail(ErrWrongTimeline, "its first page was written on timeline %d, newer than timeline %d in its name (a renamed file?)",
			h.Timeline, name.Timeline))
	}
	return h, nil
}
