package repo

// Key objects: the several passphrases of an encrypted repository
// (docs/repository-format.md, "Key objects").
//
// Every passphrase that opens an encrypted repository has its own copy of the
// master key, wrapped under it (crypt.WrapKey), in a key object keys/<id>: plain
// JSON, because it is read before any key is known. The config holds a copy of
// one of them, the config's key, so that a pgward that knows no key objects
// still opens the repository with that key's passphrase; a repository that never
// had a key added has the config's key only. A key's ID is the first 8 bytes of
// SHA-256 over its wrapped key as compact JSON, in hex, so the config's key_check
// is the ID of the key it holds.
//
// Invariants:
//   - Key objects are written once and never changed. Adding a key writes one
//     new object and changes nothing else; removing one deletes its object, after
//     replacing the config with one that holds another key when the config held
//     the removed one (keyops.go, configwrite.go).
//   - A key object carries a MAC, under a key derived from the master key, over
//     its fields and the repository's ID: it proves that the object was made by a
//     holder of this repository's master key, for this repository, and has not
//     changed since. Open refuses a key object that unwraps but fails its MAC.
//   - Once any key object exists, the config's key has one too (the first key add
//     writes it), so that every key has its metadata and a MAC to check.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pgward/pgward/crypt"
)

const (
	// keysPrefix holds the key objects.
	keysPrefix = "keys/"
	// keyObjectFormat is the version of a key object's JSON.
	keyObjectFormat = 1
	// maxKeyObjectSize bounds what is read of a key object (they are under 1 KiB).
	maxKeyObjectSize = 64 << 10
	// keyMACPurpose names the sub-key of the master key that keys the MACs.
	keyMACPurpose = "key-object"
	// keyMACDomain starts the MAC's input, so it can mean nothing else.
	keyMACDomain = "pgward key object v1"
)

// keyObject is the content of keys/<id>.
type keyObject struct {
	Format int `json:"format"`
	// ID is the object's name after keys/: wrappedKeyID(Key).
	ID string `json:"id"`
	// Repository is the config's ID: a key object belongs to one repository.
	Repository string    `json:"repository"`
	Created    time.Time `json:"created"`
	// Host, User and Note say where the key came from and what it is for; they
	// are for people only.
	Host string           `json:"host"`
	User string           `json:"user"`
	Note string           `json:"note"`
	Key  crypt.WrappedKey `json:"key"`
	// MAC is HMAC-SHA256 under K("key-object") over macInput, in hex.
	MAC string `json:"mac"`
}

// wrappedKeyID is a wrapped key's ID: the first 8 bytes of SHA-256 over its
// compact JSON, in hex.
func wrappedKeyID(w crypt.WrappedKey) (string, error) {
	b, err := json.Marshal(w)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8]), nil
}

// IsKeyObject reports whether an object name is a key object (for tools that
// walk the repository: key objects are plain JSON, not envelopes).
func IsKeyObject(name string) bool { return strings.HasPrefix(name, keysPrefix) }

// validKeyID reports whether s has the form of a key ID.
func validKeyID(s string) bool {
	if len(s) != 16 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// macInput is what the MAC covers: each field as a 4-byte big-endian length and
// its bytes, in this order: the domain string, repository, id, created
// (RFC 3339, UTC, with as many fractional digits as needed), host, user, note,
// and the wrapped key as compact JSON.
func (o *keyObject) macInput() ([]byte, error) {
	key, err := json.Marshal(o.Key)
	if err != nil {
		return nil, err
	}
	var b []byte
	for _, f := range []string{keyMACDomain, o.Repository, o.ID, o.Created.UTC().Format(time.RFC3339Nano), o.Host, o.User, o.Note, string(key)} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b, nil
}

// mac computes the object's MAC under master.
func (o *keyObject) mac(master []byte) (string, error) {
	in, err := o.macInput()
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, crypt.DeriveKey(master, keyMACPurpose))
	m.Write(in)
	return hex.EncodeToString(m.Sum(nil)), nil
}

// macOK reports whether the object's MAC verifies under master.
func (o *keyObject) macOK(master []byte) bool {
	want, err := o.mac(master)
	if err != nil {
		return false
	}
	got, err := hex.DecodeString(o.MAC)
	if err != nil {
		return false
	}
	w, _ := hex.DecodeString(want)
	return hmac.Equal(got, w)
}

// parseKeyObject decodes the object stored under name and checks everything
// that can be checked without the master key.
func parseKeyObject(name string, b []byte, repoID string) (*keyObject, error) {
	var o keyObject
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, fmt.Errorf("not valid JSON (%v): %w", err, ErrCorrupt)
	}
	if o.Format != keyObjectFormat {
		return nil, fmt.Errorf("key object format %d is not one this pgward reads (%d)", o.Format, keyObjectFormat)
	}
	id, err := wrappedKeyID(o.Key)
	if err != nil {
		return nil, err
	}
	switch {
	case name != keysPrefix+o.ID:
		return nil, fmt.Errorf("it says it is key %q: %w", o.ID, ErrCorrupt)
	case id != o.ID:
		return nil, fmt.Errorf("its wrapped key does not match its ID, so it was edited or damaged: %w", ErrCorrupt)
	case o.Repository != repoID:
		return nil, fmt.Errorf("it belongs to repository %s, not to this one (%s): it was copied from elsewhere", o.Repository, repoID)
	}
	if err := o.Key.KDF.Validate(); err != nil {
		return nil, err
	}
	return &o, nil
}

// foundKey is an object under keys/ as read from storage: either a key object
// that passed parseKeyObject, or why it is unusable.
type foundKey struct {
	id  string // from the name
	obj *keyObject
	err error
}

// readKeyObjects reads every object under keys/, in name order. An unusable
// object is reported in its foundKey, not as an error, so that one damaged
// object never keeps the other keys from opening the repository; only failing
// storage is an error.
func readKeyObjects(ctx context.Context, st Storage, repoID string) ([]foundKey, error) {
	var names []string
	err := st.List(ctx, keysPrefix, func(o ObjectInfo) error {
		names = append(names, o.Name)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the keys of %s: %w", st, err)
	}
	var found []foundKey
	for _, name := range names {
		f := foundKey{id: strings.TrimPrefix(name, keysPrefix)}
		if !validKeyID(f.id) {
			f.err = fmt.Errorf("%s is not a key object name", name)
			found = append(found, f)
			continue
		}
		b, err := readSmall(ctx, st, name, maxKeyObjectSize)
		if errors.Is(err, ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s of %s: %w", name, st, err)
		}
		if f.obj, err = parseKeyObject(name, b, repoID); err != nil {
			f.err = fmt.Errorf("%s: %w", name, err)
		}
		found = append(found, f)
	}
	return found, nil
}

// readSmall reads a whole object of at most limit bytes.
func readSmall(ctx context.Context, st Storage, name string, limit int64) ([]byte, error) {
	rc, err := st.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes: %w", name, limit, ErrCorrupt)
	}
	return b, nil
}

// unlock finds the master key of the encrypted repository cfg describes with
// passphrase pp: the config's key first (one scrypt, and no request more than
// before key objects existed), then every other key object in name order. It
// returns the ID of the key that opened.
func unlock(ctx context.Context, st Storage, cfg Config, pp []byte) (master []byte, opened string, err error) {
	cfgID, err := wrappedKeyID(*cfg.Key)
	if err != nil {
		return nil, "", err
	}
	master, err = crypt.UnwrapKey(*cfg.Key, pp)
	if err == nil {
		return master, cfgID, nil
	}
	if !errors.Is(err, crypt.ErrWrongPassphrase) {
		return nil, "", fmt.Errorf("opening repository %s: the config's key: %w", st, err)
	}
	found, err := readKeyObjects(ctx, st, cfg.ID)
	if err != nil {
		return nil, "", fmt.Errorf("opening repository %s: %w", st, err)
	}
	keys := 1
	var unusable []string
	for _, f := range found {
		if f.id == cfgID {
			continue // the config's copy was tried
		}
		if f.err != nil {
			unusable = append(unusable, f.err.Error())
			continue
		}
		keys++
		m, err := crypt.UnwrapKey(f.obj.Key, pp)
		if errors.Is(err, crypt.ErrWrongPassphrase) {
			continue
		}
		if err != nil {
			unusable = append(unusable, fmt.Sprintf("%s%s: %v", keysPrefix, f.id, err))
			continue
		}
		if !f.obj.macOK(m) {
			return nil, "", fmt.Errorf("opening repository %s: the passphrase opens %s%s, but its MAC does not verify, so the key object was edited or made for another repository: %w; remove it with 'pgward key remove %s' using another passphrase", st, keysPrefix, f.id, ErrCorrupt, f.id)
		}
		return m, f.id, nil
	}
	what := "it does not open the repository's key"
	if keys > 1 {
		what = fmt.Sprintf("it opens none of the repository's %d keys", keys)
	}
	if len(found) > 0 {
		what += "; a passphrase removed or replaced with 'pgward key' opens nothing"
	}
	err = fmt.Errorf("opening repository %s: %w: %s", st, ErrWrongPassphrase, what)
	if len(unusable) > 0 {
		err = fmt.Errorf("%w (unusable key objects: %s)", err, strings.Join(unusable, "; "))
	}
	return nil, "", err
}

// newKeyObject wraps master under passphrase p and describes it.
func newKeyObject(master, p []byte, kdf crypt.KDFParams, repoID string, meta KeyMeta) (*keyObject, error) {
	w, err := crypt.WrapKey(master, p, kdf)
	if err != nil {
		return nil, err
	}
	return describedKey(master, w, repoID, meta)
}

// describedKey makes the key object of an existing wrapped key.
func describedKey(master []byte, w crypt.WrappedKey, repoID string, meta KeyMeta) (*keyObject, error) {
	id, err := wrappedKeyID(w)
	if err != nil {
		return nil, err
	}
	o := &keyObject{Format: keyObjectFormat, ID: id, Repository: repoID, Created: meta.Created.UTC(),
		Host: meta.Host, User: meta.User, Note: meta.Note, Key: w}
	if o.MAC, err = o.mac(master); err != nil {
		return nil, err
	}
	return o, nil
}

// put writes the key object, create-only. An existing object under its name
// is the same key (the name is a hash of the wrapped key): a rerun after a
// crash finds it written and goes on.
func (o *keyObject) put(ctx context.Context, st Storage) error {
	b, err := json.MarshalIndent(o, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	err = st.Put(ctx, keysPrefix+o.ID, bytes.NewReader(b), int64(len(b)))
	if err != nil && !errors.Is(err, ErrExists) {
		return fmt.Errorf("writing %s%s to %s: %w", keysPrefix, o.ID, st, err)
	}
	return nil
}
