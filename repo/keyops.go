package repo

// The key commands: list, add, remove and change the passphrases of an
// encrypted repository (keys.go has the objects). No data is re-encrypted: every
// key wraps the same master key.
//
// Crash safety, with storage that has no atomic rename (S3):
//   - add writes the new key object before anything refers to it, reads it back
//     and unwraps it with the new passphrase; a crash leaves the key added or not;
//   - remove first checks that another key remains that is sound (its MAC
//     verifies under the master key, or it opened the repository), then replaces
//     the config when it held the removed key (configwrite.go), and deletes the
//     key object last; a crash leaves the key removed or not, never the
//     repository without a key, and a rerun finishes;
//   - passwd is add, then remove of the key that opened the repository.
//
// The config lock serializes the key commands, so two removals cannot each
// leave only the key the other removes.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"slices"
	"strings"
	"time"

	"github.com/pgward/pgward/crypt"
)

// maxKeys bounds the keys of a repository: a wrong passphrase costs one scrypt
// per key (LUKS2 has 32 slots too).
const maxKeys = 32

// ErrNotEncrypted is wrapped by the key commands on an unencrypted repository.
var ErrNotEncrypted = errors.New("the repository is not encrypted")

// KeyMeta describes a key for people.
type KeyMeta struct {
	Created          time.Time
	Host, User, Note string
}

// KeyInfo is one key of an encrypted repository.
type KeyInfo struct {
	ID string
	KeyMeta
	// Opened: this key opened the repository (this Repo).
	Opened bool
	// InConfig: the config holds a copy of this key, so a pgward that knows no
	// key objects opens the repository with its passphrase (and only with it).
	InConfig bool
	// Problem says why the key object is unusable or unverified; "" when sound.
	Problem string
}

// NewKey is a key to add.
type NewKey struct {
	Passphrase []byte
	Note       string
	// KDF overrides the default key derivation (tests use cheaper parameters).
	KDF *crypt.KDFParams
}

// RemovedKey reports a removal.
type RemovedKey struct {
	ID string
	// WasOpened: the removed key opened the repository in this process.
	WasOpened bool
	// ConfigKey is the key the config holds afterwards.
	ConfigKey string
	// Remaining are the IDs of the keys left.
	Remaining []string
}

// openedKeys is what the key commands need of an open repository.
type openedKeys struct {
	master []byte
	// opened is the ID of the key that opened the repository ("" unencrypted).
	opened string
}

// unlocked records the master key; the key that opened is the config's unless
// Open says otherwise.
func (r *Repo) unlocked(master []byte, cfg Config) {
	r.keys.master = master
	if cfg.Key != nil {
		r.keys.opened, _ = wrappedKeyID(*cfg.Key)
	}
}

// OpenedKey is the ID of the key that opened the repository; "" when it is not
// encrypted.
func (r *Repo) OpenedKey() string { return r.keys.opened }

// keyEntry is one key as the key commands see it.
type keyEntry struct {
	id       string
	obj      *keyObject // nil: only in the config, or unusable
	wrapped  *crypt.WrappedKey
	meta     KeyMeta
	inConfig bool
	object   bool // keys/<id> exists
	// sound: the MAC verifies under the master key, or (the config's key
	// without an object) it opened the repository: it is known to open.
	sound   bool
	problem string
}

// keySet is the keys of the repository, read under the config lock.
type keySet struct {
	cfg  Config
	keys []*keyEntry // oldest first
}

func (s *keySet) find(id string) *keyEntry {
	for _, e := range s.keys {
		if e.id == id {
			return e
		}
	}
	return nil
}

// lookup finds the key a user named: its ID, or a prefix of at least 4 digits
// that only one key has.
func (s *keySet) lookup(st Storage, id string) (*keyEntry, error) {
	id = strings.ToLower(strings.TrimPrefix(id, keysPrefix))
	if e := s.find(id); e != nil {
		return e, nil
	}
	var match []*keyEntry
	if len(id) >= 4 {
		for _, e := range s.keys {
			if strings.HasPrefix(e.id, id) {
				match = append(match, e)
			}
		}
	}
	switch len(match) {
	case 1:
		return match[0], nil
	case 0:
		return nil, fmt.Errorf("%s has no key %q; 'pgward key list' shows its keys", st, id)
	}
	return nil, fmt.Errorf("%q is the start of %d keys of %s; give more of the ID", id, len(match), st)
}

func (r *Repo) mustBeEncrypted(what string) error {
	if !r.Encrypted() {
		return fmt.Errorf("%s: %s: %w, so it has no keys; encryption cannot be added to an existing repository", what, r.st, ErrNotEncrypted)
	}
	return nil
}

// loadKeys reads the config and the key objects as they are now.
func (r *Repo) loadKeys(ctx context.Context) (*keySet, error) {
	_, raw, err := readConfig(ctx, r.st)
	if err != nil {
		return nil, err
	}
	cfg, err := parseConfig(r.st, raw)
	if err != nil {
		return nil, err
	}
	if cfg.ID != r.cfg.ID || cfg.Key == nil {
		return nil, fmt.Errorf("the config of %s is not the one it was opened with (repository %s): %w", r.st, cfg.ID, ErrCorrupt)
	}
	cfgID, err := wrappedKeyID(*cfg.Key)
	if err != nil {
		return nil, err
	}
	found, err := readKeyObjects(ctx, r.st, cfg.ID)
	if err != nil {
		return nil, err
	}
	s := &keySet{cfg: cfg}
	for _, f := range found {
		e := &keyEntry{id: f.id, obj: f.obj, object: true, inConfig: f.id == cfgID}
		if f.err != nil {
			e.problem = f.err.Error()
		} else {
			e.wrapped = &f.obj.Key
			e.meta = KeyMeta{Created: f.obj.Created, Host: f.obj.Host, User: f.obj.User, Note: f.obj.Note}
			if e.sound = f.obj.macOK(r.keys.master); !e.sound {
				e.problem = fmt.Sprintf("%s%s: its MAC does not verify, so it was edited or made for another repository", keysPrefix, f.id)
			}
		}
		s.keys = append(s.keys, e)
	}
	if s.find(cfgID) == nil {
		s.keys = append(s.keys, &keyEntry{id: cfgID, wrapped: cfg.Key, inConfig: true,
			meta: KeyMeta{Created: cfg.Created}, sound: cfgID == r.keys.opened})
	}
	slices.SortStableFunc(s.keys, func(a, b *keyEntry) int {
		if c := a.meta.Created.Compare(b.meta.Created); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	return s, nil
}

func (s *keySet) infos(opened string) []KeyInfo {
	var out []KeyInfo
	for _, e := range s.keys {
		out = append(out, KeyInfo{ID: e.id, KeyMeta: e.meta, Opened: e.id == opened, InConfig: e.inConfig, Problem: e.problem})
	}
	return out
}

// Keys lists the keys of the repository, oldest first.
func (r *Repo) Keys(ctx context.Context) ([]KeyInfo, error) {
	if err := r.mustBeEncrypted("key list"); err != nil {
		return nil, err
	}
	s, err := r.loadKeys(ctx)
	if err != nil {
		return nil, err
	}
	return s.infos(r.keys.opened), nil
}

// AddKey adds a key: the master key wrapped under a new passphrase.
func (r *Repo) AddKey(ctx context.Context, nk NewKey) (KeyInfo, error) {
	if err := r.mustBeEncrypted("key add"); err != nil {
		return KeyInfo{}, err
	}
	l, err := r.beginKeyChange(ctx, "key add")
	if err != nil {
		return KeyInfo{}, err
	}
	defer l.Unlock(ctx)
	return r.addKey(ctx, nk)
}

// RemoveKey removes the key id (or a unique prefix of it of at least 4 digits).
func (r *Repo) RemoveKey(ctx context.Context, id string) (RemovedKey, error) {
	if err := r.mustBeEncrypted("key remove"); err != nil {
		return RemovedKey{}, err
	}
	l, err := r.beginKeyChange(ctx, "key remove")
	if err != nil {
		return RemovedKey{}, err
	}
	defer l.Unlock(ctx)
	s, err := r.loadKeys(ctx)
	if err != nil {
		return RemovedKey{}, err
	}
	e, err := s.lookup(r.st, id)
	if err != nil {
		return RemovedKey{}, err
	}
	return r.removeKey(ctx, s, e, "")
}

// ChangePassphrase replaces the key that opened the repository with one under
// a new passphrase: it adds the new key (keeping the old one's note unless
// nk.Note is given), then removes the old one.
func (r *Repo) ChangePassphrase(ctx context.Context, nk NewKey) (KeyInfo, RemovedKey, error) {
	if err := r.mustBeEncrypted("key passwd"); err != nil {
		return KeyInfo{}, RemovedKey{}, err
	}
	l, err := r.beginKeyChange(ctx, "key passwd")
	if err != nil {
		return KeyInfo{}, RemovedKey{}, err
	}
	defer l.Unlock(ctx)
	s, err := r.loadKeys(ctx)
	if err != nil {
		return KeyInfo{}, RemovedKey{}, err
	}
	if old := s.find(r.keys.opened); old != nil && nk.Note == "" {
		nk.Note = old.meta.Note
	}
	added, err := r.addKey(ctx, nk)
	if err != nil {
		return KeyInfo{}, RemovedKey{}, err
	}
	if s, err = r.loadKeys(ctx); err != nil {
		return added, RemovedKey{}, r.passwdHalfDone(added.ID, err)
	}
	old := s.find(r.keys.opened)
	if old == nil {
		return added, RemovedKey{}, r.passwdHalfDone(added.ID, fmt.Errorf("key %s is gone", r.keys.opened))
	}
	removed, err := r.removeKey(ctx, s, old, added.ID)
	if err != nil {
		return added, removed, r.passwdHalfDone(added.ID, err)
	}
	return added, removed, nil
}

func (r *Repo) passwdHalfDone(added string, err error) error {
	return fmt.Errorf("key passwd on %s: the new key %s is in place, but the old key %s was not removed: %w; remove it with 'pgward key remove %s' and the new passphrase", r.st, added, r.keys.opened, err, r.keys.opened)
}

// beginKeyChange takes the config lock and settles what an interrupted config
// replacement left: a stale config object may still hold a removed key.
func (r *Repo) beginKeyChange(ctx context.Context, purpose string) (*Lock, error) {
	l, err := r.lockConfig(ctx, purpose)
	if err != nil {
		return nil, err
	}
	if err := tidyConfig(ctx, r.st); err != nil {
		l.Unlock(ctx)
		return nil, fmt.Errorf("%s on %s: %w", purpose, r.st, err)
	}
	return l, nil
}

// addKey adds a key; the caller holds the config lock.
func (r *Repo) addKey(ctx context.Context, nk NewKey) (KeyInfo, error) {
	if len(nk.Passphrase) == 0 {
		return KeyInfo{}, fmt.Errorf("key add on %s: the new passphrase is empty", r.st)
	}
	s, err := r.loadKeys(ctx)
	if err != nil {
		return KeyInfo{}, err
	}
	if s.find(r.keys.opened) == nil {
		return KeyInfo{}, fmt.Errorf("key add on %s: key %s, which opened the repository here, was removed meanwhile; use the passphrase of a current key", r.st, r.keys.opened)
	}
	if len(s.keys) >= maxKeys {
		return KeyInfo{}, fmt.Errorf("key add on %s: the repository has %d keys, the most it may have; remove one first", r.st, len(s.keys))
	}
	for _, e := range s.keys {
		if e.wrapped == nil {
			continue
		}
		if _, err := crypt.UnwrapKey(*e.wrapped, nk.Passphrase); err == nil {
			return KeyInfo{}, fmt.Errorf("key add on %s: the new passphrase already opens key %s; choose another one", r.st, e.id)
		}
	}
	// The config's key gets its object first, so that every key has one
	// (keys.go); it is proven here, since a repository with no key objects
	// opens with the config's key only.
	if cfgKey := s.configKey(); !cfgKey.object {
		o, err := describedKey(r.keys.master, *s.cfg.Key, s.cfg.ID, KeyMeta{Created: s.cfg.Created, Note: "made by init"})
		if err != nil {
			return KeyInfo{}, err
		}
		if err := r.putKey(ctx, o, nil); err != nil {
			return KeyInfo{}, err
		}
	}
	kdf := nk.KDF
	if kdf == nil {
		p, err := crypt.DefaultKDFParams()
		if err != nil {
			return KeyInfo{}, err
		}
		kdf = &p
	}
	meta := KeyMeta{Created: time.Now().UTC(), Host: hostName(), User: userName(), Note: nk.Note}
	o, err := newKeyObject(r.keys.master, nk.Passphrase, *kdf, s.cfg.ID, meta)
	if err != nil {
		return KeyInfo{}, fmt.Errorf("key add on %s: %w", r.st, err)
	}
	if err := r.putKey(ctx, o, nk.Passphrase); err != nil {
		return KeyInfo{}, err
	}
	return KeyInfo{ID: o.ID, KeyMeta: meta}, nil
}

// putKey writes a key object and reads it back: it must parse, its MAC must
// verify and, given the passphrase, it must unwrap to the master key. A new
// object that fails is deleted again (nothing refers to it yet).
func (r *Repo) putKey(ctx context.Context, o *keyObject, passphrase []byte) error {
	if err := o.put(ctx, r.st); err != nil {
		return err
	}
	name := keysPrefix + o.ID
	b, err := readSmall(ctx, r.st, name, maxKeyObjectSize)
	if err != nil {
		return fmt.Errorf("reading back %s of %s: %w", name, r.st, err)
	}
	back, err := parseKeyObject(name, b, r.cfg.ID)
	if err == nil && !back.macOK(r.keys.master) {
		err = errors.New("its MAC does not verify")
	}
	if err == nil && passphrase != nil {
		var m []byte
		if m, err = crypt.UnwrapKey(back.Key, passphrase); err == nil && !bytes.Equal(m, r.keys.master) {
			err = errors.New("it does not unwrap to the master key")
		}
	}
	if err != nil {
		if passphrase != nil {
			_ = r.st.Delete(context.WithoutCancel(ctx), name)
		}
		return fmt.Errorf("%s of %s does not read back as written (%v): %w", name, r.st, err, ErrCorrupt)
	}
	return nil
}

func (s *keySet) configKey() *keyEntry {
	for _, e := range s.keys {
		if e.inConfig {
			return e
		}
	}
	return nil // loadKeys always adds it
}

// removeKey removes e; the caller holds the config lock. When the config holds
// e, it is replaced by one holding prefer if given, else the key that opened the
// repository, else the newest sound key.
func (r *Repo) removeKey(ctx context.Context, s *keySet, e *keyEntry, prefer string) (RemovedKey, error) {
	var others []*keyEntry
	var problems []string
	for _, o := range s.keys {
		switch {
		case o == e:
		case o.sound:
			others = append(others, o)
		case o.problem != "":
			problems = append(problems, o.problem)
		}
	}
	if len(others) == 0 {
		if len(s.keys) == 1 {
			return RemovedKey{}, fmt.Errorf("key remove on %s: key %s is the repository's last key, and without it nothing could open the repository; add another with 'pgward key add' first", r.st, e.id)
		}
		return RemovedKey{}, fmt.Errorf("key remove on %s: no other key of the repository is sound (%s), so removing key %s could leave nothing that opens it; add a key with 'pgward key add' first", r.st, strings.Join(problems, "; "), e.id)
	}
	res := RemovedKey{ID: e.id, WasOpened: e.id == r.keys.opened}
	next := others[len(others)-1]
	for _, want := range []string{r.keys.opened, prefer} {
		for _, o := range others {
			if o.id == want && want != "" {
				next = o
			}
		}
	}
	res.ConfigKey = s.configKey().id
	if e.inConfig {
		cfg, err := rewriteConfig(ctx, r.st, func(c Config) (Config, error) {
			if c.ID != s.cfg.ID {
				return c, fmt.Errorf("key remove on %s: the config changed to another repository's: %w", r.st, ErrCorrupt)
			}
			c.Key = next.wrapped
			return c, nil
		})
		if err != nil {
			return RemovedKey{}, fmt.Errorf("key remove on %s: %w", r.st, err)
		}
		if res.ConfigKey, err = cfg.keyCheck(); err != nil {
			return RemovedKey{}, err
		}
	}
	if e.object {
		if err := r.st.Delete(ctx, keysPrefix+e.id); err != nil {
			return RemovedKey{}, fmt.Errorf("key remove on %s: deleting %s%s: %w", r.st, keysPrefix, e.id, err)
		}
	}
	for _, o := range s.keys {
		if o != e {
			res.Remaining = append(res.Remaining, o.id)
		}
	}
	return res, nil
}

func hostName() string {
	h, _ := os.Hostname()
	return h
}

func userName() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return os.Getenv("USER")
}
