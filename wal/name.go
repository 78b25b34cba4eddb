package wal

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// Segment sizes PostgreSQL allows (initdb --wal-segsize: a power of two from 1 MiB to
// 1 GiB; WalSegMinSize, WalSegMaxSize and IsValidWalSegSize in
// src/include/access/xlog_internal.h).
const (
	MinSegSize     = 1 << 20
	MaxSegSize     = 1 << 30
	DefaultSegSize = 16 << 20
)

// ValidSegSize reports whether size is a WAL segment size PostgreSQL can be built or
// initialised with.
func ValidSegSize(size uint64) bool {
	return size >= MinSegSize && size <= MaxSegSize && size&(size-1) == 0
}

// segsPerLog is how many segments one "log" (the middle 8 hex digits of a name, 4 GiB
// of WAL) holds: XLogSegmentsPerXLogId in xlog_internal.h.
func segsPerLog(segSize uint64) uint64 {
	return (1 << 32) / segSize
}

func mustSegSize(segSize uint64) {
	if !ValidSegSize(segSize) {
		panic(fmt.Sprintf("wal: %d is not a WAL segment size (a power of two from 1 MiB to 1 GiB)", segSize))
	}
}

// Kind is what a file in the WAL archive is.
type Kind int

const (
	// Segment is a WAL segment, TTTTTTTTLLLLLLLLSSSSSSSS (timeline, log, segment).
	Segment Kind = iota + 1
	// Partial is a segment PostgreSQL (at the end of archive recovery, on the old
	// timeline) or pg_receivewal archived before it was complete: the segment name
	// followed by ".partial".
	Partial
	// History is a timeline history file, TTTTTTTT.history.
	History
	// BackupHistory is the file pg_backup_stop writes, named after the segment and
	// offset where the backup started: TTTTTTTTLLLLLLLLSSSSSSSS.OOOOOOOO.backup.
	BackupHistory
)

func (k Kind) String() string {
	switch k {
	case Segment:
		return "segment"
	case Partial:
		return "partial segment"
	case History:
		return "timeline history file"
	case BackupHistory:
		return "backup history file"
	}
	return fmt.Sprintf("wal.Kind(%d)", int(k))
}

// Name is a parsed WAL archive file name.
type Name struct {
	Kind     Kind
	Timeline uint32
	Log, Seg uint32 // the segment's position; zero for History
	Offset   uint32 // BackupHistory only: where in the segment the backup started
	Raw      string // the name as given (always canonical: ParseName refuses any other spelling)
}

// ErrBadName is wrapped by every error ParseName returns.
var ErrBadName = errors.New("not a PostgreSQL WAL file name")

// File-name lengths: XLOG_FNAME_LEN (24) and the suffixes in xlog_internal.h.
const (
	segNameLen     = 24
	partialSuffix  = ".partial"
	historySuffix  = ".history"
	backupSuffix   = ".backup"
	backupNameLen  = segNameLen + 1 + 8 + len(backupSuffix)
	historyNameLen = 8 + len(historySuffix)
)

// maxSegField bounds the last 8 hex digits of a segment name for every legal segment
// size: even 1 MiB segments have only 4096 per log, so a larger value names no WAL.
const maxSegField = (1<<32)/MinSegSize - 1

// ParseName parses the name of a file PostgreSQL puts in its WAL archive: a segment,
// a .partial segment, a timeline history file or a backup history file. It is strict:
// hex must be upper case (PostgreSQL writes %08X and its own IsXLogFileName accepts
// nothing else), widths are exact, the timeline is at least 1 and the segment field is
// one some segment size allows. Anything else is refused with an error wrapping
// ErrBadName. A directory component is an error too: pass a base name.
func ParseName(name string) (Name, error) {
	bad := func(why string) (Name, error) {
		return Name{}, fmt.Errorf("%q is %w: %s", name, ErrBadName, why)
	}
	switch {
	case len(name) == segNameLen:
		n, why := parseSegmentPart(name)
		if why != "" {
			return bad(why)
		}
		n.Kind = Segment
		n.Raw = name
		return n, nil
	case len(name) == segNameLen+len(partialSuffix) && strings.HasSuffix(name, partialSuffix):
		n, why := parseSegmentPart(name[:segNameLen])
		if why != "" {
			return bad(why)
		}
		n.Kind = Partial
		n.Raw = name
		return n, nil
	case len(name) == historyNameLen && strings.HasSuffix(name, historySuffix):
		tli, ok := hex8(name[:8])
		if !ok {
			return bad("a history file is 8 upper-case hex digits (the timeline) followed by .history")
		}
		if tli == 0 {
			return bad("timeline 0 does not exist (timelines start at 1)")
		}
		return Name{Kind: History, Timeline: tli, Raw: name}, nil
	case len(name) == backupNameLen && strings.HasSuffix(name, backupSuffix) && name[segNameLen] == '.':
		n, why := parseSegmentPart(name[:segNameLen])
		if why != "" {
			return bad(why)
		}
		off, ok := hex8(name[segNameLen+1 : segNameLen+9])
		if !ok {
			return bad("the backup start offset must be 8 upper-case hex digits")
		}
		if off >= MaxSegSize {
			return bad("the backup start offset is past the end of the largest possible segment")
		}
		n.Kind = BackupHistory
		n.Offset = off
		n.Raw = name
		return n, nil
	}
	if strings.ContainsRune(name, '/') {
		return bad("it has a directory part; pass the file's base name")
	}
	return bad("expected a 24-hex-digit segment name, optionally with .partial, a <segment>.<offset>.backup file or a <timeline>.history file")
}

// parseSegmentPart parses TTTTTTTTLLLLLLLLSSSSSSSS; why is non-empty on failure.
func parseSegmentPart(s string) (n Name, why string) {
	tli, ok1 := hex8(s[0:8])
	log, ok2 := hex8(s[8:16])
	seg, ok3 := hex8(s[16:24])
	if !ok1 || !ok2 || !ok3 {
		return Name{}, "a segment name is 24 upper-case hex digits (timeline, log, segment)"
	}
	if tli == 0 {
		return Name{}, "timeline 0 does not exist (timelines start at 1)"
	}
	if seg > maxSegField {
		return Name{}, fmt.Sprintf("segment field %08X is larger than any segment size allows (at most %08X)", seg, maxSegField)
	}
	return Name{Timeline: tli, Log: log, Seg: seg}, ""
}

// hex8 parses exactly 8 upper-case hex digits.
func hex8(s string) (uint32, bool) {
	if len(s) != 8 {
		return 0, false
	}
	var v uint32
	for i := 0; i < 8; i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint32(c-'0')
		case c >= 'A' && c <= 'F':
			v = v<<4 | uint32(c-'A'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// String returns the canonical file name.
func (n Name) String() string {
	switch n.Kind {
	case Segment:
		return n.Segment()
	case Partial:
		return n.Segment() + partialSuffix
	case History:
		return HistoryName(n.Timeline)
	case BackupHistory:
		return fmt.Sprintf("%s.%08X%s", n.Segment(), n.Offset, backupSuffix)
	}
	return n.Raw
}

// Segment returns the 24-character name of the segment a Segment, Partial or
// BackupHistory name refers to (the name itself, minus any suffix).
func (n Name) Segment() string {
	return fmt.Sprintf("%08X%08X%08X", n.Timeline, n.Log, n.Seg)
}

// SegNo is the segment's number counted from the start of WAL (XLogFromFileName in
// xlog_internal.h): log * (4 GiB / segSize) + seg. It panics if segSize is not a valid
// segment size; check with ValidSegSize or InRange first when it comes from outside.
func (n Name) SegNo(segSize uint64) uint64 {
	mustSegSize(segSize)
	return uint64(n.Log)*segsPerLog(segSize) + uint64(n.Seg)
}

// InRange reports whether the segment field is possible with this segment size: with
// 16 MiB segments the last 8 digits run from 00000000 to 000000FF only.
func (n Name) InRange(segSize uint64) bool {
	return ValidSegSize(segSize) && uint64(n.Seg) < segsPerLog(segSize)
}

// StartLSN is the first WAL position the file covers: the segment's start for Segment
// and Partial, the backup's start (segment start + Offset) for BackupHistory. It
// panics like SegNo.
func (n Name) StartLSN(segSize uint64) uint64 {
	return n.SegNo(segSize)*segSize + uint64(n.Offset)
}

// SegmentName is the file name of segment segNo on timeline tli (XLogFileName in
// xlog_internal.h). It panics if segSize is not a valid segment size or segNo lies
// beyond the last segment a name can express (log FFFFFFFF).
func SegmentName(tli uint32, segNo uint64, segSize uint64) string {
	mustSegSize(segSize)
	per := segsPerLog(segSize)
	if segNo/per > math.MaxUint32 {
		panic(fmt.Sprintf("wal: segment number %d is past the end of the WAL address space for %d-byte segments", segNo, segSize))
	}
	return fmt.Sprintf("%08X%08X%08X", tli, uint32(segNo/per), uint32(segNo%per))
}

// SegmentNameForLSN is the name of the segment on timeline tli that holds lsn.
func SegmentNameForLSN(tli uint32, lsn uint64, segSize uint64) string {
	mustSegSize(segSize)
	return SegmentName(tli, lsn/segSize, segSize)
}

// HistoryName is the name of timeline tli's history file (TLHistoryFileName).
func HistoryName(tli uint32) string {
	return fmt.Sprintf("%08X%s", tli, historySuffix)
}

// NextSegment returns the name of the segment after name on the same timeline, for
// prefetching: with 16 MiB segments 0000000100000000000000FF is followed by
// 000000010000000100000000. name must be a plain segment name.
func NextSegment(name string, segSize uint64) (string, error) {
	next, err := NextSegments(name, segSize, 1)
	if err != nil {
		return "", err
	}
	return next[0], nil
}

// NextSegments returns the names of the count segments after name on the same
// timeline, in order. It fails if name is not a segment name, segSize is not a valid
// size, name's segment field does not fit segSize, or the names would run past the
// end of the WAL address space.
func NextSegments(name string, segSize uint64, count int) ([]string, error) {
	n, err := ParseName(name)
	if err != nil {
		return nil, err
	}
	if n.Kind != Segment {
		return nil, fmt.Errorf("next segments after %s: it is a %s, not a segment", name, n.Kind)
	}
	if !ValidSegSize(segSize) {
		return nil, fmt.Errorf("next segments after %s: %d is not a WAL segment size (a power of two from 1 MiB to 1 GiB)", name, segSize)
	}
	if !n.InRange(segSize) {
		return nil, fmt.Errorf("next segments after %s: %w: segment field %08X does not exist with %s segments (at most %08X)",
			name, ErrBadName, n.Seg, formatSize(segSize), segsPerLog(segSize)-1)
	}
	if count < 0 {
		return nil, fmt.Errorf("next segments after %s: negative count %d", name, count)
	}
	last := uint64(math.MaxUint32+1)*segsPerLog(segSize) - 1 // segment FF..F of log FFFFFFFF
	segNo := n.SegNo(segSize)
	if uint64(count) > last-segNo {
		return nil, fmt.Errorf("next segments after %s: %d more segments would run past the end of the WAL address space", name, count)
	}
	out := make([]string, count)
	for i := range out {
		out[i] = SegmentName(n.Timeline, segNo+uint64(i)+1, segSize)
	}
	return out, nil
}

// ErrBadLSN is wrapped by ParseLSN's errors.
var ErrBadLSN = errors.New("not an LSN")

// FormatLSN writes lsn as PostgreSQL 13–18 print pg_lsn and history-file switch
// points: two upper-case hex halves without padding, e.g. 0/3000000.
func FormatLSN(lsn uint64) string {
	return fmt.Sprintf("%X/%X", uint32(lsn>>32), uint32(lsn))
}

// ParseLSN parses hi/lo with 1 to 8 hex digits on each side, in either case, as
// pg_lsn input accepts (and as PostgreSQL 19's zero-padded %X/%08X form also is).
func ParseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("%q is %w: expected two hex numbers separated by /", s, ErrBadLSN)
	}
	h, ok1 := parseHex32(hi)
	l, ok2 := parseHex32(lo)
	if !ok1 || !ok2 {
		return 0, fmt.Errorf("%q is %w: each half must be 1 to 8 hex digits", s, ErrBadLSN)
	}
	return uint64(h)<<32 | uint64(l), nil
}

// parseHex32 parses 1 to 8 hex digits of either case.
func parseHex32(s string) (uint32, bool) {
	if len(s) == 0 || len(s) > 8 {
		return 0, false
	}
	var v uint32
	for i := 0; i < len(s); i++ {
		d, ok := hexDigit(s[i])
		if !ok {
			return 0, false
		}
		v = v<<4 | d
	}
	return v, true
}

func hexDigit(c byte) (uint32, bool) {
	switch {
	case c >= '0' && c <= '9':
		return uint32(c - '0'), true
	case c >= 'A' && c <= 'F':
		return uint32(c-'A') + 10, true
	case c >= 'a' && c <= 'f':
		return uint32(c-'a') + 10, true
	}
	return 0, false
}

// formatSize prints a byte count as MiB/GiB when it is a whole number of them.
func formatSize(n uint64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
