package compress

import (
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// zstdCodec compresses at one level. Codecs of the same strategy share one
// encoder pool, so a codec value is cheap and Parse can be called freely.
type zstdCodec struct {
	level int // as the user wrote it, 1..19; kept so String round-trips
	pool  *zstdPool
}

// zstdPool is a free list of encoders for one strategy (the 19 user levels
// map onto four). It grows to the number of goroutines that compress at the
// same time, which the pipeline bounds with --jobs, and never beyond, so
// memory is jobs × one encoder: about 2.5 MiB (levels 1-2), 3.5 MiB (3-5),
// 6.5 MiB (6-9) or 36 MiB (10-19).
//
// A single shared Encoder with WithEncoderConcurrency(GOMAXPROCS) would be
// simpler, but it allocates all GOMAXPROCS internal encoders up front and
// cycles through all of them even when called from one goroutine: on a
// 64-core host, 64 × 36 MiB for zstd:19 whatever --jobs says. A sync.Pool would
// drop encoders at every GC and rebuild their tables over and over.
type zstdPool struct {
	level zstd.EncoderLevel
	mu    sync.Mutex
	free  []*zstd.Encoder
}

var zstdPools [zstd.SpeedBestCompression + 1]zstdPool

func init() {
	for l := range zstdPools {
		zstdPools[l].level = zstd.EncoderLevel(l)
	}
}

func (p *zstdPool) get() (*zstd.Encoder, error) {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		// Last in, first out: a lone caller keeps reusing one warm encoder.
		e := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return e, nil
	}
	p.mu.Unlock()
	return zstd.NewWriter(nil,
		zstd.WithEncoderLevel(p.level),
		// Concurrency comes from the pool, one caller per encoder.
		zstd.WithEncoderConcurrency(1),
		// An empty object still gets a frame, so every zstd payload is a
		// valid frame and a zero-length payload is corruption.
		zstd.WithZeroFrames(true),
		// Single_Segment makes the encoder always write Frame_Content_Size,
		// which lets Decompress size its output exactly and reject an
		// oversized payload before decoding.
		zstd.WithSingleSegment(true),
		zstd.WithEncoderCRC(true),
		// The window is what an encoder's memory scales with: 1 MiB instead
		// of the default 8 MiB cuts an encoder from ~9-18 MiB to ~2.5-3.5 MiB
		// (levels 1-5) at full speed, and PostgreSQL pages repeat themselves
		// at short range, so the ratio on page data is the same.
		// (WithLowerEncoderMem saves less and costs 20-30% speed.)
		zstd.WithWindowSize(1<<20),
	)
}

func (p *zstdPool) put(e *zstd.Encoder) {
	p.mu.Lock()
	p.free = append(p.free, e)
	p.mu.Unlock()
}

// zstdDecoder is shared by every zstd codec: decoding does not depend on the
// level. DecodeAll is safe for concurrent use; its GOMAXPROCS internal
// decoders cost about 170 KiB each in low-memory mode, as the output goes
// straight into the caller's buffer. WithDecodeAllCapLimit makes it
// stop at the capacity of the destination slice, which is how Decompress
// enforces its per-call limit (the decoder-wide WithDecoderMaxMemory cannot be
// set per call).
var zstdDecoder = sync.OnceValues(func() (*zstd.Decoder, error) {
	return zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecodeAllCapLimit(true),
	)
})

func newZstd(level int) *zstdCodec {
	return &zstdCodec{level: level, pool: &zstdPools[zstd.EncoderLevelFromZstd(level)]}
}

func (z *zstdCodec) ID() ID         { return Zstd }
func (z *zstdCodec) String() string { return "zstd:" + strconv.Itoa(z.level) }

func (z *zstdCodec) Compress(dst, src []byte) ([]byte, error) {
	enc, err := z.pool.get()
	if err != nil {
		return dst, fmt.Errorf("compress: creating zstd encoder: %w", err)
	}
	dst = enc.EncodeAll(src, dst)
	z.pool.put(enc)
	return dst, nil
}

// zstdVerifies reports whether payload starts with a frame that declares its
// content size and has a content checksum, which DecodeAll verifies.
func zstdVerifies(payload []byte) bool {
	var h zstd.Header
	return h.Decode(payload) == nil && h.HasFCS && h.HasCheckSum
}

func (z *zstdCodec) Decompress(dst, src []byte, maxSize int) ([]byte, error) {
	if err := checkLimit("zstd", maxSize); err != nil {
		return dst, err
	}
	dec, err := zstdDecoder()
	if err != nil {
		return dst, fmt.Errorf("compress: creating zstd decoder: %w", err)
	}
	var h zstd.Header
	if err := h.Decode(src); err != nil {
		return dst, fmt.Errorf("compress: zstd: reading frame header: %w: %w", ErrCorrupt, err)
	}
	// Room for exactly the declared size when the frame has one (pgward
	// always writes it); otherwise the decoder may need up to maxSize.
	want := maxSize
	if h.HasFCS {
		if h.FrameContentSize > uint64(maxSize) {
			return dst, tooLarge("zstd", h.FrameContentSize, maxSize)
		}
		want = int(h.FrameContentSize)
	}
	out, err := decodeZstdLimited(dec, dst, src, want)
	if errors.Is(err, zstd.ErrDecoderSizeExceeded) && want < maxSize {
		// More frames follow the first one; pgward never writes that, but it
		// is valid zstd, so decode again with all the room the caller allows.
		out, err = decodeZstdLimited(dec, dst, src, maxSize)
	}
	switch {
	case errors.Is(err, zstd.ErrDecoderSizeExceeded):
		return dst, fmt.Errorf("compress: zstd: payload decodes to more than the limit of %d bytes: %w", maxSize, ErrTooLarge)
	case err != nil:
		return dst, fmt.Errorf("compress: zstd: decoding: %w: %w", ErrCorrupt, err)
	}
	return out, nil
}

// decodeZstdLimited appends to dst the decoding of src, failing with
// zstd.ErrDecoderSizeExceeded beyond limit bytes. The limit is the capacity
// of the slice handed to DecodeAll; dst's own spare capacity is used when it
// is big enough, so a caller reusing buffers causes no allocation.
func decodeZstdLimited(dec *zstd.Decoder, dst, src []byte, limit int) ([]byte, error) {
	n := len(dst)
	inPlace := cap(dst)-n >= limit
	var buf []byte
	if inPlace {
		buf = dst[: n : n+limit]
	} else {
		buf = make([]byte, n, n+limit)
		copy(buf, dst)
	}
	out, err := dec.DecodeAll(src, buf)
	if err != nil {
		return nil, err
	}
	if inPlace && (cap(buf) == 0 || (cap(out) > 0 && &out[:1][0] == &buf[:1][0])) {
		// Decoded into dst's own array: hand back its full capacity, which
		// the full slice expression above hid from the decoder.
		out = dst[:len(out)]
	}
	return out, nil
}
