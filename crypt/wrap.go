package crypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"

	"golang.org/x/crypto/scrypt"
)

// ErrWrongPassphrase is wrapped by UnwrapKey when the wrapped key does not
// open with the passphrase.
var ErrWrongPassphrase = errors.New("wrong passphrase")

// wrapAAD binds a wrapped key to its role, so the ciphertext cannot be passed
// off as anything else sealed under a passphrase-derived key.
const wrapAAD = "pgward v1 master key"

// Limits on scrypt parameters read from a key file. They keep a tampered or
// corrupt file from making pgward allocate gigabytes or spin for hours before
// it can even report a wrong passphrase, while leaving ample room above the
// defaults for users who want a slower KDF.
const (
	minLogN         = 14      // N >= 16384
	maxLogN         = 22      // N <= 4194304
	maxScryptMemory = 1 << 30 // 128*N*r bytes
	maxRP           = 64      // r*p scales the time taken
	minSaltSize     = 16
	maxSaltSize     = 64
)

// KDFParams says how the key-encryption key is derived from a passphrase.
// It is stored, in JSON, next to the wrapped key.
type KDFParams struct {
	Algorithm string `json:"algorithm"` // always "scrypt"
	N         int    `json:"n"`
	R         int    `json:"r"`
	P         int    `json:"p"`
	Salt      []byte `json:"salt"`
}

// WrappedKey is the master key encrypted under a passphrase. It marshals to
// JSON directly ([]byte fields as base64).
type WrappedKey struct {
	KDF        KDFParams `json:"kdf"`
	Nonce      []byte    `json:"nonce"`
	Ciphertext []byte    `json:"ciphertext"` // AES-256-GCM of the master key, tag included
}

// DefaultKDFParams returns scrypt with N=32768, r=8, p=1 (32 MiB of memory,
// 50-100 ms on a current CPU) and a fresh random 32-byte salt.
func DefaultKDFParams() (KDFParams, error) {
	salt := make([]byte, 32)
	if _, err := rand.Read(salt); err != nil {
		return KDFParams{}, fmt.Errorf("crypt: generating KDF salt: %w", err)
	}
	return KDFParams{Algorithm: "scrypt", N: 1 << 15, R: 8, P: 1, Salt: salt}, nil
}

// Validate reports whether p is a parameter set pgward is willing to run.
func (p KDFParams) Validate() error {
	switch {
	case p.Algorithm != "scrypt":
		return fmt.Errorf("crypt: unsupported key derivation %q (only scrypt is known)", p.Algorithm)
	case p.N <= 0 || p.N&(p.N-1) != 0:
		return fmt.Errorf("crypt: scrypt N=%d is not a power of two", p.N)
	case p.N < 1<<minLogN || p.N > 1<<maxLogN:
		return fmt.Errorf("crypt: scrypt N=%d is outside 2^%d..2^%d", p.N, minLogN, maxLogN)
	case p.R < 1 || p.P < 1:
		return fmt.Errorf("crypt: scrypt r=%d p=%d: both must be at least 1", p.R, p.P)
	case p.R > maxRP || p.P > maxRP || p.R*p.P > maxRP:
		return fmt.Errorf("crypt: scrypt r=%d p=%d: r*p must be at most %d", p.R, p.P, maxRP)
	case 128*uint64(p.N)*uint64(p.R) > maxScryptMemory:
		return fmt.Errorf("crypt: scrypt N=%d r=%d needs %d MiB of memory, more than the %d MiB allowed", p.N, p.R, 128*p.N*p.R>>20, maxScryptMemory>>20)
	case len(p.Salt) < minSaltSize || len(p.Salt) > maxSaltSize:
		return fmt.Errorf("crypt: scrypt salt is %d bytes, want %d..%d", len(p.Salt), minSaltSize, maxSaltSize)
	}
	return nil
}

// kekAEAD derives the key-encryption key from passphrase and returns
// AES-256-GCM keyed with it. p must be valid.
func kekAEAD(passphrase []byte, p KDFParams) (cipher.AEAD, error) {
	kek, err := scrypt.Key(passphrase, p.Salt, p.N, p.R, p.P, KeySize)
	if err != nil {
		return nil, fmt.Errorf("running scrypt: %w", err)
	}
	block, err := aes.NewCipher(kek)
	clear(kek)
	if err != nil {
		return nil, fmt.Errorf("creating AES cipher: %w", err)
	}
	return cipher.NewGCM(block)
}

// WrapKey encrypts master (KeySize bytes) under a key derived from passphrase
// with p, normally DefaultKDFParams().
func WrapKey(master, passphrase []byte, p KDFParams) (WrappedKey, error) {
	if len(master) != KeySize {
		return WrappedKey{}, fmt.Errorf("crypt: wrapping master key: key is %d bytes, want %d", len(master), KeySize)
	}
	if err := p.Validate(); err != nil {
		return WrappedKey{}, fmt.Errorf("crypt: wrapping master key: %w", err)
	}
	aead, err := kekAEAD(passphrase, p)
	if err != nil {
		return WrappedKey{}, fmt.Errorf("crypt: wrapping master key: %w", err)
	}
	// The KEK encrypts this one message (a fresh salt gives a fresh KEK each
	// time a key is wrapped), so a random nonce cannot repeat under it.
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return WrappedKey{}, fmt.Errorf("crypt: wrapping master key: reading random nonce: %w", err)
	}
	p.Salt = append([]byte(nil), p.Salt...)
	return WrappedKey{
		KDF:        p,
		Nonce:      nonce,
		Ciphertext: aead.Seal(nil, nonce, master, []byte(wrapAAD)),
	}, nil
}

// UnwrapKey decrypts the master key in w with passphrase. A wrong passphrase
// (or a changed ciphertext, which cannot be told apart) gives an error
// wrapping ErrWrongPassphrase; implausible KDF parameters or field sizes are
// refused before scrypt runs.
func UnwrapKey(w WrappedKey, passphrase []byte) ([]byte, error) {
	if err := w.KDF.Validate(); err != nil {
		return nil, fmt.Errorf("crypt: unwrapping master key: %w", err)
	}
	if len(w.Nonce) != len(zeroNonce) || len(w.Ciphertext) != KeySize+tagSize {
		return nil, fmt.Errorf("crypt: unwrapping master key: malformed wrapped key (nonce %d bytes, ciphertext %d bytes; want %d and %d)",
			len(w.Nonce), len(w.Ciphertext), len(zeroNonce), KeySize+tagSize)
	}
	aead, err := kekAEAD(passphrase, w.KDF)
	if err != nil {
		return nil, fmt.Errorf("crypt: unwrapping master key: %w", err)
	}
	master, err := aead.Open(nil, w.Nonce, w.Ciphertext, []byte(wrapAAD))
	if err != nil {
		return nil, fmt.Errorf("crypt: unwrapping master key: %w (or the key file was modified)", ErrWrongPassphrase)
	}
	return master, nil
}
