package crypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
)

const (
	saltSize = 16
	tagSize  = 16

	// Overhead is how many bytes Seal adds to a plaintext: the salt and the
	// GCM tag.
	Overhead = saltSize + tagSize

	// MaxPlaintext is the largest plaintext one GCM message may hold
	// (2^32 - 2 blocks of 16 bytes, about 64 GiB).
	MaxPlaintext = (1<<32 - 2) * 16

	objectInfo = "pgward v1 object"
)

// ErrAuth is wrapped by every Open failure: the data was not sealed with this
// key and additional data, or was changed since.
var ErrAuth = errors.New("authentication failed (wrong key or corrupted data)")

// zeroNonce is the nonce of every object; see the package comment for why a
// fixed nonce is safe with per-object keys.
var zeroNonce [12]byte

// Sealer seals and opens repository objects under one key. It is safe for
// concurrent use: its state never changes after NewSealer.
type Sealer struct {
	key [KeySize]byte
}

// NewSealer returns a Sealer for key, which must be KeySize bytes, normally
// DeriveKey(master, "object-encryption").
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("crypt: object key is %d bytes, want %d", len(key), KeySize)
	}
	s := &Sealer{}
	copy(s.key[:], key)
	return s, nil
}

// objectAEAD returns AES-256-GCM keyed for the object with this salt.
func (s *Sealer) objectAEAD(salt []byte) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, s.key[:], salt, objectInfo, KeySize)
	if err != nil {
		return nil, fmt.Errorf("deriving object key: %w", err)
	}
	block, err := aes.NewCipher(key)
	clear(key)
	if err != nil {
		return nil, fmt.Errorf("creating AES cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("creating GCM: %w", err)
	}
	return aead, nil
}

// Seal appends salt || ciphertext || tag for plaintext to dst, authenticating
// aad as well. The result is len(plaintext)+Overhead bytes longer than dst.
// plaintext must not overlap dst's spare capacity.
func (s *Sealer) Seal(dst, plaintext, aad []byte) ([]byte, error) {
	if uint64(len(plaintext)) > MaxPlaintext {
		return dst, fmt.Errorf("crypt: sealing object: %d bytes is more than GCM's limit of %d", len(plaintext), uint64(MaxPlaintext))
	}
	start := len(dst)
	out := slices.Grow(dst, len(plaintext)+Overhead)[:start+saltSize]
	salt := out[start:]
	if _, err := rand.Read(salt); err != nil {
		return dst, fmt.Errorf("crypt: sealing object: reading random salt: %w", err)
	}
	aead, err := s.objectAEAD(salt)
	if err != nil {
		return dst, fmt.Errorf("crypt: sealing object: %w", err)
	}
	// out has room for the ciphertext and tag, so GCM writes them in place.
	return aead.Seal(out, zeroNonce[:], plaintext, aad), nil
}

// Open verifies sealed (as made by Seal with the same key and aad) and appends
// its plaintext to dst. Any failure to verify returns an error wrapping
// ErrAuth, and dst's contents are unchanged (its spare capacity may not be).
// sealed must not overlap dst's spare capacity.
func (s *Sealer) Open(dst, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < Overhead {
		return dst, fmt.Errorf("crypt: opening object: %d bytes is too short for the %d-byte envelope: %w", len(sealed), Overhead, ErrAuth)
	}
	aead, err := s.objectAEAD(sealed[:saltSize])
	if err != nil {
		return dst, fmt.Errorf("crypt: opening object: %w", err)
	}
	out, err := aead.Open(dst, zeroNonce[:], sealed[saltSize:], aad)
	if err != nil {
		return dst, fmt.Errorf("crypt: opening object: %w", ErrAuth)
	}
	return out, nil
}
