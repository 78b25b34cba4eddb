// Package compress holds pgward's compression codecs (zstd, lz4 and none)
// behind one small interface, and nothing else.
//
// A codec turns one whole object payload (a chunk, a WAL segment, a manifest)
// into one compressed payload and back; there is no streaming. The codec's ID
// is what the repository stores in each object header, so an object can be
// decoded without knowing the level it was written with: ByID returns a codec
// that decodes everything written under that ID.
//
// # Payload formats
//
// These are part of the repository format (docs/repository-format.md cites
// them), so they never change for an existing ID:
//
//   - None (ID 0): the payload is the data, byte for byte.
//   - Zstd (ID 1): the payload is one standard Zstandard frame (RFC 8878)
//     without a dictionary. pgward writes the frame with Single_Segment set,
//     so Frame_Content_Size is always present, and with a content checksum.
//     Readers accept any valid frame sequence whose decoded size fits the
//     caller's limit.
//   - LZ4 (ID 2): the payload is the decompressed length as an unsigned
//     varint (encoding/binary's Uvarint, at most 10 bytes) followed by one
//     raw LZ4 block (the LZ4 block format, no LZ4 frame header, no checksum).
//     An empty input is encoded as the single byte 0x00. The length prefix is
//     there because the block format does not record it and the reader must
//     size its output before decoding.
//
// Integrity is mostly not this package's job: objects are verified by their GCM
// tag or content hash elsewhere. VerifiesContent tells the repository when a
// payload's own checksum (zstd's) already covered every decoded byte, so that it
// need not hash the plaintext a second time.
//
// # Invariants
//
// Codecs are safe for concurrent use by any number of goroutines; the backup
// pipeline calls one codec from all its workers at once. Their working state
// (zstd encoders and decoders, LZ4 hash tables) is created lazily and reused,
// never per call. Encoder state is kept for at most as many goroutines as have
// compressed at the same time (the pipeline's --jobs), so memory follows
// --jobs, not the number of CPUs or the amount of data; zstd decoders are
// small and bounded by GOMAXPROCS.
//
// Decompress never produces, and never allocates room for, more than the
// caller's maxSize bytes of output: a corrupt or hostile payload that claims a
// huge size fails with ErrTooLarge instead of exhausting memory.
package compress

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ID identifies a codec in object headers. The values are part of the
// repository format and never change meaning.
type ID uint8

// Codec IDs as stored in the repository.
const (
	None ID = 0
	Zstd ID = 1
	LZ4  ID = 2
)

// String returns the codec family name, or "codec(N)" for an unknown ID.
func (id ID) String() string {
	switch id {
	case None:
		return "none"
	case Zstd:
		return "zstd"
	case LZ4:
		return "lz4"
	}
	return "codec(" + strconv.Itoa(int(id)) + ")"
}

// Codec compresses and decompresses whole payloads. Implementations are safe
// for concurrent use.
type Codec interface {
	// ID is the value to store in the object header.
	ID() ID
	// String is the canonical spec, accepted by Parse: "none", "zstd:3", "lz4".
	String() string
	// Compress appends the compressed form of src to dst. dst and src must not
	// overlap.
	Compress(dst, src []byte) ([]byte, error)
	// Decompress appends the decompressed form of src to dst. It fails, with
	// an error wrapping ErrTooLarge, when the output would exceed maxSize
	// bytes, and it never allocates room for more than that; a payload that
	// is not valid for the codec fails with an error wrapping ErrCorrupt. On
	// error the returned slice is dst unchanged. dst and src must not overlap.
	//
	// maxSize is also an allocation budget (a zstd frame from another writer
	// may not declare its size, and then room for maxSize bytes is reserved),
	// so pass the real bound, such as the maximum chunk size, not math.MaxInt.
	Decompress(dst, src []byte, maxSize int) ([]byte, error)
}

// Errors returned (wrapped) by Decompress.
var (
	// ErrCorrupt means the payload is not a valid encoding for the codec.
	ErrCorrupt = errors.New("compressed data is corrupt")
	// ErrTooLarge means the payload decodes to more than the caller's limit.
	ErrTooLarge = errors.New("decompressed data exceeds the size limit")
)

// DefaultZstdLevel is the level used for the spec "zstd".
const DefaultZstdLevel = 3

// Parse returns the codec named by spec: "none", "zstd" (level 3), "zstd:N"
// with N in 1..19, "lz4" or "lz4:N" with N in 1..9. Case and surrounding
// spaces are ignored.
//
// zstd levels follow the zstd command line's numbering but are mapped onto
// the four encoder strategies of the pure-Go encoder (1-2 fastest, 3-5
// default, 6-9 better, 10-19 best), so neighbouring levels may behave alike.
// lz4:1 is the same as lz4 (the fast compressor); 2..9 select the
// high-compression compressor with a growing search depth.
func Parse(spec string) (Codec, error) {
	s := strings.ToLower(strings.TrimSpace(spec))
	name, arg, hasArg := strings.Cut(s, ":")
	level := 0
	if hasArg {
		n, err := strconv.Atoi(arg)
		if err != nil {
			return nil, fmt.Errorf("compress: bad level in codec %q: %q is not a number", spec, arg)
		}
		level = n
	}
	switch name {
	case "none":
		if hasArg {
			return nil, fmt.Errorf("compress: codec %q takes no level", spec)
		}
		return noneCodec{}, nil
	case "zstd":
		if !hasArg {
			level = DefaultZstdLevel
		}
		if level < 1 || level > 19 {
			return nil, fmt.Errorf("compress: bad zstd level in %q (use 1..19)", spec)
		}
		return newZstd(level), nil
	case "lz4":
		if !hasArg {
			level = 1
		}
		if level < 1 || level > 9 {
			return nil, fmt.Errorf("compress: bad lz4 level in %q (use 1..9)", spec)
		}
		return newLZ4(level), nil
	}
	return nil, fmt.Errorf("compress: unknown codec %q (use zstd, zstd:N, lz4 or none)", spec)
}

// ByID returns a codec that decodes payloads written under id, whatever level
// they were written with. Compressing with it uses the family's default level.
// VerifiesContent reports whether decoding payload, written under codec id,
// checks a checksum of all of the decoded bytes, so that a successful
// Decompress proves the output is what the writer compressed (up to the
// checksum's strength: zstd's is the low 32 bits of XXH64, on top of the
// format's own structural checks). It is true for a zstd frame that declares
// its content size and carries a content checksum, which is every frame pgward
// writes; a caller that also checks the decoded length against what it
// expects knows the frame covered the whole payload. None and LZ4 carry no
// checksum.
func VerifiesContent(id ID, payload []byte) bool {
	return id == Zstd && zstdVerifies(payload)
}

func ByID(id ID) (Codec, error) {
	switch id {
	case None:
		return noneCodec{}, nil
	case Zstd:
		return newZstd(DefaultZstdLevel), nil
	case LZ4:
		return newLZ4(1), nil
	}
	return nil, fmt.Errorf("compress: unknown codec id %d in object header (written by a newer pgward, or a corrupt header)", uint8(id))
}

// checkLimit validates the caller's maxSize; a negative limit is a bug in the
// caller, not bad data.
func checkLimit(codec string, maxSize int) error {
	if maxSize < 0 {
		return fmt.Errorf("compress: %s: negative size limit %d", codec, maxSize)
	}
	return nil
}

// tooLarge builds the error for output that would exceed maxSize.
func tooLarge(codec string, size uint64, maxSize int) error {
	return fmt.Errorf("compress: %s: payload decodes to %d bytes, more than the limit of %d: %w", codec, size, maxSize, ErrTooLarge)
}

// noneCodec stores data as is.
type noneCodec struct{}

func (noneCodec) ID() ID         { return None }
func (noneCodec) String() string { return "none" }

func (noneCodec) Compress(dst, src []byte) ([]byte, error) {
	return append(dst, src...), nil
}

func (noneCodec) Decompress(dst, src []byte, maxSize int) ([]byte, error) {
	if err := checkLimit("none", maxSize); err != nil {
		return dst, err
	}
	if len(src) > maxSize {
		return dst, tooLarge("none", uint64(len(src)), maxSize)
	}
	return append(dst, src...), nil
}
