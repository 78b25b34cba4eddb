// Package sftp keeps repository objects as files under a directory of an SSH host, over
// SFTP (github.com/pkg/sftp on golang.org/x/crypto/ssh). Object name n is the file
// Path+"/"+n; directories are created on demand.
//
// How the repo.Storage promises map onto SFTP:
//   - Write once, atomic visibility: bytes go to a temp file ".tmp-<random>" created with
//     O_EXCL in the destination directory, which is fsynced (the fsync@openssh.com extension)
//     and closed, then renamed to the final name with SSH_FXP_RENAME. That request must fail
//     when the target exists (SFTP version 3), and OpenSSH's server implements it with
//     link(2) and unlink(2), so two writers racing for one name cannot overwrite each other
//     and exactly one wins; a failed rename whose target exists is repo.ErrExists.
//   - Durability: the file's bytes are fsynced before the rename; a server without
//     fsync@openssh.com is refused. SFTP has no way to fsync a directory, so the new name's
//     durability is the server file system's (ext4 and XFS commit a rename with their
//     journal within seconds); PutDeferred is Put and SyncDeferred does nothing.
//   - Temp files are invisible: names with a segment starting with ".tmp-" cannot be Put and
//     are skipped by List, so a temp file left by a crash is garbage, never an object.
//   - ModTime is the file's modification time, whole seconds, the same in Stat and List.
//   - List reads each directory once, sorted so that names come in byte order (directories
//     sort as name+"/").
//
// One SSH connection carries every request; the SFTP client pipelines them. When the
// connection breaks (the server restarted, the network dropped), requests fail with an
// error that repo/retry sees as transient, and the next request dials again.
//
// Authentication never takes a secret from an option: the user's ssh agent (SSH_AUTH_SOCK),
// an identity file (a path, like ssh -i), else the default keys ~/.ssh/id_ed25519,
// id_ecdsa and id_rsa. The host key is checked against a known_hosts file; an unknown host
// is refused unless AcceptNewHostKey (StrictHostKeyChecking=accept-new) records it, and a
// changed key is always refused.
package sftp

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/user"
	"path"
	"strconv"
	"strings"
	"sync"

	"github.com/pgward/pgward/repo"
)

// tempPrefix starts the names of files being written. Object names may not use it, so List
// can skip such files without ever hiding an object.
const tempPrefix = ".tmp-"

// Config says where the repository lives and how to log in.
type Config struct {
	User string // empty: the local user's name
	Host string
	Port int // 0: 22
	// Path is the repository directory: absolute, or relative to the login directory.
	Path string
	// IdentityFile is a private key to offer (unencrypted: keys with a passphrase belong in
	// the agent); empty means the agent and the default keys.
	IdentityFile string
	// KnownHostsFile is checked for the host's key; empty means ~/.ssh/known_hosts.
	KnownHostsFile string
	// AcceptNewHostKey records the key of a host that known_hosts does not name yet, instead
	// of refusing it. A key that differs from a recorded one is refused all the same.
	AcceptNewHostKey bool
}

// Storage is a repo.Storage in a directory of an SSH host.
type Storage struct {
	cfg  Config
	root string // the repository directory, without a trailing slash
	name string // for String

	mu   sync.Mutex
	conn *conn
	// dirs caches directories (relative, slash-separated) known to exist.
	dirs sync.Map
}

var _ repo.Storage = (*Storage)(nil)

// ParseURL reads "sftp://[user@]host[:port]/path". The path is absolute; "/~/path" is
// relative to the login directory.
func ParseURL(s string) (Config, error) {
	bad := func(why string) (Config, error) {
		return Config{}, fmt.Errorf("parse SFTP URL %q: %s", s, why)
	}
	if !strings.HasPrefix(s, "sftp://") {
		return bad("does not start with sftp://")
	}
	u, err := url.Parse(s)
	if err != nil {
		return bad("not a URL")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return bad("a query or fragment is not allowed")
	}
	if _, hasPass := u.User.Password(); hasPass {
		// Never echo the URL's password back: say what to do instead.
		return Config{}, errors.New("parse SFTP URL: a password in the URL is not allowed; use an ssh key (the ssh agent, an identity file or ~/.ssh/id_ed25519)")
	}
	c := Config{User: u.User.Username(), Host: u.Hostname()}
	if c.Host == "" {
		return bad("no host")
	}
	if p := u.Port(); p != "" {
		c.Port, err = strconv.Atoi(p)
		if err != nil || c.Port < 1 || c.Port > 65535 {
			return bad("port must be a number from 1 to 65535")
		}
	}
	switch p := strings.TrimRight(u.Path, "/"); {
	case p == "" || p == "/":
		return bad("no repository directory: give one, e.g. sftp://host/srv/pgward")
	case p == "/~":
		c.Path = "."
	case strings.HasPrefix(p, "/~/"):
		c.Path = p[3:]
	default:
		c.Path = p
	}
	if path.Clean(c.Path) != c.Path {
		return bad("the path must not hold '.', '..' or doubled slashes")
	}
	return c, nil
}

// Open returns the storage in an existing directory. A missing directory is an error
// wrapping fs.ErrNotExist with a sentence that says what to do.
func Open(ctx context.Context, c Config) (*Storage, error) {
	return open(ctx, c, false)
}

// Create is Open, but creates the directory (and missing parents) when it is missing.
func Create(ctx context.Context, c Config) (*Storage, error) {
	return open(ctx, c, true)
}

func open(ctx context.Context, c Config, create bool) (*Storage, error) {
	if c.Port == 0 {
		c.Port = 22
	}
	if c.User == "" {
		c.User = localUser()
	}
	s := &Storage{cfg: c, root: strings.TrimRight(c.Path, "/")}
	s.name = "sftp://" + c.User + "@" + c.Host
	if c.Port != 22 {
		s.name += ":" + strconv.Itoa(c.Port)
	}
	switch {
	case strings.HasPrefix(s.root, "/"):
		s.name += s.root
	case s.root == ".":
		s.name += "/~"
	default:
		s.name += "/~/" + s.root
	}
	cl, err := s.client(ctx)
	if err != nil {
		return nil, err
	}
	fi, err := cl.Stat(s.root)
	switch {
	case err == nil && !fi.IsDir():
		s.Close()
		return nil, &permanentError{fmt.Errorf("%s: %s is not a directory", s.name, s.root)}
	case errors.Is(err, fs.ErrNotExist) && create:
		if err := cl.MkdirAll(s.root); err != nil {
			s.Close()
			return nil, s.opError(cl, "create directory", s.root, err)
		}
	case errors.Is(err, fs.ErrNotExist):
		s.Close()
		return nil, &notExistError{msg: fmt.Sprintf("repository directory %s does not exist on %s (create it, or run pgward init which creates it)", s.root, c.Host)}
	case err != nil:
		s.Close()
		return nil, s.opError(cl, "open", s.root, err)
	}
	return s, nil
}

// notExistError is Open's error for a missing directory: one sentence, errors.Is
// fs.ErrNotExist, permanent.
type notExistError struct{ msg string }

func (e *notExistError) Error() string   { return e.msg }
func (e *notExistError) Unwrap() error   { return fs.ErrNotExist }
func (e *notExistError) Transient() bool { return false }

// localUser is the name of the user running pgward, as ssh takes it: from the user
// database, not $USER, which a server's environment may have inherited from someone else.
func localUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return os.Getenv("USER")
}

// String returns "sftp://user@host[:port]/path" ("/~/path" for a path relative to the
// login directory).
func (s *Storage) String() string { return s.name }

// checkName applies repo.ValidName plus the one rule of this backend: no segment may look
// like a temp file, or List would hide the object.
func checkName(name string) error {
	if err := repo.ValidName(name); err != nil {
		return err
	}
	for seg := range strings.SplitSeq(name, "/") {
		if strings.HasPrefix(seg, tempPrefix) {
			return fmt.Errorf("%w %q: a path segment starts with %q, which SFTP storage reserves for temp files",
				repo.ErrInvalidName, name, tempPrefix)
		}
	}
	return nil
}

// path returns the remote path of a slash-separated relative name.
func (s *Storage) path(name string) string {
	if name == "" || name == "." {
		return s.root
	}
	return s.root + "/" + name
}
