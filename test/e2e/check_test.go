package e2e

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/local"
	"github.com/pgward/pgward/test/pgtest"
)

// TestCheck: pgward check passes on a cluster that archives into the
// repository, and otherwise names the cause: archive_mode off, another
// repository or cluster name in the archive_command, an archive_command that
// fails for lack of permission, and a repository whose cluster belongs to
// another system.
func TestCheck(t *testing.T) {
	t.Run("works", func(t *testing.T) {
		t.Parallel()
		a := startArchiving(t, 15)
		conn := a.c.ConnString("postgres")
		r := mustPgward(t, nil, "check", "--repo", a.repo, "--conn", conn, "--timeout", "30s")
		if !regexp.MustCompile(`OK +archive round trip +segment \w+ archived to ` + regexp.QuoteMeta(a.repo) + ` in `).MatchString(r.stdout) {
			t.Errorf("check output: %s", r)
		}
		t.Logf("success:\n%s", r.stdout)

		// A misconfigured archive_command (another repository): that check FAILED with its
		// fix, the others OK, exit status 3; --json says the same; --nagios exits 2.
		other := filepath.Join(a.work, "other")
		pgwardPG(t, nil, "init", "--repo", other)
		r = failPgward(t, nil, []string{"the archive_command does not use this repository", other, "archive_command = '"}, "check", "--repo", other, "--conn", conn)
		if r.code != 3 {
			t.Errorf("a failed check exits %d, want 3", r.code)
		}
		t.Logf("other repository: %s", r.stderr)
		r = pgward(t, nil, "check", "--json", "--repo", other, "--conn", conn)
		var out struct {
			OK     bool                                          `json:"ok"`
			Checks []struct{ Name, Status, Detail, Hint string } `json:"checks"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
			t.Fatalf("check --json: %v\n%s", err, r)
		}
		status := map[string]string{}
		for _, c := range out.Checks {
			status[c.Name] = c.Status
			if c.Name == "archive_command" && !strings.Contains(c.Hint, "archive_command = '") {
				t.Errorf("the failed check has no hint: %+v", c)
			}
		}
		if out.OK || status["archive_command"] != "FAILED" || status["connection"] != "OK" || status["wal_level"] != "OK" ||
			status["replication connection"] != "OK" || status["repository"] != "OK" || status["archive round trip"] != "SKIPPED" {
			t.Errorf("check --json: %+v", out)
		}
		r = pgward(t, nil, "check", "--nagios", "--repo", other, "--conn", conn)
		if r.code != 2 || !strings.HasPrefix(r.stdout, "PGWARD CRITICAL - ") || strings.Count(r.stdout, "\n") != 1 {
			t.Errorf("check --nagios on a broken setup: %s", r)
		}
		r = pgward(t, nil, "check", "--nagios", "--repo", a.repo, "--conn", conn)
		if r.code != 1 || !strings.HasPrefix(r.stdout, "PGWARD WARNING - ") || !strings.Contains(r.stdout, "no backup yet") {
			t.Errorf("check --nagios without a backup: %s", r)
		}

		r = failPgward(t, nil, []string{`archives as cluster "main", not "db2"`}, "check", "--repo", a.repo, "--cluster", "db2", "--conn", conn)
		t.Logf("other cluster name: %s", r.stderr)
	})

	t.Run("archive_mode_off", func(t *testing.T) {
		t.Parallel()
		work := pgtest.TempDir(t)
		rp := filepath.Join(work, "repo")
		pgwardPG(t, nil, "init", "--repo", rp)
		c := pgtest.Start(t, 15, pgtest.Options{Settings: map[string]string{"archive_mode": "off"}})
		r := failPgward(t, nil, []string{"archive_mode is off", "restart"}, "check", "--repo", rp, "--conn", c.ConnString("postgres"))
		t.Logf("archive_mode off: %s", r.stderr)
	})

	t.Run("permission_denied", func(t *testing.T) {
		t.Parallel()
		work := pgtest.TempDir(t)
		// A repository root created and keeps to itself: archive-push, run
		// by the server as postgres, cannot open it.
		rp := filepath.Join(work, "rootrepo")
		mustPgward(t, nil, "init", "--repo", rp)
		if err := os.Chmod(rp, 0o700); err != nil {
			t.Fatal(err)
		}
		settings := archiveSettings(rp, filepath.Join(work, "spool"))
		// The logging collector puts the archive_command's stderr where
		// check can read it.
		maps.Copy(settings, map[string]string{"logging_collector": "on", "log_directory": "log"})
		c := pgtest.Start(t, 15, pgtest.Options{Settings: settings})
		start := time.Now()
		r := failPgward(t, nil, []string{"the archiver is failing", "permission denied on the repository", "postgres cannot read " + rp, "the server log says: pgward:"},
			"check", "--repo", rp, "--conn", c.ConnString("postgres"), "--timeout", "30s")
		if d := time.Since(start); d > 25*time.Second {
			t.Errorf("check took %s to report a failing archiver", d)
		}
		t.Logf("permission denied (%s): %s", time.Since(start).Round(time.Millisecond), r.stderr)
	})

	t.Run("wrong_identity", func(t *testing.T) {
		t.Parallel()
		work := pgtest.TempDir(t)
		rp := filepath.Join(work, "repo")
		pgwardPG(t, nil, "init", "--repo", rp)
		// Record cluster "main" as another system, as if another server had
		// archived under the same name first.
		ctx := context.Background()
		st, err := local.Open(rp)
		if err != nil {
			t.Fatal(err)
		}
		rr, err := repo.Open(ctx, st, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := rr.EnsureIdentity(ctx, repo.Identity{Cluster: "main", SystemIdentifier: "7000000000000000001", PGMajor: 15, WALSegSize: 16 << 20}); err != nil {
			t.Fatal(err)
		}
		pgtest.ChownToPostgres(t, rp)
		c := pgtest.Start(t, 15, pgtest.Options{Settings: archiveSettings(rp, filepath.Join(work, "spool"))})
		r := failPgward(t, nil, []string{"wrong cluster name", "7000000000000000001"}, "check", "--repo", rp, "--conn", c.ConnString("postgres"))
		t.Logf("wrong identity: %s", r.stderr)
	})

	t.Run("stuck", func(t *testing.T) {
		t.Parallel()
		work := pgtest.TempDir(t)
		rp := filepath.Join(work, "repo")
		pgwardPG(t, nil, "init", "--repo", rp)
		settings := archiveSettings(rp, filepath.Join(work, "spool"))
		settings["archive_command"] = "sleep 60; " + settings["archive_command"]
		c := pgtest.Start(t, 15, pgtest.Options{Settings: settings})
		r := failPgward(t, nil, []string{"archiving is slow or stuck", "within 3s", "last archived: none"}, "check", "--repo", rp, "--conn", c.ConnString("postgres"), "--timeout", "3s")
		t.Logf("stuck: %s", r.stderr)
	})

	t.Run("archived_elsewhere", func(t *testing.T) {
		t.Parallel()
		work := pgtest.TempDir(t)
		rp := filepath.Join(work, "repo")
		pgwardPG(t, nil, "init", "--repo", rp)
		// Looks right to the static checks, succeeds, and stores nothing.
		settings := map[string]string{"archive_mode": "on", "archive_command": "true archive-push --repo " + rp + " %p"}
		c := pgtest.Start(t, 15, pgtest.Options{Settings: settings})
		r := failPgward(t, nil, []string{"reports segment", "archived", "but it is not in " + rp, "stores WAL somewhere else"}, "check", "--repo", rp, "--conn", c.ConnString("postgres"), "--timeout", "20s")
		t.Logf("archived elsewhere: %s", r.stderr)
	})
}
