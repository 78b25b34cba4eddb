package repo

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/pgward/pgward/crypt"
)

// FormatVersion is the repository format init creates; this code reads every
// format from MinFormatVersion on (docs/repository-format.md).
const (
	FormatVersion    = 2
	MinFormatVersion = 1
)

// Defaults of the format-2 settings (docs/repository-format.md, "Format 2").
const (
	// DefaultPackThreshold: chunks smaller than this go into packs.
	DefaultPackThreshold = 1 << 20
	// DefaultPackSize bounds a pack.
	DefaultPackSize = 8 << 20
	// DefaultMaxDeltaDepth bounds a chain of page deltas.
	DefaultMaxDeltaDepth = 8
)

// DefaultChunkSize is the size of the pieces file data is split into. 4 MiB keeps
// the number of objects (and S3 requests) per terabyte near 250k while leaving
// enough chunks in a single 1 GiB relation segment for restore to spread it
// over all workers; docs/repository-format.md explains the choice.
const DefaultChunkSize = 4 << 20

// configName is the one object that is stored in plain JSON: it must be read
// before any key is known.
const configName = "config"

// Config is the repository's root object.
type Config struct {
	Format     int       `json:"format"`
	ID         string    `json:"id"`
	Created    time.Time `json:"created"`
	ChunkSize  int       `json:"chunk_size"`
	Encryption string    `json:"encryption"` // "none" or "aes-256-gcm"
	// Key holds the master key wrapped with the passphrase (encrypted repositories).
	Key *crypt.WrappedKey `json:"key,omitempty"`
	// PlainKey is the master key in hex (unencrypted repositories: it only keys the
	// content hash, it protects nothing).
	PlainKey string `json:"plain_key,omitempty"`
	// Format-2 settings (zero in format 1): chunks below PackThreshold bytes are
	// packed into packs of at most PackSize bytes; page deltas chain at most
	// MaxDeltaDepth deep.
	PackThreshold int `json:"pack_threshold,omitempty"`
	PackSize      int `json:"pack_size,omitempty"`
	MaxDeltaDepth int `json:"max_delta_depth,omitempty"`
	// KeyCheck is a check value of the stored key (Key or PlainKey): the first 8
	// bytes of SHA-256 over it, in hex. The config is plain JSON that people open
	// in editors; an edited key would otherwise surface as a wrong passphrase or
	// as every chunk failing its hash. Absent in repositories made before it.
	KeyCheck string `json:"key_check,omitempty"`
}

// keyCheck computes Config.KeyCheck. For an encrypted repository it is the ID
// of the key the config holds (wrappedKeyID).
func (c *Config) keyCheck() (string, error) {
	if c.Key != nil {
		return wrappedKeyID(*c.Key)
	}
	sum := sha256.Sum256([]byte(c.PlainKey))
	return hex.EncodeToString(sum[:8]), nil
}

// InitOptions control a new repository.
type InitOptions struct {
	// Passphrase, when non-nil, makes the repository encrypted.
	Passphrase []byte
	ChunkSize  int
	// KDF overrides the default key-derivation parameters (tests use cheaper ones).
	KDF *crypt.KDFParams
	// Format is the format to create (default FormatVersion; 1 makes a
	// repository an older pgward can use).
	Format int
	// PackThreshold, PackSize and MaxDeltaDepth override the format-2 defaults.
	PackThreshold, PackSize, MaxDeltaDepth int
}

// ErrNotRepository is wrapped when the storage holds no repository config.
var ErrNotRepository = errors.New("no pgward repository")

// ErrWrongPassphrase is wrapped when the passphrase does not unwrap the master key.
var ErrWrongPassphrase = crypt.ErrWrongPassphrase

// ErrNeedPassphrase is returned by Open for an encrypted repository when no
// passphrase source is configured.
var ErrNeedPassphrase = errors.New("the repository is encrypted and no passphrase was given")

// Init creates a repository in st. It fails, changing nothing, when st already
// holds one.
func Init(ctx context.Context, st Storage, o InitOptions) (*Repo, error) {
	if exists, err := Exists(ctx, st); err != nil {
		return nil, fmt.Errorf("init %s: %w", st, err)
	} else if exists {
		return nil, fmt.Errorf("init %s: a repository already exists there; use it, or choose an empty location", st)
	}
	if o.ChunkSize == 0 {
		o.ChunkSize = DefaultChunkSize
	}
	if o.ChunkSize < 64<<10 || o.ChunkSize > 64<<20 {
		return nil, fmt.Errorf("init %s: chunk size %d KiB is outside 64 to 65536 KiB", st, o.ChunkSize>>10)
	}
	var idb [16]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return nil, err
	}
	master, err := crypt.NewMasterKey()
	if err != nil {
		return nil, err
	}
	if o.Format == 0 {
		o.Format = FormatVersion
	}
	if o.Format < MinFormatVersion || o.Format > FormatVersion {
		return nil, fmt.Errorf("init %s: format %d is not one this pgward writes (%d to %d)", st, o.Format, MinFormatVersion, FormatVersion)
	}
	cfg := Config{Format: o.Format, ID: hex.EncodeToString(idb[:]), Created: time.Now().UTC(), ChunkSize: o.ChunkSize, Encryption: "none"}
	if o.Format >= 2 {
		cfg.PackThreshold, cfg.PackSize, cfg.MaxDeltaDepth = o.PackThreshold, o.PackSize, o.MaxDeltaDepth
	}
	cfg.setFormat2Defaults()
	if o.Passphrase != nil {
		if len(o.Passphrase) == 0 {
			return nil, fmt.Errorf("init %s: the passphrase is empty", st)
		}
		p := o.KDF
		if p == nil {
			dp, err := crypt.DefaultKDFParams()
			if err != nil {
				return nil, err
			}
			p = &dp
		}
		w, err := crypt.WrapKey(master, o.Passphrase, *p)
		if err != nil {
			return nil, fmt.Errorf("init %s: wrapping the master key: %w", st, err)
		}
		cfg.Encryption = "aes-256-gcm"
		cfg.Key = &w
	} else {
		cfg.PlainKey = hex.EncodeToString(master)
	}
	if cfg.KeyCheck, err = cfg.keyCheck(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	b = append(b, '\n')
	if err := st.Put(ctx, configName, bytes.NewReader(b), int64(len(b))); err != nil {
		if errors.Is(err, ErrExists) {
			return nil, fmt.Errorf("init %s: a repository already exists there; use it, or choose an empty location", st)
		}
		return nil, fmt.Errorf("init %s: writing config: %w", st, err)
	}
	r, err := newRepo(st, cfg, master)
	if err != nil {
		return nil, err
	}
	r.unlocked(master, cfg)
	return r, nil
}

// setFormat2Defaults fills the format-2 settings of a format-2 config.
func (c *Config) setFormat2Defaults() {
	if c.Format < 2 {
		return
	}
	if c.PackThreshold == 0 {
		c.PackThreshold = DefaultPackThreshold
	}
	if c.PackSize == 0 {
		c.PackSize = DefaultPackSize
	}
	if c.MaxDeltaDepth == 0 {
		c.MaxDeltaDepth = DefaultMaxDeltaDepth
	}
}

// upgradedConfigName is where `pgward upgrade` writes the config of a repository
// raised from format 1 to 2; it is read before configName (docs/repository-format.md, "Format 2",
// "Format versions and upgrade").
const upgradedConfigName = "config-2"

// Exists reports whether st holds a repository (a config object under either
// of its names).
func Exists(ctx context.Context, st Storage) (bool, error) {
	for _, name := range []string{upgradedConfigName, configName} {
		_, err := st.Stat(ctx, name)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return false, err
		}
	}
	return false, nil
}

// readConfig returns the raw config and its name: config-2 when it exists,
// else config. A config being replaced (configwrite.go) moves between the two
// names, and a reader can look for config-2 just before it appears and for
// config just after it went, so finding neither is checked once more.
func readConfig(ctx context.Context, st Storage) (name string, raw []byte, err error) {
	for range 2 {
		for _, name := range []string{upgradedConfigName, configName} {
			rc, err := st.Get(ctx, name)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return "", nil, fmt.Errorf("opening repository %s: %w", st, err)
			}
			b, err := io.ReadAll(io.LimitReader(rc, 1<<20))
			rc.Close()
			if err != nil {
				return "", nil, fmt.Errorf("opening repository %s: reading %s: %w", st, name, err)
			}
			return name, b, nil
		}
	}
	return "", nil, fmt.Errorf("%w at %s: run 'pgward init --repo %s' first, or check the --repo path", ErrNotRepository, st, st)
}

// parseConfig decodes and checks a raw config.
func parseConfig(st Storage, b []byte) (Config, error) {
	var cfg Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return cfg, fmt.Errorf("opening repository %s: config is not valid JSON (%v): %w", st, err, ErrCorrupt)
	}
	if cfg.Format < MinFormatVersion || cfg.Format > FormatVersion {
		return cfg, fmt.Errorf("opening repository %s: format version %d is not supported by this pgward (it reads versions %d to %d)", st, cfg.Format, MinFormatVersion, FormatVersion)
	}
	if cfg.Format >= 2 && (cfg.PackThreshold <= 0 || cfg.PackSize <= 0 || cfg.MaxDeltaDepth <= 0 || cfg.MaxDeltaDepth > 255) {
		return cfg, fmt.Errorf("opening repository %s: config has invalid pack or delta settings: %w", st, ErrCorrupt)
	}
	if cfg.ChunkSize < 64<<10 || cfg.ChunkSize > 64<<20 {
		return cfg, fmt.Errorf("opening repository %s: config has an invalid chunk size %d: %w", st, cfg.ChunkSize, ErrCorrupt)
	}
	if cfg.KeyCheck != "" {
		if want, err := cfg.keyCheck(); err != nil || want != cfg.KeyCheck {
			return cfg, fmt.Errorf("opening repository %s: the key in its config does not match the config's key_check, so the config was edited or damaged: %w; put back the original config (every repository of a set has its own)", st, ErrCorrupt)
		}
	}
	switch cfg.Encryption {
	case "none":
	case "aes-256-gcm":
		if cfg.Key == nil {
			return cfg, fmt.Errorf("opening repository %s: config lacks the wrapped key: %w", st, ErrCorrupt)
		}
	default:
		return cfg, fmt.Errorf("opening repository %s: unknown encryption %q", st, cfg.Encryption)
	}
	return cfg, nil
}

// Open reads the config of the repository in st and unlocks it. passphrase is
// called only when the repository is encrypted; it is tried on the config's key
// first, then on every key object (keys.go).
func Open(ctx context.Context, st Storage, passphrase func() ([]byte, error)) (*Repo, error) {
	_, b, err := readConfig(ctx, st)
	if err != nil {
		return nil, err
	}
	cfg, err := parseConfig(st, b)
	if err != nil {
		return nil, err
	}
	var master []byte
	var opened string
	if cfg.Encryption == "none" {
		if master, err = hex.DecodeString(cfg.PlainKey); err != nil || len(master) != 32 {
			return nil, fmt.Errorf("opening repository %s: config has an invalid key: %w", st, ErrCorrupt)
		}
	} else {
		if passphrase == nil {
			return nil, fmt.Errorf("opening repository %s: %w; set PGWARD_PASSPHRASE, --passphrase-file or --passphrase-command", st, ErrNeedPassphrase)
		}
		pp, err := passphrase()
		if err != nil {
			return nil, fmt.Errorf("opening repository %s: reading the passphrase: %w", st, err)
		}
		if master, opened, err = unlock(ctx, st, cfg, pp); err != nil {
			return nil, err
		}
	}
	r, err := newRepo(st, cfg, master)
	if err != nil {
		return nil, err
	}
	r.unlocked(master, cfg)
	if opened != "" {
		r.keys.opened = opened
	}
	return r, nil
}

// Repo is an open repository.
type Repo struct {
	// index is the loaded index of a format-2 repository (index.go).
	index indexCache
	// lockTiming is the lock protocol's clock, lockPolicy its patience (lock.go).
	lockTiming lockTiming
	lockPolicy LockPolicy

	st    Storage
	cfg   Config
	idKey []byte
	// hashers pools keyed hashes under idKey: a fresh HMAC costs two extra
	// SHA-256 blocks and three allocations, which a backup of thousands of
	// one-page files paid per file.
	hashers sync.Pool
	// zeroHashes maps a length to the keyed hash of that many zero bytes.
	zeroHashes sync.Map
	sealer     *crypt.Sealer
	keyID      uint64

	// keys is what the key commands need (keyops.go).
	keys openedKeys
}

func newRepo(st Storage, cfg Config, master []byte) (*Repo, error) {
	r := &Repo{st: st, cfg: cfg, idKey: crypt.DeriveKey(master, "chunk-id"), lockTiming: defaultLockTiming}
	if cfg.Encryption != "none" {
		s, err := crypt.NewSealer(crypt.DeriveKey(master, "object-encryption"))
		if err != nil {
			return nil, err
		}
		r.sealer = s
		kid := sha256.Sum256(crypt.DeriveKey(master, "key-id"))
		r.keyID = binary.BigEndian.Uint64(kid[:8])
	}
	return r, nil
}

// Storage returns the storage the repository lives in.
func (r *Repo) Storage() Storage { return r.st }

// Config returns the repository's config.
func (r *Repo) Config() Config { return r.cfg }

// Encrypted reports whether objects are encrypted.
func (r *Repo) Encrypted() bool { return r.sealer != nil }

// String names the repository for messages.
func (r *Repo) String() string { return r.st.String() }
