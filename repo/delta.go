package repo

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/cespare/xxhash/v2"
)

// Page digests and page deltas (docs/repository-format.md, "Format 2"): a changed chunk of a
// relation file whose pages mostly stayed the same is stored as the changed pages
// over the chunk that held the same file range before. Which pages changed is found
// by comparing the new pages with the digests of the old chunk, so the old chunk is
// never read during a backup.

// PageSize is the page size of relation files that deltas are cut in.
const PageSize = 8192

var (
	digestMagic = [4]byte{'P', 'G', 'W', 'G'}
	deltaMagic  = [4]byte{'P', 'G', 'W', 'D'}
)

// Digest is the page digests of one chunk.
type Digest struct {
	// ID is the chunk described: a digest found under another chunk's name is
	// refused, not used.
	ID Hash
	// Length is the chunk's plaintext length.
	Length uint32
	// Pages are the 64-bit xxHash of each page, in order.
	Pages []uint64
}

// DigestOf computes the digest of a chunk whose length is a multiple of PageSize.
func DigestOf(id Hash, plain []byte) Digest {
	d := Digest{ID: id, Length: uint32(len(plain)), Pages: make([]uint64, len(plain)/PageSize)}
	for i := range d.Pages {
		d.Pages[i] = xxhash.Sum64(plain[i*PageSize : (i+1)*PageSize])
	}
	return d
}

func (d Digest) encode() []byte {
	b := make([]byte, 0, 44+8*len(d.Pages))
	b = append(b, digestMagic[:]...)
	b = append(b, 1, 0, 0, 0)
	b = append(b, d.ID[:]...)
	b = binary.LittleEndian.AppendUint32(b, d.Length)
	for _, p := range d.Pages {
		b = binary.LittleEndian.AppendUint64(b, p)
	}
	return b
}

func decodeDigest(b []byte, want Hash) (Digest, error) {
	var d Digest
	if len(b) < 44 || !bytes.Equal(b[:4], digestMagic[:]) || b[4] != 1 {
		return d, fmt.Errorf("%w: not a page digest", ErrCorrupt)
	}
	copy(d.ID[:], b[8:40])
	if d.ID != want {
		return d, fmt.Errorf("%w: the page digest of chunk %s describes chunk %s", ErrCorrupt, want, d.ID)
	}
	d.Length = binary.LittleEndian.Uint32(b[40:])
	rest := b[44:]
	if len(rest)%8 != 0 || uint64(len(rest)/8) != uint64(d.Length)/PageSize {
		return d, fmt.Errorf("%w: page digest of chunk %s has a wrong size", ErrCorrupt, want)
	}
	d.Pages = make([]uint64, len(rest)/8)
	for i := range d.Pages {
		d.Pages[i] = binary.LittleEndian.Uint64(rest[i*8:])
	}
	return d, nil
}

// ChangedPages lists the pages of plain that differ from the chunk base describes:
// every page past base's length counts as changed.
func ChangedPages(plain []byte, base Digest) []uint32 {
	var out []uint32
	for i := 0; i*PageSize < len(plain); i++ {
		end := min((i+1)*PageSize, len(plain))
		if i < len(base.Pages) && end-i*PageSize == PageSize && xxhash.Sum64(plain[i*PageSize:end]) == base.Pages[i] {
			continue
		}
		out = append(out, uint32(i))
	}
	return out
}

// Delta is a chunk stored as pages over its base chunk.
type Delta struct {
	Base   Hash
	Length uint32 // the chunk's plaintext length
	Pages  []uint32
	Data   []byte // len(Pages) pages (the last may be shorter, at the chunk's end)
}

// encodeDelta builds the plaintext of a delta for the chunk plain over base.
func encodeDelta(base Hash, plain []byte, pages []uint32) []byte {
	b := make([]byte, 0, 52+4*len(pages)+len(pages)*PageSize)
	b = append(b, deltaMagic[:]...)
	b = append(b, 1, 0, 0, 0)
	b = append(b, base[:]...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(plain)))
	b = binary.LittleEndian.AppendUint32(b, PageSize)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(pages)))
	for _, p := range pages {
		b = binary.LittleEndian.AppendUint32(b, p)
	}
	for _, p := range pages {
		b = append(b, plain[int(p)*PageSize:min(int(p+1)*PageSize, len(plain))]...)
	}
	return b
}

func decodeDelta(b []byte) (Delta, error) {
	var d Delta
	bad := func(why string) (Delta, error) { return d, fmt.Errorf("%w: page delta %s", ErrCorrupt, why) }
	if len(b) < 52 || !bytes.Equal(b[:4], deltaMagic[:]) || b[4] != 1 {
		return bad("has no delta magic")
	}
	copy(d.Base[:], b[8:40])
	d.Length = binary.LittleEndian.Uint32(b[40:])
	if ps := binary.LittleEndian.Uint32(b[44:]); ps != PageSize {
		return bad(fmt.Sprintf("has page size %d", ps))
	}
	n := binary.LittleEndian.Uint32(b[48:])
	rest := b[52:]
	if uint64(len(rest)) < uint64(n)*4 {
		return bad("is truncated in its page list")
	}
	d.Pages = make([]uint32, n)
	want := 0
	for i := range d.Pages {
		d.Pages[i] = binary.LittleEndian.Uint32(rest[i*4:])
		if i > 0 && d.Pages[i] <= d.Pages[i-1] || uint64(d.Pages[i])*PageSize >= uint64(d.Length) {
			return bad("has pages out of order or past the chunk's end")
		}
		want += min(PageSize, int(d.Length)-int(d.Pages[i])*PageSize)
	}
	d.Data = rest[n*4:]
	if len(d.Data) != want {
		return bad("has a wrong size for its pages")
	}
	return d, nil
}

// apply writes the delta's pages over base (resized to the chunk's length; bytes a
// base lacks are zero) and returns the chunk.
func (d Delta) apply(base []byte) []byte {
	out := base
	if cap(out) < int(d.Length) {
		out = make([]byte, d.Length)
		copy(out, base)
	} else {
		old := len(out)
		out = out[:d.Length]
		if old < len(out) {
			clear(out[old:])
		}
	}
	data := d.Data
	for _, p := range d.Pages {
		off := int(p) * PageSize
		n := min(PageSize, int(d.Length)-off)
		copy(out[off:off+n], data[:n])
		data = data[n:]
	}
	return out
}
