package compress

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/pierrec/lz4/v4"
)

// lz4MaxRatio bounds how much an LZ4 block can expand: at best one input byte
// (a 255 in a match-length run) yields 255 output bytes. A length prefix
// claiming more than this is corruption, caught before anything is allocated.
const lz4MaxRatio = 255

// The compressors hold hash tables (tens of KiB for the fast one, more for HC),
// so they are pooled rather than allocated per call; the pools hold at most
// one per concurrently running caller.
var (
	lz4FastPool = sync.Pool{New: func() any { return new(lz4.Compressor) }}
	lz4HCPool   = sync.Pool{New: func() any { return new(lz4.CompressorHC) }}
)

// lz4Codec writes uvarint(len) || raw LZ4 block; see the package comment.
// Level 1 is the fast compressor, 2..9 the HC compressor.
type lz4Codec struct {
	level int
}

func newLZ4(level int) lz4Codec { return lz4Codec{level: level} }

func (c lz4Codec) ID() ID { return LZ4 }

func (c lz4Codec) String() string {
	if c.level == 1 {
		return "lz4"
	}
	return "lz4:" + strconv.Itoa(c.level)
}

// hcDepth maps levels 2..9 onto the library's search depths Level2..Level9.
var hcDepth = [...]lz4.CompressionLevel{2: lz4.Level2, lz4.Level3, lz4.Level4, lz4.Level5, lz4.Level6, lz4.Level7, lz4.Level8, lz4.Level9}

func (c lz4Codec) Compress(dst, src []byte) ([]byte, error) {
	start := len(dst)
	dst = binary.AppendUvarint(dst, uint64(len(src)))
	if len(src) == 0 {
		return dst, nil
	}
	// With CompressBlockBound bytes of room the block compressors always
	// succeed, incompressible input included, so there is no fallback path.
	hdr := len(dst)
	dst = slices.Grow(dst, lz4.CompressBlockBound(len(src)))
	room := dst[hdr : hdr+lz4.CompressBlockBound(len(src))]
	var n int
	var err error
	if c.level == 1 {
		comp := lz4FastPool.Get().(*lz4.Compressor)
		n, err = comp.CompressBlock(src, room)
		lz4FastPool.Put(comp)
	} else {
		comp := lz4HCPool.Get().(*lz4.CompressorHC)
		comp.Level = hcDepth[c.level]
		n, err = comp.CompressBlock(src, room)
		lz4HCPool.Put(comp)
	}
	if err == nil && n == 0 {
		err = fmt.Errorf("compressor returned no output")
	}
	if err != nil {
		return dst[:start], fmt.Errorf("compress: lz4: compressing %d bytes: %w", len(src), err)
	}
	return dst[:hdr+n], nil
}

func (c lz4Codec) Decompress(dst, src []byte, maxSize int) ([]byte, error) {
	if err := checkLimit("lz4", maxSize); err != nil {
		return dst, err
	}
	size, k := binary.Uvarint(src)
	if k <= 0 {
		return dst, fmt.Errorf("compress: lz4: reading length prefix: %w", ErrCorrupt)
	}
	block := src[k:]
	if size > uint64(maxSize) {
		return dst, tooLarge("lz4", size, maxSize)
	}
	if size > lz4MaxRatio*uint64(len(block)) || (size == 0) != (len(block) == 0) {
		return dst, fmt.Errorf("compress: lz4: length prefix %d does not fit a %d-byte block: %w", size, len(block), ErrCorrupt)
	}
	start := len(dst)
	out := slices.Grow(dst, int(size))[:start+int(size)]
	// UncompressBlock never writes past its destination, so a block that
	// decodes to more than the prefix says fails here instead of growing.
	n, err := lz4.UncompressBlock(block, out[start:])
	if err != nil {
		return dst, fmt.Errorf("compress: lz4: decoding block: %w: %w", ErrCorrupt, err)
	}
	if uint64(n) != size {
		return dst, fmt.Errorf("compress: lz4: block decodes to %d bytes, length prefix says %d: %w", n, size, ErrCorrupt)
	}
	return out, nil
}
