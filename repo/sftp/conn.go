package sftp

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/pgward/pgward/repo/internal/putio"
)

const (
	// dialTimeout bounds the TCP connection and the SSH handshake.
	dialTimeout = 15 * time.Second
	// requestsPerFile is how many reads or writes of one file are in flight at once.
	requestsPerFile = 64
	// keepAliveInterval and keepAliveTimeout: see conn.keepAlive.
	keepAliveInterval = 15 * time.Second
	keepAliveTimeout  = 30 * time.Second
)

// conn is one SSH connection and its SFTP session.
type conn struct {
	ssh  *ssh.Client
	sftp *sftp.Client
	dead chan struct{} // closed when the connection ended
}

func (c *conn) isDead() bool {
	select {
	case <-c.dead:
		return true
	default:
		return false
	}
}

// client returns the SFTP client of a live connection, dialing one when there is none.
func (s *Storage) client(ctx context.Context) (*sftp.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil && !s.conn.isDead() {
		return s.conn.sftp, nil
	}
	if s.conn != nil {
		s.conn.ssh.Close()
		s.conn = nil
	}
	c, err := s.dial(ctx)
	if err != nil {
		return nil, err
	}
	s.conn = c
	return c.sftp, nil
}

// Close ends the connection; the next request dials again.
func (s *Storage) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	err := s.conn.ssh.Close()
	s.conn = nil
	return err
}

func (s *Storage) dial(ctx context.Context) (*conn, error) {
	cfg := s.cfg
	hostKey, algos, err := hostKeyCheck(cfg)
	if err != nil {
		return nil, err
	}
	auths, closeAgent, err := authMethods(cfg)
	if err != nil {
		return nil, err
	}
	defer closeAgent()
	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))
	d := net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", s.name, err)
	}
	// The handshake has its deadline; so does the caller's context.
	_ = nc.SetDeadline(time.Now().Add(dialTimeout))
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(nc, addr, &ssh.ClientConfig{
		User:              cfg.User,
		Auth:              auths,
		HostKeyCallback:   hostKey,
		HostKeyAlgorithms: algos,
		Timeout:           dialTimeout,
	})
	if !stop() {
		err = errors.Join(ctx.Err(), err)
	}
	if err != nil {
		nc.Close()
		return nil, s.dialError(err)
	}
	_ = nc.SetDeadline(time.Time{})
	sshc := ssh.NewClient(sc, chans, reqs)
	sc2, err := sftp.NewClient(sshc,
		sftp.UseConcurrentWrites(true),
		sftp.MaxConcurrentRequestsPerFile(requestsPerFile),
		sftp.UseFstat(true))
	if err != nil {
		sshc.Close()
		return nil, &permanentError{fmt.Errorf("%s: start the SFTP subsystem (is SFTP enabled on the server?): %w", s.name, err)}
	}
	c := &conn{ssh: sshc, sftp: sc2, dead: make(chan struct{})}
	go func() {
		_ = sshc.Wait()
		close(c.dead)
	}()
	go c.keepAlive()
	return c, nil
}

// keepAlive asks the server for a sign of life every keepAliveInterval and closes the
// connection when none comes within keepAliveTimeout: SFTP requests have no deadline of
// their own, so a server or network that goes silent would otherwise hold them forever.
// Closing fails them with a connection error, which is retried on a new connection.
func (c *conn) keepAlive() {
	tick := time.NewTicker(keepAliveInterval)
	defer tick.Stop()
	for {
		select {
		case <-c.dead:
			return
		case <-tick.C:
		}
		answered := make(chan struct{})
		go func() {
			// Any answer, even "unknown request", proves the connection alive.
			_, _, _ = c.ssh.SendRequest("keepalive@openssh.com", true, nil)
			close(answered)
		}()
		select {
		case <-answered:
		case <-c.dead:
			return
		case <-time.After(keepAliveTimeout):
			c.ssh.Close()
			return
		}
	}
}

// dialError says why the SSH connection could not be made: refused host keys and failed
// logins are permanent; the network's failures are left for repo/retry to judge.
func (s *Storage) dialError(err error) error {
	var hk *hostKeyError
	switch {
	case errors.As(err, &hk):
		return &permanentError{fmt.Errorf("%s: %w", s.name, hk)}
	case strings.Contains(err.Error(), "unable to authenticate"):
		return &permanentError{fmt.Errorf("%s: the server refused every key offered for user %s: add the public key to the user's authorized_keys, or give the matching key with the identity file option or the ssh agent (%w)",
			s.name, s.cfg.User, err)}
	}
	return fmt.Errorf("ssh handshake with %s: %w", s.name, err)
}

// hostKeyError is a host key that known_hosts does not allow.
type hostKeyError struct{ msg string }

func (e *hostKeyError) Error() string { return e.msg }

// hostKeyCheck returns the host key callback for cfg and the host key algorithms to ask
// for: those of the keys known_hosts holds for the host, so that a server with several host
// keys presents the one that is known.
func hostKeyCheck(cfg Config) (ssh.HostKeyCallback, []string, error) {
	file := cfg.KnownHostsFile
	if file == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, nil, &permanentError{fmt.Errorf("SFTP: no known_hosts file: give one with the known-hosts option (%w)", err)}
		}
		file = filepath.Join(home, ".ssh", "known_hosts")
	}
	if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
		if !cfg.AcceptNewHostKey {
			return nil, nil, &permanentError{&hostKeyError{fmt.Sprintf(
				"the known_hosts file %s does not exist, so the host key of %s cannot be checked: add the host's key to it (verify its fingerprint first), or allow recording new host keys with --sftp-accept-new-host-key",
				file, cfg.Host)}}
		}
		if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
			return nil, nil, &permanentError{fmt.Errorf("SFTP: create the known_hosts file: %w", err)}
		}
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			return nil, nil, &permanentError{fmt.Errorf("SFTP: create the known_hosts file: %w", err)}
		}
	}
	known, err := knownhosts.New(file)
	if err != nil {
		return nil, nil, &permanentError{fmt.Errorf("SFTP: read known_hosts file %s: %w", file, err)}
	}
	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))
	var mu sync.Mutex
	cb := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := known(hostname, remote, key)
		var ke *knownhosts.KeyError
		var re *knownhosts.RevokedError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &re):
			return &hostKeyError{fmt.Sprintf("the host key of %s (%s) is marked revoked in %s: refusing to connect", cfg.Host, ssh.FingerprintSHA256(key), file)}
		case errors.As(err, &ke) && len(ke.Want) > 0:
			return &hostKeyError{fmt.Sprintf("the host key of %s has CHANGED: it presented %s %s, but %s line %d holds another; refusing to connect (someone may be intercepting the connection; if the key changed legitimately, replace that line)",
				cfg.Host, key.Type(), ssh.FingerprintSHA256(key), file, ke.Want[0].Line)}
		case errors.As(err, &ke) && cfg.AcceptNewHostKey:
			mu.Lock()
			defer mu.Unlock()
			return appendKnownHost(file, hostname, key)
		case errors.As(err, &ke):
			return &hostKeyError{fmt.Sprintf("the host key of %s is unknown (not in %s): verify its fingerprint %s %s and add it to that file (ssh-keyscan -p %d %s), or allow recording new host keys with --sftp-accept-new-host-key",
				cfg.Host, file, key.Type(), ssh.FingerprintSHA256(key), cfg.Port, cfg.Host)}
		}
		return err
	}
	return cb, knownAlgorithms(known, addr), nil
}

// knownAlgorithms asks the known_hosts callback which keys it holds for addr (it lists them
// when shown a key it does not know) and returns their algorithms; nil (the default list)
// when it holds none.
func knownAlgorithms(known ssh.HostKeyCallback, addr string) []string {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil
	}
	probe, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil
	}
	tcp, _ := net.ResolveTCPAddr("tcp", addr)
	var ke *knownhosts.KeyError
	if !errors.As(known(addr, tcp, probe), &ke) {
		return nil
	}
	var algos []string
	for _, k := range ke.Want {
		switch t := k.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			algos = append(algos, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		default:
			algos = append(algos, t)
		}
	}
	return algos
}

// appendKnownHost records key for hostname, as ssh's accept-new does.
func appendKnownHost(file, hostname string, key ssh.PublicKey) error {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("record the new host key in %s: %w", file, err)
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key)
	if _, err := f.WriteString(line + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("record the new host key in %s: %w", file, err)
	}
	return f.Close()
}

// authMethods returns the keys to offer: the agent's, then the identity file's (or the
// default keys'). The returned function closes the agent connection.
func authMethods(cfg Config) ([]ssh.AuthMethod, func(), error) {
	var signers []ssh.Signer
	closeAgent := func() {}
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" {
		if ac, err := net.Dial("unix", sock); err == nil {
			closeAgent = func() { ac.Close() }
			if ss, err := agent.NewClient(ac).Signers(); err == nil {
				signers = append(signers, ss...)
			}
		}
	}
	if cfg.IdentityFile != "" {
		s, err := loadKey(cfg.IdentityFile)
		if err != nil {
			closeAgent()
			return nil, nil, &permanentError{err}
		}
		signers = append(signers, s)
	} else if home, err := os.UserHomeDir(); err == nil {
		for _, n := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			// Default keys that cannot be used (missing, or protected by a passphrase) are
			// skipped, as ssh skips them.
			if s, err := loadKey(filepath.Join(home, ".ssh", n)); err == nil {
				signers = append(signers, s)
			}
		}
	}
	if len(signers) == 0 {
		closeAgent()
		return nil, nil, &permanentError{fmt.Errorf("no ssh key to log in to %s with: start an ssh agent holding the key (SSH_AUTH_SOCK), give an identity file with --sftp-identity-file, or create ~/.ssh/id_ed25519", cfg.Host)}
	}
	return []ssh.AuthMethod{ssh.PublicKeys(signers...)}, closeAgent, nil
}

// loadKey reads an unencrypted private key that only its owner may read, as ssh requires.
func loadKey(file string) (ssh.Signer, error) {
	fi, err := os.Stat(file)
	if err != nil {
		return nil, fmt.Errorf("SFTP identity file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("SFTP identity file %s is accessible to group or others (mode %04o): chmod 600 it, as ssh requires", file, fi.Mode().Perm())
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("SFTP identity file: %w", err)
	}
	s, err := ssh.ParsePrivateKey(b)
	var pp *ssh.PassphraseMissingError
	switch {
	case errors.As(err, &pp):
		return nil, fmt.Errorf("SFTP identity file %s is protected by a passphrase: load it into an ssh agent (ssh-add) and let pgward use the agent (SSH_AUTH_SOCK)", file)
	case err != nil:
		return nil, fmt.Errorf("SFTP identity file %s is not a private key ssh can read: %w", file, err)
	}
	return s, nil
}

// permanentError marks an error that repo/retry must not repeat.
type permanentError struct{ err error }

func (e *permanentError) Error() string   { return e.err.Error() }
func (e *permanentError) Unwrap() error   { return e.err }
func (e *permanentError) Transient() bool { return false }

// connError is a request that failed because the connection did: transient, and the next
// request dials again.
type connError struct{ err error }

func (e *connError) Error() string   { return e.err.Error() }
func (e *connError) Unwrap() error   { return e.err }
func (e *connError) Transient() bool { return true }

// opError builds the error of an operation on a remote path: a failure of the connection is
// transient; the server's own answers (permission denied, no space, ...) and the caller's
// reader's failures are not.
func (s *Storage) opError(cl *sftp.Client, op, p string, err error) error {
	var src *putio.SourceError
	var status *sftp.StatusError
	switch {
	case errors.As(err, &src), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s %s:%s: %w", op, s.name, p, err)
	case errors.Is(err, sftp.ErrSSHFxConnectionLost), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed), s.lost(cl):
		return fmt.Errorf("%s %s:%s: %w", op, s.name, p, &connError{err})
	case errors.As(err, &status), errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s %s:%s: %w", op, s.name, p, &permanentError{err})
	}
	return fmt.Errorf("%s %s:%s: %w", op, s.name, p, err)
}

// lost reports whether the connection of cl has ended.
func (s *Storage) lost(cl *sftp.Client) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn != nil && s.conn.sftp == cl && s.conn.isDead()
}
