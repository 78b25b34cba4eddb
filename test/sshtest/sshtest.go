// Package sshtest runs OpenSSH's sshd for tests: on a free 127.0.0.1 port, with a throwaway
// ed25519 host key and config, accepting one throwaway user key for the user the test runs
// as, with the SFTP subsystem in-process (internal-sftp). The system's sshd and its config
// are not touched.
//
// sshd comes from the Debian package openssh-server, installed by scripts/install-sshd.sh.
// A test that finds it missing is skipped, saying so.
package sshtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/pgward/pgward/test/servertest"
)

const sshd = "/usr/sbin/sshd"

// Server is a running sshd.
type Server struct {
	*servertest.Proc
	// User logs in with the private key in KeyFile (OpenSSH format, mode 0600).
	User    string
	KeyFile string
	// KnownHosts is a known_hosts file naming this server's host key; HostKey is that key.
	KnownHosts string
	HostKey    ssh.PublicKey
	// Dir is a directory for the test's use, writable by User.
	Dir string
}

// Start starts sshd and stops it when the test ends; it skips the test when sshd is not
// installed.
func Start(t testing.TB) *Server {
	t.Helper()
	servertest.Skip(t, "sshd (openssh-server)", sshd, "scripts/install-sshd.sh")
	u, err := user.Current()
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	dir := t.TempDir()
	s := &Server{User: u.Username, Dir: filepath.Join(dir, "data")}
	if err := os.Mkdir(s.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	hostKeyFile := filepath.Join(dir, "host_ed25519")
	s.HostKey = writeKey(t, hostKeyFile)
	s.KeyFile = filepath.Join(dir, "id_ed25519")
	userKey := writeKey(t, s.KeyFile)
	authorized := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorized, ssh.MarshalAuthorizedKey(userKey), 0o600); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		// sshd's privilege separation directory, which its service unit would create.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatalf("sshtest: %v", err)
		}
	}
	config := filepath.Join(dir, "sshd_config")
	s.Proc = servertest.Start(t, servertest.Spec{
		Name: "sshd",
		Path: sshd,
		Args: func(port int) []string {
			conf := strings.Join([]string{
				fmt.Sprintf("Port %d", port),
				"ListenAddress 127.0.0.1",
				"HostKey " + hostKeyFile,
				"PidFile none",
				"AuthorizedKeysFile " + authorized,
				// The temp dir's parents are world-writable (/tmp): sshd would refuse the file.
				"StrictModes no",
				"PubkeyAuthentication yes",
				"PasswordAuthentication no",
				"KbdInteractiveAuthentication no",
				"PermitRootLogin prohibit-password",
				"UsePAM no",
				"AllowUsers " + u.Username,
				"Subsystem sftp internal-sftp",
				"LogLevel ERROR",
				"",
			}, "\n")
			if err := os.WriteFile(config, []byte(conf), 0o600); err != nil {
				t.Fatalf("sshtest: %v", err)
			}
			return []string{"-D", "-e", "-f", config}
		},
		Dir: dir,
	})
	s.KnownHosts = filepath.Join(dir, "known_hosts")
	line := knownhosts.Line([]string{knownhosts.Normalize(s.Addr)}, s.HostKey)
	if err := os.WriteFile(s.KnownHosts, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// URL returns the sftp:// URL of path on this server.
func (s *Server) URL(path string) string {
	return fmt.Sprintf("sftp://%s@127.0.0.1:%d%s", s.User, s.Port, path)
}

// writeKey writes a new ed25519 private key to path in OpenSSH format and returns its public key.
func writeKey(t testing.TB, path string) ssh.PublicKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "pgward test key")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return sshPub
}

// NewKey writes another ed25519 private key (one the server does not accept) to path.
func NewKey(t testing.TB, path string) { writeKey(t, path) }
