package sftp

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/storagetest"
	"github.com/pgward/pgward/test/sshtest"
)

func testConfig(srv *sshtest.Server, dir string) Config {
	return Config{User: srv.User, Host: "127.0.0.1", Port: srv.Port, Path: dir,
		IdentityFile: srv.KeyFile, KnownHostsFile: srv.KnownHosts}
}

// TestConformance runs the suite with a directory per subtest (created by Create).
func TestConformance(t *testing.T) {
	srv := sshtest.Start(t)
	t.Setenv("SSH_AUTH_SOCK", "")
	n := 0
	storagetest.Run(t, func(t *testing.T) repo.Storage {
		n++
		st, err := Create(t.Context(), testConfig(srv, filepath.Join(srv.Dir, fmt.Sprintf("r%d", n), "repo")))
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	})
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Config
		err  string
	}{
		{in: "sftp://backup@db1.example:2222/srv/pgward", want: Config{User: "backup", Host: "db1.example", Port: 2222, Path: "/srv/pgward"}},
		{in: "sftp://host/srv/pgward/", want: Config{Host: "host", Path: "/srv/pgward"}},
		{in: "sftp://u@host/~/backups", want: Config{User: "u", Host: "host", Path: "backups"}},
		{in: "sftp://u@[::1]:22/x", want: Config{User: "u", Host: "::1", Port: 22, Path: "/x"}},
		{in: "sftp://u:secret@host/x", err: "a password in the URL is not allowed"},
		{in: "sftp://host", err: "no repository directory"},
		{in: "sftp://host:99999/x", err: "port"},
		{in: "sftp://host/a/../b", err: "'..'"},
	} {
		got, err := ParseURL(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseURL(%q) error %v, want one containing %q", tc.in, err, tc.err)
		case tc.err != "" && strings.Contains(err.Error(), "secret"):
			t.Errorf("ParseURL(%q) error shows the password: %v", tc.in, err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("ParseURL(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

// TestOpenErrors: an unknown host key, a missing known_hosts file, a key the server does
// not accept, a key others can read and a missing directory each give one sentence, and
// nothing is written.
func TestOpenErrors(t *testing.T) {
	srv := sshtest.Start(t)
	t.Setenv("SSH_AUTH_SOCK", "")
	dir := t.TempDir()
	emptyKnown := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(emptyKnown, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	otherKey := filepath.Join(dir, "other_key")
	sshtest.NewKey(t, otherKey)
	openKey := filepath.Join(dir, "open_key")
	sshtest.NewKey(t, openKey)
	if err := os.Chmod(openKey, 0o644); err != nil {
		t.Fatal(err)
	}
	repoDir := filepath.Join(srv.Dir, "repo")
	with := func(f func(*Config)) Config {
		c := testConfig(srv, repoDir)
		f(&c)
		return c
	}
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"UnknownHostKey", with(func(c *Config) { c.KnownHostsFile = emptyKnown }), "the host key of 127.0.0.1 is unknown (not in " + emptyKnown + ")"},
		{"NoKnownHosts", with(func(c *Config) { c.KnownHostsFile = filepath.Join(dir, "none") }), "does not exist, so the host key of 127.0.0.1 cannot be checked"},
		{"ChangedHostKey", with(func(c *Config) { c.KnownHostsFile = changedKnownHosts(t, srv) }), "the host key of 127.0.0.1 has CHANGED"},
		{"WrongKey", with(func(c *Config) { c.IdentityFile = otherKey }), "the server refused every key offered for user " + srv.User},
		{"OpenKey", with(func(c *Config) { c.IdentityFile = openKey }), "is accessible to group or others"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, create := range []bool{false, true} {
				open := Open
				if create {
					open = Create
				}
				_, err := open(t.Context(), tc.cfg)
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Open (create %v): %v\nwant it to contain %q", create, err, tc.want)
				}
				if _, serr := os.Stat(repoDir); serr == nil {
					t.Fatalf("Create made %s although the connection was refused", repoDir)
				}
			}
		})
	}
	if _, err := Open(t.Context(), testConfig(srv, repoDir)); err == nil ||
		!strings.Contains(err.Error(), "repository directory "+repoDir+" does not exist on 127.0.0.1 (create it, or run pgward init which creates it)") {
		t.Fatalf("Open of a missing directory: %v", err)
	}

	// accept-new records the unknown key, and later connections check it.
	t.Run("AcceptNew", func(t *testing.T) {
		c := with(func(c *Config) { c.KnownHostsFile = emptyKnown; c.AcceptNewHostKey = true })
		st, err := Create(t.Context(), c)
		if err != nil {
			t.Fatalf("Create with accept-new: %v", err)
		}
		st.Close()
		b, _ := os.ReadFile(emptyKnown)
		if !strings.Contains(string(b), fmt.Sprintf("[127.0.0.1]:%d ssh-ed25519 ", srv.Port)) {
			t.Fatalf("known_hosts after accept-new: %q", b)
		}
		c.AcceptNewHostKey = false
		st, err = Open(t.Context(), c)
		if err != nil {
			t.Fatalf("Open with the recorded key: %v", err)
		}
		st.Close()
	})
}

// changedKnownHosts writes a known_hosts file holding another key for the server.
func changedKnownHosts(t *testing.T, srv *sshtest.Server) string {
	t.Helper()
	b, err := os.ReadFile(srv.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(b))
	fields[2] = "AAAAC3NzaC1lZDI1NTE5AAAAIKJ0dJhlIYJ1wQ0V0pn2Zxw7Ea0FzOWNsbKHFtsmlsbn"
	p := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(p, []byte(strings.Join(fields, " ")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAgent: with no identity file and no default keys, the key held by the user's ssh agent
// (OpenSSH's ssh-agent, loaded with ssh-add) logs in.
func TestAgent(t *testing.T) {
	agentBin, err := exec.LookPath("ssh-agent")
	if err != nil {
		t.Skipf("ssh-agent is not installed (openssh-client): %v", err)
	}
	srv := sshtest.Start(t)
	sock := filepath.Join(t.TempDir(), "agent.sock")
	agent := exec.Command(agentBin, "-D", "-a", sock)
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Process.Kill(); agent.Wait() })
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	add := exec.Command("ssh-add", srv.KeyFile)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v\n%s", err, out)
	}
	t.Setenv("SSH_AUTH_SOCK", sock)
	t.Setenv("HOME", t.TempDir()) // no default keys
	c := testConfig(srv, filepath.Join(srv.Dir, "agent-repo"))
	c.IdentityFile = ""
	st, err := Create(t.Context(), c)
	if err != nil {
		t.Fatalf("Create with the agent's key: %v", err)
	}
	defer st.Close()
	if err := st.Put(t.Context(), "x", strings.NewReader("agent"), 5); err != nil {
		t.Fatal(err)
	}

	// Without the agent, nothing is left to offer: one sentence says where keys come from.
	t.Setenv("SSH_AUTH_SOCK", "")
	if _, err := Open(t.Context(), c); err == nil || !strings.Contains(err.Error(), "no ssh key to log in to 127.0.0.1 with") {
		t.Fatalf("Open with no key at all: %v", err)
	}
}

// TestLeftovers: a temp file a killed Put left is reported under the object it was for,
// with its size and time, and removed; nothing outside the repository's temp files is.
func TestLeftovers(t *testing.T) {
	srv := sshtest.Start(t)
	t.Setenv("SSH_AUTH_SOCK", "")
	dir := filepath.Join(srv.Dir, "leftovers")
	st, err := Create(t.Context(), testConfig(srv, dir))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Put(t.Context(), "chunks/ab/abcd", strings.NewReader("whole"), 5); err != nil {
		t.Fatal(err)
	}
	// What a Put killed between its write and its rename leaves.
	tmp := filepath.Join(dir, "chunks", "ab", tempName("abce", "0123456789abcdef"))
	if err := os.WriteFile(tmp, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	var got []repo.Leftover
	for _, prefix := range []string{"", "chunks/", "chunks/ab/abc"} {
		got = nil
		if err := st.Leftovers(t.Context(), prefix, func(l repo.Leftover) error { got = append(got, l); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Name != "chunks/ab/abce" || got[0].Size != 7 || got[0].Started.IsZero() {
			t.Fatalf("Leftovers(%q) = %+v, want the temp file of chunks/ab/abce", prefix, got)
		}
	}
	if err := st.Leftovers(t.Context(), "chunks/ab/abcd", func(l repo.Leftover) error {
		return fmt.Errorf("Leftovers(\"chunks/ab/abcd\") reported %+v", l)
	}); err != nil {
		t.Fatal(err)
	}
	if names := listNames(t, st); len(names) != 1 || names[0] != "chunks/ab/abcd" {
		t.Fatalf("List shows %v, want only the object", names)
	}
	bad := got[0]
	bad.Ref = filepath.Join(dir, "chunks", "ab", "abcd")
	if err := st.RemoveLeftover(t.Context(), bad); err == nil {
		t.Fatal("RemoveLeftover removed an object")
	}
	if err := st.RemoveLeftover(t.Context(), got[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("the temp file is still there: %v", err)
	}
	if err := st.RemoveLeftover(t.Context(), got[0]); err != nil {
		t.Fatalf("RemoveLeftover of one already gone: %v", err)
	}
}

func listNames(t *testing.T, st *Storage) []string {
	t.Helper()
	var names []string
	if err := st.List(t.Context(), "", func(o repo.ObjectInfo) error { names = append(names, o.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	return names
}
