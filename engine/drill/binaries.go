package drill

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// Binaries is a PostgreSQL installation the drill can start.
type Binaries struct {
	Dir   string // holds postgres
	Major int
}

// candidates are the places distributions install each major's binaries.
var candidates = []string{"/usr/lib/postgresql/%d/bin", "/usr/pgsql-%d/bin", "/usr/local/pgsql-%d/bin", "/opt/postgresql/%d/bin"}

// FindBinaries returns the server binaries in dir, or, when dir is empty, those of the
// given major version where distributions put them or on PATH. The version is checked:
// a drill on another major would prove nothing (and the server would refuse the data).
func FindBinaries(dir string, major int) (Binaries, error) {
	if dir != "" {
		b, err := inspect(dir)
		if err != nil {
			return b, err
		}
		if b.Major != major {
			return b, fmt.Errorf("--pg-bin %s holds PostgreSQL %d, but the backup is of PostgreSQL %d; give the binaries of %d", dir, b.Major, major, major)
		}
		return b, nil
	}
	var tried []string
	for _, c := range candidates {
		d := fmt.Sprintf(c, major)
		tried = append(tried, d)
		if b, err := inspect(d); err == nil && b.Major == major {
			return b, nil
		}
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		if b, err := inspect(filepath.Dir(p)); err == nil && b.Major == major {
			return b, nil
		}
		tried = append(tried, filepath.Dir(p))
	}
	return Binaries{}, fmt.Errorf("no PostgreSQL %d server binaries found (looked in %s and on PATH); install them or give their directory with --pg-bin", major, strings.Join(tried, ", "))
}

var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)`)

// inspect reads the major version of the postgres binary in dir.
func inspect(dir string) (Binaries, error) {
	b := Binaries{Dir: dir}
	exe := filepath.Join(dir, "postgres")
	if _, err := os.Stat(exe); err != nil {
		return b, fmt.Errorf("no postgres binary in %s: %w", dir, err)
	}
	out, err := exec.Command(exe, "--version").Output()
	if err != nil {
		return b, fmt.Errorf("%s --version: %w", exe, err)
	}
	m := versionRE.FindSubmatch(out)
	if m == nil {
		return b, fmt.Errorf("%s --version printed %q, not a PostgreSQL version", exe, strings.TrimSpace(string(out)))
	}
	b.Major, _ = strconv.Atoi(string(m[1]))
	return b, nil
}
