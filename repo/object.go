package repo

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"

	"github.com/pgward/pgward/compress"
	"github.com/pgward/pgward/internal/zeros"
)

// Object envelope, format version 1 (docs/repository-format.md, "Objects"):
//
//	offset size
//	0      4    magic "PGWO"
//	4      1    format version (1)
//	5      1    codec id (compress.ID)
//	6      1    flags (bit 0: encrypted)
//	7      1    reserved, zero
//	8      8    key id (zero when not encrypted), big endian
//	16     8    plaintext length, big endian
//	24     32   content hash: HMAC-SHA256(chunk-id key, plaintext)
//	56     ...  body: compressed plaintext, sealed with crypt when encrypted
//
// The whole header is the GCM additional data, so no header field can be changed
// without the tag failing.
const (
	headerSize    = 56
	objectVersion = 1
	flagEncrypted = 1
)

var objectMagic = [4]byte{'P', 'G', 'W', 'O'}

// ErrCorrupt is wrapped by every error about an object whose bytes are not what
// was written.
var ErrCorrupt = errors.New("corrupted object")

// Hash is a keyed content hash; for chunks it is also the chunk's ID.
type Hash [32]byte

func (h Hash) String() string { return fmt.Sprintf("%x", h[:]) }

// ParseHash parses 64 hex digits.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 64 {
		return h, fmt.Errorf("bad hash %q", s)
	}
	for i := 0; i < 32; i++ {
		hi, ok1 := unhex(s[2*i])
		lo, ok2 := unhex(s[2*i+1])
		if !ok1 || !ok2 {
			return h, fmt.Errorf("bad hash %q", s)
		}
		h[i] = hi<<4 | lo
	}
	return h, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// MarshalText makes a Hash a hex string in JSON.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText parses a hex string.
func (h *Hash) UnmarshalText(b []byte) error {
	v, err := ParseHash(string(b))
	*h = v
	return err
}

// ContentHash computes the keyed hash of plaintext.
func (r *Repo) ContentHash(plaintext []byte) Hash {
	if len(plaintext) >= zeroHashMin && zeros.Is(plaintext) {
		return r.zeroHash(plaintext)
	}
	return r.keyedHash(plaintext)
}

// zeroHashMin is the smallest run of zeros whose hash is remembered: below it,
// hashing costs no more than the lookup.
const zeroHashMin = 64 << 10

// zeroHash is the keyed hash of a run of zeros, computed once per length: the
// WAL segment that ends every backup is mostly its zero-filled tail (on an idle
// server one page of records and 16 MiB less 8 kB of zeros), and hashing it was
// the largest piece of work left after the last byte arrived.
func (r *Repo) zeroHash(run []byte) Hash {
	n := len(run)
	if h, ok := r.zeroHashes.Load(n); ok {
		return h.(Hash)
	}
	h := r.keyedHash(run)
	r.zeroHashes.Store(n, h)
	return h
}

func (r *Repo) keyedHash(plaintext []byte) Hash {
	m, _ := r.hashers.Get().(hash.Hash)
	if m == nil {
		m = hmac.New(sha256.New, r.idKey)
	}
	m.Write(plaintext)
	var h Hash
	m.Sum(h[:0])
	m.Reset()
	r.hashers.Put(m)
	return h
}

// Seal builds an object from plaintext: header, then the compressed (and, in an
// encrypted repository, sealed) body, appended to dst. hash must be
// r.ContentHash(plaintext); it is passed in because the chunk pipeline already
// computed it to decide whether the chunk is new. When compression does not
// shrink the data the object is stored uncompressed.
func (r *Repo) Seal(dst []byte, plaintext []byte, hash Hash, codec compress.Codec, scratch []byte) (obj []byte, scratchOut []byte, err error) {
	var compressed []byte
	if codec != nil && codec.ID() != compress.None {
		scratch, err = codec.Compress(scratch[:0], plaintext)
		if err != nil {
			return nil, scratch, fmt.Errorf("compress: %w", err)
		}
		compressed = scratch
	}
	obj, err = r.appendObject(dst, plaintext, compressed, hash, codec)
	return obj, scratch, err
}

// sealCompressed is Seal for a caller that compressed the plaintext itself
// (compressed == nil: not compressed).
func (r *Repo) sealCompressed(plaintext, compressed []byte, hash Hash, codec compress.Codec) ([]byte, error) {
	n := len(plaintext)
	if compressed != nil && len(compressed) < n {
		n = len(compressed)
	}
	return r.appendObject(make([]byte, 0, headerSize+n+64), plaintext, compressed, hash, codec)
}

// appendObject appends the envelope: the header, then the compressed body
// (or the plaintext when compression did not shrink it), sealed in an
// encrypted repository.
func (r *Repo) appendObject(dst, plaintext, compressed []byte, hash Hash, codec compress.Codec) ([]byte, error) {
	body, id := plaintext, compress.None
	if codec != nil && compressed != nil && len(compressed) < len(plaintext) {
		body, id = compressed, codec.ID()
	}
	start := len(dst)
	dst = append(dst, objectMagic[:]...)
	dst = append(dst, objectVersion, byte(id), 0, 0)
	dst = binary.BigEndian.AppendUint64(dst, r.keyID)
	dst = binary.BigEndian.AppendUint64(dst, uint64(len(plaintext)))
	dst = append(dst, hash[:]...)
	if r.sealer == nil {
		return append(dst, body...), nil
	}
	dst[start+6] = flagEncrypted
	hdr := append([]byte(nil), dst[start:start+headerSize]...)
	dst, err := r.sealer.Seal(dst, body, hdr)
	if err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	return dst, nil
}

// Open verifies and decodes an object, appending its plaintext to dst. maxSize
// bounds the plaintext so a corrupted length cannot make us allocate without
// limit. It returns the content hash from the (verified) header.
func (r *Repo) Open(dst, obj []byte, maxSize int, scratch []byte) (plain []byte, hash Hash, scratchOut []byte, err error) {
	if len(obj) < headerSize || !bytes.Equal(obj[:4], objectMagic[:]) {
		return nil, hash, scratch, fmt.Errorf("%w: not a pgward object (bad magic)", ErrCorrupt)
	}
	hdr := obj[:headerSize]
	if hdr[4] != objectVersion {
		return nil, hash, scratch, fmt.Errorf("%w: object format version %d is not supported by this pgward (it reads version %d)", ErrCorrupt, hdr[4], objectVersion)
	}
	codec, err := compress.ByID(compress.ID(hdr[5]))
	if err != nil {
		return nil, hash, scratch, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	encrypted := hdr[6]&flagEncrypted != 0
	if encrypted != (r.sealer != nil) {
		if encrypted {
			return nil, hash, scratch, fmt.Errorf("%w: object is encrypted but the repository is not", ErrCorrupt)
		}
		return nil, hash, scratch, fmt.Errorf("%w: object is not encrypted but the repository is", ErrCorrupt)
	}
	if !encrypted && binary.BigEndian.Uint64(hdr[8:16]) != 0 {
		return nil, hash, scratch, fmt.Errorf("%w: unencrypted object with a key id", ErrCorrupt)
	}
	if hdr[7] != 0 {
		return nil, hash, scratch, fmt.Errorf("%w: reserved header byte is set", ErrCorrupt)
	}
	if encrypted && binary.BigEndian.Uint64(hdr[8:16]) != r.keyID {
		return nil, hash, scratch, fmt.Errorf("%w: object was encrypted with another key (key id %x)", ErrCorrupt, hdr[8:16])
	}
	plainLen := binary.BigEndian.Uint64(hdr[16:24])
	if plainLen > uint64(maxSize) {
		return nil, hash, scratch, fmt.Errorf("%w: plaintext length %d exceeds the limit %d", ErrCorrupt, plainLen, maxSize)
	}
	copy(hash[:], hdr[24:56])
	body := obj[headerSize:]
	if encrypted {
		scratch, err = r.sealer.Open(scratch[:0], body, hdr)
		if err != nil {
			return nil, hash, scratch, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		body = scratch
	}
	start := len(dst)
	if codec.ID() == compress.None {
		dst = append(dst, body...)
	} else {
		// Decompressing into dst while body may alias scratch is fine: they are
		// different buffers.
		dst, err = codec.Decompress(dst, body, int(plainLen))
		if err != nil {
			return nil, hash, scratch, fmt.Errorf("%w: decompress: %v", ErrCorrupt, err)
		}
	}
	plain = dst
	if uint64(len(plain)-start) != plainLen {
		return nil, hash, scratch, fmt.Errorf("%w: plaintext is %d bytes, header says %d", ErrCorrupt, len(plain)-start, plainLen)
	}
	// Hashing the plaintext again costs as much CPU as decompressing it, and
	// it is redundant when something has already verified every byte: the
	// GCM tag, which authenticates the body together with the header (hash
	// included) under the repository key, or a zstd frame's content checksum,
	// checked while decoding (the length was checked above, so the frame
	// covered all of it). Either way the plaintext is what the writer hashed
	// into the header, and callers compare that hash with the one they expect
	// (a chunk's name). Only lz4 and uncompressed objects of an unencrypted
	// repository have nothing else and are hashed here.
	if !encrypted && !compress.VerifiesContent(codec.ID(), obj[headerSize:]) {
		if got := r.ContentHash(plain[start:]); !hmac.Equal(got[:], hash[:]) {
			return nil, hash, scratch, fmt.Errorf("%w: content hash mismatch", ErrCorrupt)
		}
	}
	return plain, hash, scratch, nil
}

var noCodec, _ = compress.ByID(compress.None)
