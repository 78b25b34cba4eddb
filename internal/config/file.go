package config

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// File is a decoded config file: top-level keys are global, [cluster.NAME]
// tables hold per-cluster ones. Every key in it is known and allowed where it
// stands (ParseFile refuses the rest); values are parsed only when resolved.
type File struct {
	// Path is the file's name, for messages; "" when there is no file.
	Path     string
	top      map[string]any
	clusters map[string]map[string]any
	// lines are the file's text: the TOML decoder keeps no positions, so a
	// message finds a key's line by reading them again.
	lines []string
}

// ReadFile reads the config file at path, or DefaultFile when path is "", in
// which case a missing file is no file.
func ReadFile(path string) (*File, error) {
	explicit := path != ""
	if !explicit {
		path = DefaultFile
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return &File{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading config file: %w", err)
	}
	return ParseFile(path, string(b))
}

// ParseFile decodes a config file's text and checks every key in every table.
func ParseFile(path, text string) (*File, error) {
	f := &File{Path: path, top: map[string]any{}, clusters: map[string]map[string]any{}, lines: strings.Split(text, "\n")}
	var raw map[string]any
	if _, err := toml.Decode(text, &raw); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	var errs []lineError
	for k, v := range raw {
		if t, ok := v.(map[string]any); ok && k == "daemon" {
			// [daemon] holds the daemon's own settings, known as daemon.KEY.
			for dk, dv := range t {
				f.top["daemon."+dk] = dv
				if err := checkKey("daemon."+dk, ""); err != nil {
					errs = append(errs, f.errorAt("", "daemon."+dk, err))
				}
			}
			continue
		}
		if k != "cluster" {
			f.top[k] = v
			if err := checkKey(k, ""); err != nil {
				errs = append(errs, f.errorAt("", k, err))
			}
			continue
		}
		t, ok := v.(map[string]any)
		if !ok {
			errs = append(errs, f.errorAt("", k, errors.New(`"cluster" is not a setting: [cluster.NAME] tables hold per-cluster settings, and default-cluster = "NAME" names the default cluster`)))
			continue
		}
		for name, cv := range t {
			ct, ok := cv.(map[string]any)
			if !ok {
				n := f.line("cluster", name)
				errs = append(errs, lineError{line: n, err: fmt.Errorf("%s: [cluster.%s] must be a table of settings", f.atLine(n), name)})
				continue
			}
			f.clusters[name] = ct
			for ck := range ct {
				if err := checkKey(ck, name); err != nil {
					errs = append(errs, f.errorAt(name, ck, err))
				}
			}
		}
	}
	if len(errs) == 0 {
		return f, nil
	}
	slices.SortStableFunc(errs, func(a, b lineError) int { return a.line - b.line })
	all := make([]error, len(errs))
	for i, e := range errs {
		all[i] = e
	}
	return nil, errors.Join(all...)
}

// checkKey refuses a file key that is unknown, or that cannot be set in a
// file, or at this place (cluster is "" at the top level).
func checkKey(name, cluster string) error {
	k := byFileKey[name]
	switch {
	case k == nil || k.Hidden:
		msg := fmt.Sprintf("unknown key %q", name)
		if s := suggest(name); s != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", s)
		}
		return errors.New(msg + "; the keys are listed in docs/config.md")
	case k.FileKey() == "" && k.Kind == Passphrase:
		return fmt.Errorf("%s cannot be set in a config file: it comes only from %s; a file names a passphrase-file or a passphrase-command", name, k.Env())
	case k.FileKey() == "":
		return fmt.Errorf("%s cannot be set in a config file: use --%s or %s", name, k.Flag(), k.Env())
	case cluster != "" && k.TopLevelOnly:
		return fmt.Errorf("%s applies to every cluster, so it cannot be set in [cluster.%s]: move it to the top level, above the first table", name, cluster)
	}
	return nil
}

// suggest names the file key closest to a misspelt one, or "".
func suggest(name string) string {
	var keys []string
	for _, k := range registry {
		if fk := k.FileKey(); fk != "" && !k.Hidden {
			keys = append(keys, fk)
		}
	}
	return Closest(name, keys)
}

// Closest returns the candidate nearest to a misspelt name (at most two edits away), or "".
func Closest(name string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := distance(name, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// distance is the Levenshtein distance of a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// Clusters are the names of the file's [cluster.NAME] tables, sorted.
func (f *File) Clusters() []string { return slices.Sorted(maps.Keys(f.clusters)) }

// texts returns a key's value in a table ("" for the top level, else a
// cluster's name) as texts, as a flag would have given them.
func (f *File) texts(cluster string, k *Key) ([]string, bool, error) {
	t := f.top
	if cluster != "" {
		t = f.clusters[cluster]
	}
	v, ok := t[k.FileKey()]
	if !ok {
		return nil, false, nil
	}
	items, isList := v.([]any)
	if !isList {
		items = []any{v}
	} else if k.Kind != List {
		return nil, false, fmt.Errorf("%s: %s takes one value, not a list", f.where(cluster, k.FileKey()), k.FileKey())
	}
	texts := make([]string, 0, len(items))
	for _, it := range items {
		switch it.(type) {
		case map[string]any, []any, []map[string]any:
			return nil, false, fmt.Errorf("%s: %s takes plain values, not tables or nested lists", f.where(cluster, k.FileKey()), k.FileKey())
		}
		texts = append(texts, fmt.Sprint(it))
	}
	return texts, true, nil
}

// lineError is an error at a line of the file, so several sort in file order.
type lineError struct {
	line int
	err  error
}

func (e lineError) Error() string { return e.err.Error() }
func (e lineError) Unwrap() error { return e.err }

func (f *File) errorAt(cluster, key string, err error) lineError {
	return lineError{line: f.line(keyPath(cluster, key)...), err: fmt.Errorf("%s: %w", f.where(cluster, key), err)}
}

// keyPath is a key's path in the file: cluster is "" for the top level.
func keyPath(cluster, key string) []string {
	if cluster == "" {
		return strings.Split(key, ".") // daemon.listen is listen in [daemon]
	}
	return []string{"cluster", cluster, key}
}

// where names a key's place in the file for a message: the file, the line
// when it can be found, and the cluster's table.
func (f *File) where(cluster, key string) string {
	s := f.atLine(f.line(keyPath(cluster, key)...))
	if cluster != "" {
		s += ", [cluster." + cluster + "]"
	}
	return s
}

// atLine names the file and, when it is known (not 0), the line.
func (f *File) atLine(n int) string {
	if n == 0 {
		return "config file " + f.Path
	}
	return fmt.Sprintf("config file %s, line %d", f.Path, n)
}

// line finds the line (from 1) that sets the key at path (cluster, main, conn
// for conn in [cluster.main]), or the line of its table when the key is in an
// inline table; 0 when neither is found.
func (f *File) line(path ...string) int {
	var header []string
	quote := "" // the delimiter of a multi-line string being skipped
	tableLine := 0
	for i, l := range f.lines {
		if quote != "" {
			if strings.Count(l, quote)%2 == 1 {
				quote = ""
			}
			continue
		}
		s := strings.TrimSpace(l)
		if strings.HasPrefix(s, "[") {
			end := strings.LastIndex(s, "]")
			if end < 0 {
				continue
			}
			header = splitKey(strings.Trim(s[:end+1], "[]"))
			if slices.Equal(header, path[:len(path)-1]) && tableLine == 0 {
				tableLine = i + 1
			}
			continue
		}
		name, rest, ok := strings.Cut(s, "=")
		if !ok {
			continue
		}
		full := append(slices.Clone(header), splitKey(name)...)
		if slices.Equal(full, path) {
			return i + 1
		}
		if len(full) < len(path) && slices.Equal(full, path[:len(full)]) && tableLine == 0 {
			tableLine = i + 1 // an inline table holding the key
		}
		for _, q := range []string{`"""`, `'''`} {
			if strings.Count(rest, q)%2 == 1 {
				quote = q
			}
		}
	}
	return tableLine
}

// splitKey splits a dotted TOML key (a."b.c".d) into its parts, unquoted.
func splitKey(s string) []string {
	var parts []string
	var cur strings.Builder
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			if c == '\\' && quote == '"' && i+1 < len(s) {
				i++
				c = s[i]
			}
			cur.WriteByte(c)
		case c == '"' || c == '\'':
			quote = c
		case c == '.':
			parts = append(parts, strings.TrimSpace(cur.String()))
			cur.Reset()
		case c != ' ' && c != '\t':
			cur.WriteByte(c)
		}
	}
	return append(parts, strings.TrimSpace(cur.String()))
}
