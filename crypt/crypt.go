// Package crypt is pgward's cryptography: the AES-256-GCM envelope around
// repository objects, key derivation from the repository master key, and
// wrapping of the master key under a passphrase. Nothing else lives here, and
// everything comes from the Go standard library and golang.org/x/crypto.
//
// # Keys
//
// An encrypted repository has one random 32-byte master key (NewMasterKey).
// It is never used directly: DeriveKey turns it into independent 32-byte keys,
// one per purpose, with HKDF-SHA256 (RFC 5869), no salt, and the info string
// "pgward v1 " + purpose. Callers use purposes such as "object-encryption"
// (the key given to NewSealer) and "chunk-id" (the key of the keyed hash that
// names chunks), so a weakness in one use cannot spill into another.
//
// # Object envelope
//
// Sealer.Seal turns a plaintext into
//
//	salt (16 random bytes) || AES-256-GCM ciphertext || GCM tag (16 bytes)
//
// where the AES key for this one object is
//
//	HKDF-SHA256(secret = sealer key, salt = salt, info = "pgward v1 object"), 32 bytes
//
// and the GCM nonce is 12 zero bytes. The caller's additional data (for
// example the object's name and header) is authenticated but not stored.
//
// A fixed nonce is safe here because no key is ever used twice: every object
// gets a fresh 128-bit random salt and therefore its own key, and GCM's
// requirement is only that a (key, nonce) pair never repeats. Two objects
// share a key only if their salts collide; after 2^32 objects that chance is
// about 2^-65, after 2^40 objects about 2^-49. A random 96-bit nonce under one
// long-lived key, the usual alternative, would limit a repository to about 2^32
// objects before the collision risk reaches NIST's 2^-32 bound, and pgward
// repositories hold billions of chunks over their lifetime. The per-object key
// also keeps each key far below GCM's per-key data limits. The price is one
// HKDF and one AES key schedule per object, about a microsecond.
//
// Open fails with an error wrapping ErrAuth for anything that does not verify:
// a wrong key, any changed byte of salt, ciphertext or tag, different
// additional data, or input too short to hold the envelope.
//
// # Master key wrapping
//
// The master key is stored wrapped (WrapKey): a key-encryption key is derived
// from the user's passphrase with scrypt (parameters and salt stored next to
// it, see KDFParams), and the master key is sealed with AES-256-GCM under it,
// with a random 12-byte nonce and the additional data "pgward v1 master key".
// The KEK encrypts exactly one message, so a random nonce is safe. UnwrapKey
// refuses scrypt parameters that would take absurd memory or time before
// running scrypt, so a tampered key file cannot make pgward allocate gigabytes.
//
// Everything in this package is safe for concurrent use.
package crypt

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
)

// KeySize is the size of the master key and of every derived key.
const KeySize = 32

// NewMasterKey returns a new random master key for a repository.
func NewMasterKey() ([]byte, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("crypt: generating master key: %w", err)
	}
	return key, nil
}

// DeriveKey returns the 32-byte key for purpose, derived from master with
// HKDF-SHA256, no salt, info "pgward v1 " + purpose. The same master and
// purpose always give the same key; different purposes give unrelated keys.
func DeriveKey(master []byte, purpose string) []byte {
	key, err := hkdf.Key(sha256.New, master, nil, "pgward v1 "+purpose, KeySize)
	if err != nil {
		// HKDF-SHA256 fails only for outputs over 8160 bytes (or, in
		// FIPS-only mode, secrets under 112 bits): a programming error.
		panic("crypt: deriving key for " + purpose + ": " + err.Error())
	}
	return key
}
