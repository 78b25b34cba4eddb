package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestExitStatuses runs one case of every documented exit status (README, "Exit
// statuses"); check --nagios's own statuses are in TestCheck, and wal-receive's 4 after the
// server removed its WAL in TestReceiveWALRemoved.
func TestExitStatuses(t *testing.T) {
	a := startEvents(t, 15)
	conn := a.c.ConnString("postgres")
	bad := filepath.Join(a.work, "bad.toml")
	os.WriteFile(bad, []byte("repo = \"/x\"\njbos = 3\n"), 0o644)
	cases := []struct {
		name  string
		code  int
		wants []string
		args  []string
	}{
		{"success", 0, nil, []string{"list", "--repo", a.repo}},
		{"not archived", 1, nil, []string{"archive-get", "--repo", a.repo, "000000010000000000000099", filepath.Join(a.work, "x")}},
		{"unknown command", 2, []string{`unknown command "backp"`, "backup"}, []string{"backp"}},
		{"unknown flag", 2, []string{"unknown flag: --jbos", "did you mean --jobs?"}, []string{"backup", "--jbos", "2"}},
		{"missing argument", 2, []string{"needs BACKUP-ID"}, []string{"pin", "--repo", a.repo}},
		{"bad option value", 2, []string{"--jobs", "at least 1"}, []string{"backup", "--repo", a.repo, "--conn", conn, "--jobs", "0"}},
		{"bad config file", 2, []string{"line 2", `unknown key "jbos"`, "did you mean jobs?"}, []string{"list", "--config", bad}},
		{"failure", 3, []string{"does not exist"}, []string{"list", "--repo", filepath.Join(a.work, "nothing")}},
		{"unknown cluster", 3, []string{`cluster "nosuch" is in no repository`, "main"}, []string{"list", "--repo", a.repo, "--cluster", "nosuch"}},
		{"archive-get fatal", 200, []string{"does not exist"}, []string{"archive-get", "--repo", filepath.Join(a.work, "nothing"), "000000010000000000000001", filepath.Join(a.work, "y")}},
	}
	for _, tc := range cases {
		r := runPgward(t, true, nil, tc.args...)
		if r.code != tc.code {
			t.Errorf("%s: pgward %s exited %d, want %d: %s", tc.name, strings.Join(tc.args, " "), r.code, tc.code, r)
		}
		for _, w := range tc.wants {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%s: the message does not say %q: %s", tc.name, w, r.stderr)
			}
		}
	}
	// Interrupted: a slow backup stopped with SIGINT exits 130 and commits nothing.
	before := len(backupIDs(t, a.repo))
	a.c.Pgbench(t, "postgres", "-i", "-q", "-s", "2")
	cmd := exec.Command(pgwardBin, "backup", "--repo", a.repo, "--conn", conn, "--checkpoint", "fast", "--max-rate", "32")
	cmd.Env = cleanEnv()
	asPostgresUser(cmd)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Errorf("a backup interrupted by SIGINT: %v, want exit 130\n%s", err, stderr.String())
	}
	if after := len(backupIDs(t, a.repo)); after != before {
		t.Errorf("the interrupted backup was committed: %d → %d backups", before, after)
	}
}

// TestJSONOutputs parses the --json output of the commands that report a result and
// checks the documented keys (check, drill, expire, key list, verify and info are parsed
// in their own tests).
func TestJSONOutputs(t *testing.T) {
	a := startEvents(t, 15)
	conn := a.c.ConnString("postgres")
	insertRows(t, a.c, 1, 5)
	keys := func(what, text string, want ...string) map[string]any {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal([]byte(text), &m); err != nil {
			t.Fatalf("%s --json: %v\n%s", what, err, text)
		}
		for _, k := range want {
			if _, ok := m[k]; !ok {
				t.Errorf("%s --json lacks %q: %s", what, k, text)
			}
		}
		return m
	}
	b := keys("backup", pgwardPG(t, nil, "backup", "--json", "--repo", a.repo, "--conn", conn, "--checkpoint", "fast").stdout,
		"backup", "cluster", "start_lsn", "stop_lsn", "timeline", "read_bytes", "stored_bytes", "duration_seconds", "repos")
	if b["read_bytes"].(float64) <= 0 {
		t.Errorf("backup --json: read_bytes %v", b["read_bytes"])
	}
	switchAndWait(t, a.c)
	target := filepath.Join(a.work, "r-json")
	keys("restore", pgwardPG(t, nil, "restore", "--json", "--repo", a.repo, "--pgdata", target).stdout,
		"backup", "cluster", "pgdata", "target", "delta", "written_bytes", "kept_bytes", "removed", "duration_seconds", "archive_mode", "standby")
	keys("list", pgwardPG(t, nil, "list", "--json", "--repo", a.repo).stdout, "backups", "clusters")
	keys("version", pgwardPG(t, nil, "version", "--json").stdout, "version", "go", "repository_format", "manifest_format", "platform")
}
