package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgward/pgward/test/pgtest"
)

// make demo is the README's first command: it must keep working, as root and as any
// other user. The script compares every table itself and exits non-zero on a mismatch.
func TestDemo(t *testing.T) {
	root, err := pgtest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "demo.sh"), pgwardBin)
	cmd.Dir = root
	cmd.Env = append(cleanEnv(), "PGBIN="+pgtest.BinDir(t, 15))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make demo's script failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "demo: OK") {
		t.Fatalf("the demo did not report OK:\n%s", out)
	}
}
