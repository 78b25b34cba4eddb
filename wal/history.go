package wal

import (
	"bytes"
	"errors"
	"fmt"
	"math"
)

// ErrBadHistory is wrapped by every error ParseHistory returns.
var ErrBadHistory = errors.New("invalid timeline history file")

// HistoryEntry is one line of a timeline history file: timeline Timeline ended at
// SwitchLSN, where its child (the next line's timeline, or the file's own for the last
// line) branched off.
type HistoryEntry struct {
	Timeline  uint32
	SwitchLSN uint64
	Reason    string // free text, e.g. "no recovery target specified"
}

// ParseHistory parses a timeline history file (NNNNNNNN.history). PostgreSQL writes
// one line per ancestor, "<parent tli>\t<switch LSN>\t<reason>\n", oldest first, each
// new file being a copy of the parent's plus one line (writeTimeLineHistory in
// src/backend/access/transam/timeline.c).
//
// It accepts what PostgreSQL's own reader (readTimeLineHistory, same file) accepts,
// no more and no less strictly where it matters: lines that are empty or whose first
// non-blank character is '#' are skipped; a line is a decimal timeline, blanks, and an
// LSN in hex "hi/lo" form; whatever follows is the reason (PostgreSQL ignores it);
// timelines must strictly increase. An empty file gives no entries and no error.
// Entries are returned in file order, oldest first.
func ParseHistory(b []byte) ([]HistoryEntry, error) {
	var out []HistoryEntry
	for lineNo := 1; len(b) > 0; lineNo++ {
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			line, b = b, nil
		}
		bad := func(why string) ([]HistoryEntry, error) {
			return nil, fmt.Errorf("%w: line %d %q: %s", ErrBadHistory, lineNo, excerpt(line), why)
		}
		rest := trimLeftSpace(line)
		if len(rest) == 0 || rest[0] == '#' {
			continue
		}
		tli, rest, ok := decimal32(rest)
		if !ok {
			return bad("expected a numeric timeline ID")
		}
		rest = trimLeftSpace(rest)
		hi, rest, ok1 := hexPrefix32(rest)
		ok2 := len(rest) > 0 && rest[0] == '/'
		var lo uint32
		if ok2 {
			lo, rest, ok2 = hexPrefix32(rest[1:])
		}
		if !ok1 || !ok2 {
			return bad("expected a switch point LSN (hex hi/lo) after the timeline")
		}
		if len(out) > 0 && tli <= out[len(out)-1].Timeline {
			return bad(fmt.Sprintf("timeline %d does not follow %d; timeline IDs must increase", tli, out[len(out)-1].Timeline))
		}
		out = append(out, HistoryEntry{
			Timeline:  tli,
			SwitchLSN: uint64(hi)<<32 | uint64(lo),
			Reason:    string(bytes.TrimSpace(rest)),
		})
	}
	return out, nil
}

// CheckHistoryOwner checks that a history file's entries belong to timeline tli's
// file: every ancestor listed must be older than tli (readTimeLineHistory's "Timeline
// IDs must be less than child timeline's ID").
func CheckHistoryOwner(tli uint32, entries []HistoryEntry) error {
	if n := len(entries); n > 0 && entries[n-1].Timeline >= tli {
		return fmt.Errorf("%w: %s lists timeline %d, which is not older than timeline %d itself",
			ErrBadHistory, HistoryName(tli), entries[n-1].Timeline, tli)
	}
	return nil
}

// isSpace is C's isspace in the C locale, which readTimeLineHistory uses.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

func trimLeftSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	return b
}

// decimal32 reads a run of decimal digits that fits in uint32.
func decimal32(b []byte) (uint32, []byte, bool) {
	var v uint64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		v = v*10 + uint64(b[i]-'0')
		if v > math.MaxUint32 {
			return 0, b, false
		}
	}
	return uint32(v), b[i:], i > 0
}

// hexPrefix32 reads a run of hex digits (either case) that fits in uint32.
func hexPrefix32(b []byte) (uint32, []byte, bool) {
	var v uint64
	i := 0
	for ; i < len(b); i++ {
		d, ok := hexDigit(b[i])
		if !ok {
			break
		}
		v = v<<4 | uint64(d)
		if v > math.MaxUint32 {
			return 0, b, false
		}
	}
	return uint32(v), b[i:], i > 0
}

func excerpt(b []byte) string {
	const max = 80
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return string(b)
}
