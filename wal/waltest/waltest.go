// Package waltest builds synthetic WAL segments for unit tests: valid page headers,
// records that cross pages, correct CRCs, transaction ends at chosen times. The
// end-to-end proof uses real servers' WAL; this is for the small pieces above the
// record reader (inventories, archive commands) that need WAL with known content.
package waltest

import (
	"encoding/binary"
	"hash/crc32"
	"time"

	"github.com/pgward/pgward/wal"
)

const (
	blockSize  = 8192
	longHeader = 40
	shortHdr   = 24
	recHeader  = 24
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Segment is a segment being built, little-endian as on x86.
type Segment struct {
	buf   []byte
	start uint64 // LSN of the first byte
	tli   uint32
	magic uint16
	pos   int
	prev  uint64
}

// NewSegment starts segment segNo of timeline tli for a cluster of major version
// major, with the given segment size and system identifier. The first record
// starts right after the long header.
func NewSegment(tli uint32, segNo uint64, segSize int, major int, sysID uint64) *Segment {
	magic, _ := wal.PageMagic(major)
	s := &Segment{buf: make([]byte, segSize), start: segNo * uint64(segSize), tli: tli, magic: magic}
	s.pageHeader(0, 0)
	le := binary.LittleEndian
	le.PutUint16(s.buf[2:], 0x0002) // XLP_LONG_HEADER
	le.PutUint64(s.buf[24:], sysID)
	le.PutUint32(s.buf[32:], uint32(segSize))
	le.PutUint32(s.buf[36:], blockSize)
	s.pos = longHeader
	return s
}

func (s *Segment) pageHeader(off int, remLen uint32) {
	le := binary.LittleEndian
	le.PutUint16(s.buf[off:], s.magic)
	var info uint16
	if remLen > 0 {
		info = 0x0001 // XLP_FIRST_IS_CONTRECORD
	}
	le.PutUint16(s.buf[off+2:], info)
	le.PutUint32(s.buf[off+4:], s.tli)
	le.PutUint64(s.buf[off+8:], s.start+uint64(off))
	le.PutUint32(s.buf[off+16:], remLen)
}

// Record appends a record of resource manager rmid with info flags and main data
// (plus pad bytes of block-less filler before it, to make it long). It returns the
// record's start and end LSN, and ok=false when it did not fit in the segment (the
// segment is then unchanged).
func (s *Segment) Record(rmid, info byte, main []byte, pad int) (start, end uint64, ok bool) {
	return s.record(rmid, info, main, pad, false)
}

// Overflow appends a filler record of n bytes that runs past the end of the
// segment (what fits is written), as the last record of a full segment does.
func (s *Segment) Overflow(n int) {
	s.record(10, 0, []byte{1, 2, 3, 4}, n, true)
}

func (s *Segment) record(rmid, info byte, main []byte, pad int, overflow bool) (start, end uint64, ok bool) {
	var body []byte
	if pad > 0 {
		// A long main data header covering filler + main: the reader only needs
		// the main data's first bytes, which then sit after the filler.
		body = append(body, 254)
		body = binary.LittleEndian.AppendUint32(body, uint32(pad+len(main)))
		body = append(body, make([]byte, pad)...)
	} else if len(main) > 0 {
		body = append(body, 255, byte(len(main)))
	}
	body = append(body, main...)
	rec := make([]byte, recHeader, recHeader+len(body))
	rec = append(rec, body...)
	le := binary.LittleEndian
	le.PutUint32(rec[0:], uint32(len(rec)))
	le.PutUint64(rec[8:], s.prev)
	rec[16], rec[17] = info, rmid
	crc := crc32.Update(0, castagnoli, rec[recHeader:])
	crc = crc32.Update(crc, castagnoli, rec[:20])
	le.PutUint32(rec[20:], crc)

	if !overflow && !s.fits(len(rec)) {
		return 0, 0, false
	}
	pos := s.pos
	if pos%blockSize == 0 {
		s.pageHeader(pos, 0)
		pos += shortHdr
	}
	startOff := pos
	left := rec
	for len(left) > 0 {
		if pos >= len(s.buf) {
			return 0, 0, false
		}
		if pos%blockSize == 0 {
			s.pageHeader(pos, uint32(len(left)))
			pos += shortHdr
		}
		n := copy(s.buf[pos:min(len(s.buf), (pos/blockSize+1)*blockSize)], left)
		left = left[n:]
		pos += n
	}
	s.prev = s.start + uint64(startOff)
	s.pos = (pos + 7) &^ 7
	return s.prev, s.start + uint64(pos), true
}

// fits reports whether a record of n bytes fits in the rest of the segment.
func (s *Segment) fits(n int) bool {
	pos := s.pos
	for n > 0 {
		if pos >= len(s.buf) {
			return false
		}
		if pos%blockSize == 0 {
			pos += shortHdr
		}
		take := min(n, (pos/blockSize+1)*blockSize-pos)
		n -= take
		pos += take
	}
	return pos <= len(s.buf)
}

// Commit appends a transaction commit record with commit time at (xl_xact_commit:
// xact_time first).
func (s *Segment) Commit(at time.Time) (start, end uint64, ok bool) {
	return s.Record(1, 0x00, binary.LittleEndian.AppendUint64(nil, uint64(at.Sub(pgEpoch).Microseconds())), 0)
}

// Filler appends a non-transaction record of about n bytes.
func (s *Segment) Filler(n int) (start, end uint64, ok bool) {
	return s.Record(10, 0x00, []byte{1, 2, 3, 4}, n)
}

// Bytes returns the segment as built: its unused rest is zeros, like a
// zero-padded partial segment.
func (s *Segment) Bytes() []byte { return s.buf }

var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
