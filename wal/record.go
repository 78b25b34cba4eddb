package wal

import (
	"encoding/binary"
	"hash/crc32"
	"time"
)

// Record layouts, from src/include/access/xlogrecord.h and xlog_internal.h (identical in
// 13–18 where used here), in the server's byte order:
//
//	XLogRecord (SizeOfXLogRecord = 24)
//	offset  size  field
//	0       4     xl_tot_len (header, block headers and data, main data)
//	4       4     xl_xid
//	8       8     xl_prev (start LSN of the previous record)
//	16      1     xl_info (high nibble: resource manager's own flags)
//	17      1     xl_rmid
//	20      4     xl_crc: CRC-32C of the bytes after the header, then of bytes 0..19
//
// Records start MAXALIGNed (8 bytes) and may cross page boundaries, the header
// included; every page starts with a short header (24 bytes, long on a segment's first
// page) whose xlp_rem_len says how much of a record continues on it.
//
// After the header come block headers (id 0..32), then optional origin (id 253) and
// top-level xid (id 252) fields, then the main data header (id 255 with a 1-byte
// length, or 254 with a 4-byte length), always last; the block data follow, and the
// main data fill the end of the record.
const (
	recordHeaderSize = 24
	shortPageHeader  = 24
	maxAlign         = 8

	xlpFirstIsContRecord = 0x0001

	blockIDMaxBlock   = 32
	blockIDTopXID     = 252
	blockIDOrigin     = 253
	blockIDDataLong   = 254
	blockIDDataShort  = 255
	bkpBlockHasImage  = 0x10
	bkpBlockSameRel   = 0x80
	bkpImageHasHole   = 0x01
	relFileNodeSize   = 12
	blockHeaderSize   = 4
	imageHeaderSize   = 5
	compressHdrSize   = 2
	maxRecordLength   = 0x3fffe000 // MaxAllocSize - 8 kB: xlogreader's own bound
	rmXLOG            = 0
	rmXact            = 1
	xlogSwitch        = 0x40
	xactOpMask        = 0x70
	xactCommit        = 0x00
	xactAbort         = 0x20
	xactCommitPrepare = 0x30
	xactAbortPrepare  = 0x40
)

// bkpImageCompressed is the mask of bimg_info bits meaning "compressed image": 0x02
// (BKPIMAGE_IS_COMPRESSED) up to PostgreSQL 14; from 15 on, one bit per method
// (BKPIMAGE_COMPRESS_PGLZ 0x04, _LZ4 0x08, _ZSTD 0x10), 0x02 being BKPIMAGE_APPLY.
func bkpImageCompressed(major int) byte {
	if major <= 14 {
		return 0x02
	}
	return 0x1C
}

// pgEpoch is PostgreSQL's timestamp epoch: TimestampTz counts microseconds from it.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// SegmentSummary is what the records beginning in one segment say about recovery:
// how far valid WAL reaches, and the last transaction end, which is the last point a
// recovery_target_time can stop at.
type SegmentSummary struct {
	// End is the end LSN of the last complete, valid record that begins in the
	// segment; zero when none does. In a partial (zero-padded) segment it is the end
	// of the WAL written so far.
	End uint64
	// LastRecord is the start LSN of that record. A recovery_target_lsn is reached
	// only at a record starting at or after it (recoveryStopsBefore/After), so
	// targets up to LastRecord are reachable.
	LastRecord uint64
	// Xacts counts commit and abort records.
	Xacts int
	// LastXactTime is the latest commit or abort time among those records (zero
	// time when there is none) and LastXactEnd the end LSN of the last of them.
	// PostgreSQL stops at a recovery_target_time only on such a record whose time
	// is after the target (xlogrecovery.c, recoveryStopsBefore), so a time target is
	// reachable only if it lies before an archived one. Commit times are taken
	// before the record is inserted, so concurrent commits may be logged slightly
	// out of time order: the latest, not the last, is what counts.
	LastXactTime time.Time
	LastXactEnd  uint64
}

// ScanSegment reads the records that begin in a segment (or a zero-padded partial
// segment) and summarises them. It stops quietly where valid WAL ends: at zeros, at a
// page that is not the one expected (a recycled segment's old content), at a record
// whose CRC or back-link is wrong, or at a record that continues into the next
// segment (it belongs to whoever reads both). The segment's own header must be valid
// (ParseSegmentHeader); the name is not checked here.
func ScanSegment(seg []byte) (SegmentSummary, error) {
	h, err := ParseSegmentHeader(seg)
	if err != nil {
		return SegmentSummary{}, err
	}
	if int64(len(seg)) != int64(h.SegSize) {
		return SegmentSummary{}, fail(ErrWrongSize, "is %d bytes but its header says segments are %s", len(seg), formatSize(uint64(h.SegSize)))
	}
	s := scanner{seg: seg, h: h, blk: int(h.BlockSize), compressed: bkpImageCompressed(h.Major())}
	s.order = binary.ByteOrder(binary.LittleEndian)
	if h.BigEndian {
		s.order = binary.BigEndian
	}
	return s.run(), nil
}

type scanner struct {
	seg        []byte
	h          SegmentHeader
	order      binary.ByteOrder
	blk        int
	compressed byte
	buf        []byte // a record that crosses a page boundary, reassembled
}

// pageOK checks the header of the page at offset off (a multiple of the page size),
// returning the header's size and the continuation length it announces.
func (s *scanner) pageOK(off int) (hdrSize int, remLen uint32, contRecord bool, ok bool) {
	if off+shortPageHeader > len(s.seg) {
		return 0, 0, false, false
	}
	p := s.seg[off:]
	if s.order.Uint16(p[0:]) != s.h.Magic {
		return 0, 0, false, false
	}
	info := s.order.Uint16(p[2:])
	if info&^xlpAllFlags != 0 || s.order.Uint64(p[8:]) != s.h.PageAddr+uint64(off) {
		return 0, 0, false, false
	}
	hdrSize = shortPageHeader
	if info&xlpLongHeader != 0 {
		hdrSize = LongHeaderSize
	}
	return hdrSize, s.order.Uint32(p[16:]), info&xlpFirstIsContRecord != 0, true
}

func alignUp(n int) int { return (n + maxAlign - 1) &^ (maxAlign - 1) }

func (s *scanner) run() SegmentSummary {
	var sum SegmentSummary
	// Skip the tail of a record that began in the previous segment.
	pos := 0
	for {
		hdr, rem, cont, ok := s.pageOK(pos)
		if !ok {
			return sum
		}
		if !cont {
			pos += hdr
			break
		}
		if int(rem) < s.blk-hdr {
			pos += hdr + alignUp(int(rem))
			break
		}
		pos += s.blk
		if pos >= len(s.seg) {
			return sum
		}
	}
	var prev uint64 // start LSN of the previous record; 0 before the first
	for pos+4 <= len(s.seg) {
		if pos%s.blk == 0 {
			hdr, _, cont, ok := s.pageOK(pos)
			if !ok || cont {
				return sum
			}
			pos += hdr
			continue
		}
		rec, next, ok := s.record(pos)
		if !ok {
			return sum
		}
		start := s.h.PageAddr + uint64(pos)
		if prev != 0 && s.order.Uint64(rec[8:]) != prev {
			return sum
		}
		prev = start
		end := s.h.PageAddr + uint64(next)
		sum.End, sum.LastRecord = end, start
		rmid, info := rec[17], rec[16]
		if rmid == rmXact {
			switch info & xactOpMask {
			case xactCommit, xactAbort, xactCommitPrepare, xactAbortPrepare:
				if t, ok := s.xactTime(rec); ok {
					sum.Xacts++
					sum.LastXactEnd = end
					if t.After(sum.LastXactTime) {
						sum.LastXactTime = t
					}
				}
			}
		}
		if rmid == rmXLOG && info&0xF0 == xlogSwitch {
			return sum // the rest of the segment is padding
		}
		pos = alignUp(next)
	}
	return sum
}

// record returns the record starting at offset pos (reassembled when it crosses
// pages) and the offset just past its last byte. ok is false when no valid, complete
// record starts there.
func (s *scanner) record(pos int) (rec []byte, next int, ok bool) {
	totLen := int(s.order.Uint32(s.seg[pos:]))
	if totLen < recordHeaderSize || totLen > maxRecordLength {
		return nil, 0, false
	}
	pageEnd := (pos/s.blk + 1) * s.blk
	if pos+totLen <= pageEnd {
		rec = s.seg[pos : pos+totLen]
		next = pos + totLen
	} else {
		s.buf = append(s.buf[:0], s.seg[pos:pageEnd]...)
		p := pageEnd
		for len(s.buf) < totLen {
			hdr, rem, cont, ok := s.pageOK(p)
			if !ok || !cont || int(rem) != totLen-len(s.buf) {
				return nil, 0, false // torn, or continues into the next segment
			}
			take := min(totLen-len(s.buf), s.blk-hdr)
			s.buf = append(s.buf, s.seg[p+hdr:p+hdr+take]...)
			next = p + hdr + take
			p += s.blk
		}
		rec = s.buf
	}
	crc := crc32.Update(0, castagnoli, rec[recordHeaderSize:])
	crc = crc32.Update(crc, castagnoli, rec[:20])
	if crc != s.order.Uint32(rec[20:]) {
		return nil, 0, false
	}
	return rec, next, true
}

// xactTime returns the xact_time that starts a commit or abort record's main data
// (xl_xact_commit and xl_xact_abort in src/include/access/xact.h).
func (s *scanner) xactTime(rec []byte) (time.Time, bool) {
	main, ok := s.mainData(rec)
	if !ok || len(main) < 8 {
		return time.Time{}, false
	}
	us := int64(s.order.Uint64(main))
	return pgEpoch.Add(time.Duration(us) * time.Microsecond), true
}

// mainData walks the block headers (DecodeXLogRecord in xlogreader.c) to find the
// main data's length; the main data are the record's last bytes.
func (s *scanner) mainData(rec []byte) ([]byte, bool) {
	p := recordHeaderSize
	total := len(rec)
	data := 0 // bytes of block data and images announced so far
	for p < total-data {
		id := rec[p]
		p++
		switch {
		case id == blockIDDataShort:
			if p+1 > total {
				return nil, false
			}
			n := int(rec[p])
			return tail(rec, n)
		case id == blockIDDataLong:
			if p+4 > total {
				return nil, false
			}
			n := int(s.order.Uint32(rec[p:]))
			return tail(rec, n)
		case id == blockIDOrigin:
			p += 2
		case id == blockIDTopXID:
			p += 4
		case id <= blockIDMaxBlock:
			if p+3 > total {
				return nil, false
			}
			forkFlags := rec[p]
			data += int(s.order.Uint16(rec[p+1:]))
			p += blockHeaderSize - 1
			if forkFlags&bkpBlockHasImage != 0 {
				if p+imageHeaderSize > total {
					return nil, false
				}
				data += int(s.order.Uint16(rec[p:]))
				info := rec[p+4]
				p += imageHeaderSize
				if info&bkpImageHasHole != 0 && info&s.compressed != 0 {
					p += compressHdrSize
				}
			}
			if forkFlags&bkpBlockSameRel == 0 {
				p += relFileNodeSize
			}
			p += 4 // block number
		default:
			return nil, false
		}
	}
	return nil, true // no main data
}

func tail(rec []byte, n int) ([]byte, bool) {
	if n > len(rec)-recordHeaderSize {
		return nil, false
	}
	return rec[len(rec)-n:], true
}
