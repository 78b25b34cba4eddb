package compress

import (
	"encoding/binary"
	"math/rand/v2"
)

// pgbenchPages returns size bytes (rounded down to whole 8 KiB pages) laid out
// like a freshly loaded pgbench_accounts heap: a page header, a line pointer
// array, and 61 tuples of (aid int, bid int, abalance int, filler char(84))
// per page with increasing aids. This is what most chunks of a real cluster
// look like to a compressor: mostly repeated structure, a few changing ints.
func pgbenchPages(size int) []byte {
	const (
		pageSize   = 8192
		headerSize = 24
		tupleLen   = 24 + 3*4 + 1 + 84 // header, three int4, short varlena
		tupleSlot  = (tupleLen + 7) &^ 7
		perPage    = 61
	)
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, size/pageSize*pageSize)
	aid := uint32(1)
	for blk := 0; blk*pageSize < len(buf); blk++ {
		p := buf[blk*pageSize : (blk+1)*pageSize]
		le := binary.LittleEndian
		le.PutUint32(p[0:], 0)                             // pd_lsn.xlogid
		le.PutUint32(p[4:], 0x01000000+uint32(blk)*0x2100) // pd_lsn.xrecoff
		le.PutUint16(p[8:], uint16(rng.Uint32()))          // pd_checksum
		le.PutUint16(p[10:], 0)                            // pd_flags
		le.PutUint16(p[12:], headerSize+4*perPage)         // pd_lower
		le.PutUint16(p[14:], pageSize-perPage*tupleSlot)   // pd_upper
		le.PutUint16(p[16:], pageSize)                     // pd_special
		le.PutUint16(p[18:], pageSize|4)                   // pd_pagesize_version
		le.PutUint32(p[20:], 0)                            // pd_prune_xid
		for i := range perPage {
			off := pageSize - (i+1)*tupleSlot
			lp := uint32(off) | 1<<15 | uint32(tupleLen)<<17 // LP_NORMAL
			le.PutUint32(p[headerSize+4*i:], lp)
			t := p[off : off+tupleLen]
			le.PutUint32(t[0:], 740)               // t_xmin: one bulk-load transaction
			le.PutUint32(t[4:], 0)                 // t_xmax
			le.PutUint32(t[8:], 0)                 // t_cid
			le.PutUint16(t[12:], uint16(blk>>16))  // t_ctid block hi
			le.PutUint16(t[14:], uint16(blk))      // t_ctid block lo
			le.PutUint16(t[16:], uint16(i+1))      // t_ctid offset
			le.PutUint16(t[18:], 4)                // t_infomask2: natts
			le.PutUint16(t[20:], 0x0902)           // t_infomask
			t[22] = 24                             // t_hoff
			le.PutUint32(t[24:], aid)              // aid
			le.PutUint32(t[28:], (aid-1)/100000+1) // bid
			le.PutUint32(t[32:], 0)                // abalance
			t[36] = 85<<1 | 1                      // short varlena header
			for j := 37; j < tupleLen; j++ {
				t[j] = ' '
			}
			aid++
		}
	}
	return buf
}

// randomBytes returns n reproducible incompressible bytes.
func randomBytes(n int) []byte {
	rng := rand.NewChaCha8([32]byte{'p', 'g', 'w'})
	b := make([]byte, n)
	_, _ = rng.Read(b)
	return b
}
