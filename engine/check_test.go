package engine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestArchiveCommandLine(t *testing.T) {
	got := ArchiveCommandLine("/usr/bin/pgward", []string{"/srv/backup", "/mnt/it's here"}, "main")
	want := `archive_command = '/usr/bin/pgward archive-push --repo /srv/backup --repo ''/mnt/it''\''''s here'' %p'`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if got := ArchiveCommandLine("pgward", []string{"/r"}, "db2"); got != `archive_command = 'pgward archive-push --repo /r --cluster db2 %p'` {
		t.Errorf("with cluster: %s", got)
	}
	// What the line suggests must pass the check it comes from.
	cmd := `/usr/bin/pgward archive-push --repo /srv/backup --repo '/mnt/it'\''s here' --cluster db2 %p`
	if _, err := CheckArchiveCommand(cmd, []string{"/srv/backup", "/mnt/it's here"}, "db2", ""); err != nil {
		t.Errorf("suggested command refused: %v", err)
	}
}

func TestCheckArchiveCommand(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, cmd, cluster, config string
		wantErr, wantWarn          string
	}{
		{"ok", "/bin/pgward archive-push --repo " + dir + " %p", "main", "", "", ""},
		{"ok equals and trailing slash", "pgward archive-push --repo=" + dir + "/ --cluster=db %p", "db", "", "", ""},
		{"ok symlink", "pgward archive-push --repo " + link + " %p", "main", "", "", ""},
		{"ok env", "PGWARD_REPO=" + dir + " PGWARD_CLUSTER=db pgward archive-push %p", "db", "", "", ""},
		{"not pgward", "cp %p /archive/%f", "main", "", "does not run pgward archive-push", ""},
		{"no %p", "pgward archive-push --repo " + dir + " %f", "main", "", "no %p", ""},
		{"other repo", "pgward archive-push --repo /elsewhere %p", "main", "", "does not use this repository: it archives to /elsewhere, not to " + dir, ""},
		{"other cluster", "pgward archive-push --repo " + dir + " --cluster other %p", "main", "", `archives as cluster "other", not "main"`, ""},
		{"missing cluster", "pgward archive-push --repo " + dir + " %p", "db", "", `gives no --cluster`, ""},
		{"config", "pgward archive-push --config /etc/x.toml %p", "db", "", "", "config file /etc/x.toml"},
		{"same config as check", "pgward archive-push --config /etc/x.toml %p", "db", "/etc/x.toml", "", ""},
		{"nothing", "pgward archive-push %p", "main", "", "", "/etc/pgward/pgward.toml"},
	}
	for _, tc := range cases {
		warns, err := CheckArchiveCommand(tc.cmd, []string{dir}, tc.cluster, tc.config)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: unexpected error %v", tc.name, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.wantErr)
		}
		all := strings.Join(warns, "\n")
		if (tc.wantWarn == "") != (all == "") || !strings.Contains(all, tc.wantWarn) {
			t.Errorf("%s: warnings %q, want %q", tc.name, all, tc.wantWarn)
		}
	}
}

func TestArchiveFailureFromLog(t *testing.T) {
	log := `2025-01-01 10:00:00.000 UTC [10] LOG:  checkpoint starting: time
pgward: archiving 000000010000000000000001: old error
2025-01-01 10:00:01.000 UTC [12] LOG:  archive command failed with exit code 2
2025-01-01 10:00:01.000 UTC [12] DETAIL:  The failed archive command was: pgward archive-push pg_wal/000000010000000000000001
time=2025-01-01T10:00:02Z level=INFO msg=x
pgward: opening repository /r: open /r/config: permission denied
2025-01-01 10:00:02.000 UTC [12] LOG:  archive command failed with exit code 2
2025-01-01 10:00:02.000 UTC [12] DETAIL:  The failed archive command was: pgward archive-push pg_wal/000000010000000000000001
`
	if got, want := ArchiveFailureFromLog(log), "pgward: opening repository /r: open /r/config: permission denied"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	other := "2025-01-01 LOG:  archive command failed with exit code 1\n"
	if got := ArchiveFailureFromLog(other); !strings.Contains(got, "exit code 1") {
		t.Errorf("without a pgward line: %q", got)
	}
	if got := ArchiveFailureFromLog("LOG: all is well\n"); got != "" {
		t.Errorf("no failure: %q", got)
	}
}

func TestAccessProblem(t *testing.T) {
	base, err := os.MkdirTemp("", "pgward-access-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	repoDir := filepath.Join(base, "repo")
	walDir := filepath.Join(repoDir, "clusters", "main", "wal")
	if err := os.MkdirAll(walDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repoDir, "config"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	seg := "000000010000000000000003"
	me := os.Geteuid()
	stranger := 54321
	if me == stranger {
		t.Skip("unlucky uid")
	}
	if p := AccessProblem(repoDir, "main", seg, stranger, nil, "alice"); !strings.Contains(p, "alice cannot write into "+walDir) || !strings.Contains(p, "mode 0755") {
		t.Errorf("wal dir 0755 owned by another user: %q", p)
	}
	if err := os.Chmod(walDir, 0o777); err != nil {
		t.Fatal(err)
	}
	if p := AccessProblem(repoDir, "main", seg, stranger, nil, "alice"); p != "" {
		t.Errorf("wal dir 0777: %q", p)
	}
	if err := os.Chmod(repoDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if p := AccessProblem(repoDir, "main", seg, stranger, nil, "alice"); !strings.Contains(p, "alice cannot read "+repoDir) || !strings.Contains(p, "chown -R alice") {
		t.Errorf("repo 0700 owned by another user: %q", p)
	}
	if p := AccessProblem(repoDir, "main", seg, me, nil, "me"); me != 0 && p != "" {
		t.Errorf("owner: %q", p)
	}
	if err := os.Chmod(base, 0o700); err != nil {
		t.Fatal(err)
	}
	if p := AccessProblem(repoDir, "main", seg, stranger, nil, "alice"); !strings.Contains(p, "cannot reach") {
		t.Errorf("parent 0700: %q", p)
	}
}
