package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pgward.toml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func noEnv(string) (string, bool) { return "", false }

const twoClusters = `repo = "/var/lib/pgward"
[daemon]
listen = "127.0.0.1:9999"
timezone = "Europe/Berlin"
[cluster.main]
conn = "host=pg1 user=backup"
backup-schedule = "0 1 * * *"
drill-schedule = "@every 6h"
wal-stream = true
rpo-target = "1m"
[cluster.other]
conn = "host=pg2 user=backup"
backup-schedule = "@daily"
`

// A cluster loaded twice from the same text is the same (a reload leaves it running); a
// changed schedule makes it another.
func TestClusterSame(t *testing.T) {
	p := writeConfig(t, twoClusters)
	a, err := Load(p, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load(p, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Clusters) != 2 || a.Listen != "127.0.0.1:9999" || a.Location.String() != "Europe/Berlin" {
		t.Fatalf("loaded %+v", a)
	}
	for i := range a.Clusters {
		if !a.Clusters[i].same(b.Clusters[i]) {
			t.Errorf("cluster %s loaded twice is not the same", a.Clusters[i].Name)
		}
	}
	if err := os.WriteFile(p, []byte(strings.Replace(twoClusters, `"0 1 * * *"`, `"0 2 * * *"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	changed, err := Load(p, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if a.Clusters[0].same(changed.Clusters[0]) || !a.Clusters[1].same(changed.Clusters[1]) {
		t.Error("a changed schedule should restart its cluster only")
	}
}

// The example config in deploy/ loads: it stays true as keys change.
func TestExampleConfig(t *testing.T) {
	cfg, err := Load(filepath.Join("..", "..", "deploy", "pgward.toml"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Clusters) != 2 || cfg.Listen != "127.0.0.1:9187" {
		t.Fatalf("loaded %+v", cfg)
	}
	for _, c := range cfg.Clusters {
		if c.Backup == nil || c.Drill == nil || c.Options.Conn == "" || len(c.Options.Repos) != 1 {
			t.Errorf("cluster %s: %+v", c.Name, c)
		}
	}
}
