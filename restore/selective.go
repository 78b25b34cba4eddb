package restore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/pgward/pgward/repo"
)

// Selective restore (--db-include): only the named databases get their data;
// every other database's relation files are written empty, as sparse files of
// their backed-up size, as pgBackRest does. The server then recovers (every page
// WAL replay touches after the backup's checkpoint comes with a full-page image,
// so replay never needs the missing contents) and starts; the excluded databases
// exist in its catalog but their tables are empty pages, unusable until they are
// dropped with DROP DATABASE.
//
// Invariants:
//   - The system databases (template0, template1, postgres: every OID below
//     firstNormalOID, which initdb assigns) and every cluster-wide file
//     (global/, pg_xact/, pg_wal/, ...) are always restored whole.
//   - Only relation files (names starting with a digit: 16384, 16384.1,
//     16384_fsm, 16384_vm, 16384_init) are written empty; each database
//     directory keeps its PG_VERSION and pg_filenode.map, so the directory is
//     one PostgreSQL recognises and can drop.
//   - A database the backup does not name (created during the backup) is
//     restored whole: nothing is emptied that the user could not have named.

// firstNormalOID is PostgreSQL's FirstNormalObjectId: initdb's objects, the
// system databases included, have lower OIDs.
const firstNormalOID = 16384

// selectDatabases resolves --db-include against the backup's databases and
// returns the OIDs whose relation files are written empty (nil: restore all).
func selectDatabases(m *repo.Manifest, include []string) (map[uint32]bool, error) {
	if len(include) == 0 {
		return nil, nil
	}
	present := databaseDirs(m)
	keep := map[uint32]bool{}
	for _, name := range include {
		oid, err := findDatabase(m, present, name)
		if err != nil {
			return nil, err
		}
		keep[oid] = true
	}
	excluded := map[uint32]bool{}
	for _, oid := range present {
		if keep[oid] || oid < firstNormalOID {
			continue
		}
		if len(m.Databases) > 0 && !slices.ContainsFunc(m.Databases, func(d repo.Database) bool { return d.OID == oid }) {
			continue // created during the backup: not nameable, so kept
		}
		excluded[oid] = true
	}
	return excluded, nil
}

// findDatabase finds a database by name, or by OID given as a number.
func findDatabase(m *repo.Manifest, present []uint32, name string) (uint32, error) {
	for _, d := range m.Databases {
		if d.Name == name {
			return d.OID, nil
		}
	}
	if n, err := strconv.ParseUint(name, 10, 32); err == nil && slices.Contains(present, uint32(n)) {
		return uint32(n), nil
	}
	if len(m.Databases) == 0 {
		return 0, fmt.Errorf("--db-include %q: backup %s does not record database names (it was taken by an older pgward, or the server refused the query); give database OIDs instead, the directories under base/: %s",
			name, m.ID, joinOIDs(present))
	}
	var names []string
	for _, d := range m.Databases {
		names = append(names, d.Name)
	}
	slices.Sort(names)
	return 0, fmt.Errorf("--db-include %q: backup %s has no such database (it has %s)", name, m.ID, strings.Join(names, ", "))
}

// databaseDirs lists the OIDs of the database directories under base/.
func databaseDirs(m *repo.Manifest) []uint32 {
	var out []uint32
	for _, f := range m.Files {
		rest, ok := strings.CutPrefix(f.Path, "base/")
		if !ok || f.Type != repo.TypeDir || strings.Contains(rest, "/") {
			continue
		}
		if n, err := strconv.ParseUint(rest, 10, 32); err == nil {
			out = append(out, uint32(n))
		}
	}
	slices.Sort(out)
	return out
}

func joinOIDs(oids []uint32) string {
	var s []string
	for _, o := range oids {
		s = append(s, strconv.FormatUint(uint64(o), 10))
	}
	return strings.Join(s, ", ")
}

// excludedFile reports whether p is a relation file of an excluded database:
// base/<db>/<file> or pg_tblspc/<ts>/<version dir>/<db>/<file>.
func excludedFile(p string, excluded map[uint32]bool) bool {
	parts := strings.Split(p, "/")
	var db, file string
	switch {
	case len(parts) == 3 && parts[0] == "base":
		db, file = parts[1], parts[2]
	case len(parts) == 5 && parts[0] == "pg_tblspc":
		db, file = parts[3], parts[4]
	default:
		return false
	}
	oid, err := strconv.ParseUint(db, 10, 32)
	if err != nil || !excluded[uint32(oid)] {
		return false
	}
	return file != "" && file[0] >= '0' && file[0] <= '9'
}

// writeEmpty writes a relation file of an excluded database: its size, no data
// (a sparse file of zeros). A delta restore drops what the file held.
func (w *writer) writeEmpty(e *repo.File) error {
	p := w.local(e.Path)
	var f *os.File
	var err error
	if w.delta {
		if err = os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if f, err = createFile(p, e); err != nil {
		return err
	}
	if err := f.Truncate(e.Size); err != nil {
		f.Close()
		return fmt.Errorf("sizing %s: %w", p, err)
	}
	w.zeroed.Add(e.Size)
	return w.finish(&openFile{f: f, entry: e})
}
