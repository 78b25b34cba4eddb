package archive

import (
	"os"
	"path/filepath"
	"strconv"
)

// SpoolBase is the spool directory the spool-path option names: "off" is none (""), ""
// the default (/var/spool/pgward when it exists, else $TMPDIR/pgward-spool-UID), created on
// first use (0700, owned by the user PostgreSQL runs as).
func SpoolBase(option string) string {
	switch option {
	case "off":
		return ""
	case "":
		if fi, err := os.Stat("/var/spool/pgward"); err == nil && fi.IsDir() {
			return "/var/spool/pgward"
		}
		return filepath.Join(os.TempDir(), "pgward-spool-"+strconv.Itoa(os.Geteuid()))
	}
	return option
}
