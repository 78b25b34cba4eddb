package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pgward/pgward/test/pgtest"
	"github.com/pgward/pgward/test/s3test"
)

// keyList runs 'key list --json' as the postgres user and returns the keys of the one repository.
func keyList(t *testing.T, env []string, args ...string) []map[string]any {
	t.Helper()
	var out struct {
		Repos []struct {
			Keys []map[string]any `json:"keys"`
		} `json:"repos"`
	}
	r := pgwardPG(t, env, append([]string{"key", "list", "--json"}, args...)...)
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || len(out.Repos) != 1 {
		t.Fatalf("key list --json: %v\n%s", err, r.stdout)
	}
	return out.Repos[0].Keys
}

// privateFile writes a passphrase file the postgres user owns (archive_command
// and restore_command read it as that user).
func privateFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pgtest.ChownToPostgres(t, path)
}

// TestKeyRotation: a DBA adds a second passphrase to an encrypted repository,
// points the archive_command at it, and removes the original key using the
// original passphrase. Afterwards the old passphrase fails in one sentence (and
// archive-get with it exits above 125, so recovery would stop rather than
// promote), no copy of the removed key is left in the repository, archive-get
// with the new passphrase returns the segment archived before the rotation
// byte for byte, and a restore with the new passphrase replays WAL archived
// before and after the rotation to the source's exact rows.
func TestKeyRotation(t *testing.T) {
	work := pgtest.TempDir(t)
	repoDir := filepath.Join(work, "repo")
	spool := filepath.Join(work, "spool")
	passFile := filepath.Join(work, "passphrase") // what archive_command reads; rotated below
	newFile := filepath.Join(work, "new-passphrase")
	privateFile(t, passFile, "old secret")
	privateFile(t, newFile, "new secret")
	oldEnv := []string{"PGWARD_PASSPHRASE=old secret"}
	newEnv := []string{"PGWARD_PASSPHRASE=new secret"}

	pgwardPG(t, nil, "init", "--repo", repoDir, "--encrypt", "--passphrase-file", passFile)
	settings := archiveSettings(repoDir, spool)
	settings["archive_command"] = fmt.Sprintf("%s archive-push --repo %s --spool-path %s --passphrase-file %s %%p", pgwardBin, repoDir, spool, passFile)
	c := pgtest.Start(t, 15, pgtest.Options{Settings: settings})
	c.Exec(t, "postgres", eventsTable)
	insertRows(t, c, 1, 10)
	pgwardPG(t, nil, "backup", "--repo", repoDir, "--conn", c.ConnString("postgres"), "--checkpoint", "fast", "--passphrase-file", passFile)
	insertRows(t, c, 11, 20)
	switchAndWait(t, c)
	var seg string
	c.QueryRow(t, "postgres", "SELECT last_archived_wal FROM pg_stat_archiver", &seg)
	before := filepath.Join(work, "seg-before")
	pgwardPG(t, oldEnv, "archive-get", "--repo", repoDir, "--spool-path", "off", seg, before)

	keys := keyList(t, oldEnv, "--repo", repoDir)
	if len(keys) != 1 || keys[0]["opened"] != true || keys[0]["config"] != true {
		t.Fatalf("keys of a new repository: %v", keys)
	}
	original := keys[0]["id"].(string)

	out := pgwardPG(t, oldEnv, "key", "add", "--repo", repoDir, "--new-passphrase-file", newFile, "--note", "rotation 2026").stdout
	m := regexp.MustCompile(`added key ([0-9a-f]{16}) to `).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("key add: %s", out)
	}
	added := m[1]
	keys = keyList(t, nil, "--repo", repoDir, "--passphrase-file", newFile)
	if len(keys) != 2 || keys[0]["id"] != original || keys[0]["config"] != true || keys[0]["opened"] != false ||
		keys[1]["id"] != added || keys[1]["opened"] != true || keys[1]["note"] != "rotation 2026" {
		t.Fatalf("keys after key add: %v", keys)
	}
	wrapped, err := os.ReadFile(filepath.Join(repoDir, "keys", original))
	if err != nil {
		t.Fatalf("the original key has no key object after key add: %v", err)
	}
	var obj struct {
		Key struct{ Ciphertext string } `json:"key"`
	}
	if err := json.Unmarshal(wrapped, &obj); err != nil || obj.Key.Ciphertext == "" {
		t.Fatalf("key object %s: %v", original, err)
	}

	// The rotation: the archive_command's file gets the new passphrase, and the
	// original key is removed, with the original passphrase itself.
	privateFile(t, passFile, "new secret")
	out = pgwardPG(t, oldEnv, "key", "remove", "--repo", repoDir, original[:8]).stdout
	if !strings.Contains(out, "removed key "+original) || !strings.Contains(out, "no longer opens it") || !strings.Contains(out, added) {
		t.Fatalf("key remove of the key in use: %s", out)
	}
	insertRows(t, c, 21, 30)
	switchAndWait(t, c)
	want := pgtest.Checksums(t, c)
	c.Stop(t, "immediate")

	r := failPgward(t, oldEnv, []string{"wrong passphrase", repoDir}, "list", "--repo", repoDir)
	if lines := strings.Count(strings.TrimSpace(r.stderr), "\n") + 1; lines != 1 {
		t.Fatalf("the old passphrase's error takes %d lines:\n%s", lines, r.stderr)
	}
	if r := pgward(t, oldEnv, "archive-get", "--repo", repoDir, "--spool-path", "off", seg, filepath.Join(work, "x")); r.code <= 125 {
		t.Fatalf("archive-get with the removed passphrase must stop recovery (exit above 125): %s", r)
	}
	failPgward(t, newEnv, []string{"last key"}, "key", "remove", "--repo", repoDir, added)
	filepath.Walk(repoDir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(obj.Key.Ciphertext)) {
				t.Errorf("%s still holds the removed key", p)
			}
		}
		return nil
	})

	after := filepath.Join(work, "seg-after")
	pgwardPG(t, newEnv, "archive-get", "--repo", repoDir, "--spool-path", "off", seg, after)
	b1, _ := os.ReadFile(before)
	b2, _ := os.ReadFile(after)
	if len(b1) == 0 || !bytes.Equal(b1, b2) {
		t.Fatalf("archive-get with the new passphrase: %d bytes, before the rotation %d, equal %v", len(b2), len(b1), bytes.Equal(b1, b2))
	}

	target := filepath.Join(work, "restored")
	pgwardPG(t, nil, "restore", "--repo", repoDir, "--pgdata", target, "--passphrase-file", newFile)
	dst := pgtest.StartDataDir(t, 15, target, nil, true)
	if got := rowIDs(t, dst); got != "1-30" {
		t.Fatalf("restored rows %q, want 1-30", got)
	}
	compareSums(t, want, pgtest.Checksums(t, dst))
}

// testS3Keys: the key commands on S3, where the config is replaced without a
// rename: removing the config's key moves the config to config-2, changing
// the passphrase of that key moves it back, and each time exactly the current
// passphrases open the repository and one config object is left.
func testS3Keys(t *testing.T, srv *s3test.Server) {
	bucket := s3test.BucketName(t)
	s3Repo := "s3://" + bucket + "/keys"
	flags := s3Flags(srv.Endpoint)
	env := func(p string, more ...string) []string {
		return append(append(s3Env(srv), "PGWARD_PASSPHRASE="+p), more...)
	}
	run := func(p string, more []string, args ...string) string {
		t.Helper()
		return mustPgward(t, env(p, more...), argv(args, []string{"--repo", s3Repo}, flags)...).stdout
	}
	configs := func() []string {
		t.Helper()
		var names []string
		for _, n := range objectNames(t, srv, bucket, "keys/config") {
			names = append(names, strings.TrimPrefix(n, "keys/"))
		}
		return names
	}
	opensOnly := func(good string, bad ...string) {
		t.Helper()
		run(good, nil, "list")
		for _, p := range bad {
			failPgward(t, env(p), []string{"wrong passphrase"}, argv([]string{"list", "--repo", s3Repo}, flags)...)
		}
	}

	run("first", nil, "init", "--encrypt")
	firstID := regexp.MustCompile(`[0-9a-f]{16}`).FindString(run("first", nil, "key", "list"))
	run("first", []string{"PGWARD_NEW_PASSPHRASE=second"}, "key", "add")
	opensOnly("second")
	opensOnly("first")
	if got := run("first", nil, "key", "remove", firstID); !strings.Contains(got, "no longer opens it") {
		t.Fatalf("key remove: %s", got)
	}
	if got := configs(); len(got) != 1 || got[0] != "config-2" {
		t.Fatalf("config objects after removing the config's key: %v", got)
	}
	opensOnly("second", "first")
	run("second", []string{"PGWARD_NEW_PASSPHRASE=third"}, "key", "passwd")
	if got := configs(); len(got) != 1 || got[0] != "config" {
		t.Fatalf("config objects after passwd: %v", got)
	}
	opensOnly("third", "first", "second")
	if keys := objectNames(t, srv, bucket, "keys/keys/"); len(keys) != 1 {
		t.Fatalf("key objects: %v", keys)
	}
}
