package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgward/pgward/test/pgtest"
)

const marker = "PGWARD-PLAINTEXT-MARKER-7f3a9c"

// containsMarker reports whether any file under dir holds the marker.
func containsMarker(t *testing.T, dir string) bool {
	t.Helper()
	found := false
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() || found {
			return nil
		}
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte(marker)) {
			found = true
		}
		return nil
	})
	return found
}

// TestEncryption: no plaintext in an encrypted repository, a wrong passphrase is
// refused before anything is written, the right one restores (and the
// restore_command carries the passphrase file, not the passphrase).
func TestEncryption(t *testing.T) {
	work := pgtest.TempDir(t)
	src := pgtest.Start(t, 15, pgtest.Options{})
	src.Exec(t, "postgres", "CREATE TABLE secrets AS SELECT g AS id, '"+marker+"' || g AS v FROM generate_series(1, 20000) g; CHECKPOINT;")
	want := pgtest.Checksums(t, src)
	conn := src.ConnString("postgres")

	// Control: the marker is visible in a plain uncompressed repository, so the
	// search below would find it if encryption leaked it.
	plain := filepath.Join(work, "plain")
	mustPgward(t, nil, "init", "--repo", plain)
	mustPgward(t, nil, "backup", "--repo", plain, "--conn", conn, "--compress", "none", "--checkpoint", "fast")
	if !containsMarker(t, plain) {
		t.Fatal("control failed: marker not found in an unencrypted, uncompressed repository")
	}

	enc := filepath.Join(work, "enc")
	pass := []string{"PGWARD_PASSPHRASE=correct horse battery staple"}
	mustPgward(t, pass, "init", "--repo", enc, "--encrypt")
	failPgward(t, nil, []string{"encrypted", "PGWARD_PASSPHRASE"}, "list", "--repo", enc)
	mustPgward(t, pass, "backup", "--repo", enc, "--conn", conn, "--compress", "none", "--checkpoint", "fast")
	if containsMarker(t, enc) {
		t.Fatal("plaintext marker found in the encrypted repository")
	}
	cfg, _ := os.ReadFile(filepath.Join(enc, "config"))
	if strings.Contains(string(cfg), "plain_key") {
		t.Fatal("encrypted repository config holds a plain key")
	}

	target := filepath.Join(work, "restored")
	failPgward(t, []string{"PGWARD_PASSPHRASE=wrong"}, []string{"wrong passphrase"}, "restore", "--repo", enc, "--pgdata", target)
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Fatal("restore with a wrong passphrase created the target directory")
	}
	failPgward(t, []string{"PGWARD_PASSPHRASE=wrong"}, []string{"wrong passphrase"}, "backup", "--repo", enc, "--conn", conn)

	passFile := filepath.Join(work, "passphrase")
	os.WriteFile(passFile, []byte("correct horse battery staple\n"), 0o644)
	failPgward(t, nil, []string{"can be read by group or others", "chmod 600"}, "restore", "--repo", enc, "--pgdata", target, "--passphrase-file", passFile)
	os.Chmod(passFile, 0o600)
	pgtest.ChownToPostgres(t, passFile) // the restore_command reads it as the server's user
	readableByServer(t, "--repo", enc)
	mustPgward(t, nil, "restore", "--repo", enc, "--pgdata", target, "--passphrase-file", passFile)
	auto, _ := os.ReadFile(filepath.Join(target, "postgresql.auto.conf"))
	if strings.Contains(string(auto), "correct horse") || !strings.Contains(string(auto), "--passphrase-file") {
		t.Fatalf("restore_command should name the passphrase file, never the passphrase:\n%s", auto)
	}
	dst := pgtest.StartDataDir(t, 15, target, nil, true)
	compareSums(t, want, pgtest.Checksums(t, dst))
}

// TestCompression: zstd and lz4 repositories are smaller than uncompressed ones,
// and each restores.
func TestCompression(t *testing.T) {
	work := pgtest.TempDir(t)
	src := pgtest.Start(t, 15, pgtest.Options{})
	src.Pgbench(t, "postgres", "-i", "-q", "-s", "5")
	want := pgtest.Checksums(t, src)
	sizes := map[string]int64{}
	for _, codec := range []string{"none", "zstd", "zstd:9", "lz4"} {
		dir := filepath.Join(work, strings.ReplaceAll(codec, ":", "-"))
		mustPgward(t, nil, "init", "--repo", dir)
		mustPgward(t, nil, "backup", "--repo", dir, "--conn", src.ConnString("postgres"), "--compress", codec, "--checkpoint", "fast")
		sizes[codec] = repoSize(t, dir)
	}
	t.Logf("repository sizes: %v", sizes)
	for _, c := range []string{"zstd", "zstd:9", "lz4"} {
		if sizes[c] >= sizes["none"] {
			t.Errorf("%s repository (%d bytes) is not smaller than the uncompressed one (%d)", c, sizes[c], sizes["none"])
		}
	}
	target := filepath.Join(work, "restored")
	readableByServer(t, "--repo", filepath.Join(work, "lz4"))
	mustPgward(t, nil, "restore", "--repo", filepath.Join(work, "lz4"), "--pgdata", target)
	dst := pgtest.StartDataDir(t, 15, target, nil, true)
	compareSums(t, want, pgtest.Checksums(t, dst))
}
