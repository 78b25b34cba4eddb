// Package cmdline builds and reads the pgward command lines that PostgreSQL runs
// through /bin/sh: the archive_command (archive-push %p) and the restore_command
// (archive-get %f %p). It is the one place that knows their grammar, so that the
// line restore writes, the line check suggests and the line check reads back are
// the same language, and a round trip (Build, then Parse) gives back what was built.
//
// Invariants:
//   - Every word is quoted for sh when it needs it; the %-escapes PostgreSQL
//     substitutes (%p, %f, %r) are left bare so the server can replace them.
//   - Parse understands options written --name value and --name=value, and the
//     PGWARD_REPO, PGWARD_CLUSTER and PGWARD_CONFIG assignments a line may carry in
//     front of the command, as pgward itself reads them.
package cmdline

import (
	"strings"
)

// Invocation is one pgward command line.
type Invocation struct {
	// Program is the pgward binary, preferably by absolute path.
	Program string
	// Command is archive-push or archive-get.
	Command string
	Config  string
	Repos   []string
	// Cluster is written when not empty.
	Cluster           string
	PassphraseFile    string
	PassphraseCommand string
	// Options are further --name=value options, written in this order.
	Options []Option
	// Args are the trailing arguments, e.g. %p, or %f and %p.
	Args []string
}

// Option is a --name=value option.
type Option struct{ Name, Value string }

// Build renders the invocation as a shell command line.
func (inv Invocation) Build() string {
	words := []string{inv.Program, inv.Command}
	add := func(name, value string) {
		if value != "" {
			words = append(words, "--"+name, value)
		}
	}
	add("config", inv.Config)
	for _, r := range inv.Repos {
		add("repo", r)
	}
	add("cluster", inv.Cluster)
	add("passphrase-file", inv.PassphraseFile)
	add("passphrase-command", inv.PassphraseCommand)
	for _, o := range inv.Options {
		words = append(words, "--"+o.Name+"="+o.Value)
	}
	quoted := make([]string, 0, len(words)+len(inv.Args))
	for _, w := range words {
		quoted = append(quoted, Quote(w))
	}
	return strings.Join(append(quoted, inv.Args...), " ")
}

// Conf renders the line as a postgresql.conf setting: name = '...'.
func Conf(name, line string) string {
	return name + " = '" + strings.ReplaceAll(line, "'", "''") + "'"
}

// Quote quotes one word for sh unless it is made of characters sh takes
// literally.
func Quote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./_-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Parse reads a command line. It finds the pgward subcommand (archive-push or
// archive-get) and the options around it; everything it does not know is kept in
// Options (when it has a value) or ignored. Fields that are not given are empty.
func Parse(line string) Invocation {
	var inv Invocation
	f := Fields(line)
	known := map[string]*string{"config": &inv.Config, "cluster": &inv.Cluster,
		"passphrase-file": &inv.PassphraseFile, "passphrase-command": &inv.PassphraseCommand}
	for i := 0; i < len(f); i++ {
		w := f[i]
		switch {
		case w == "archive-push" || w == "archive-get":
			inv.Command = w
			if i > 0 {
				inv.Program = f[i-1]
			}
			continue
		case escape(w):
			inv.Args = append(inv.Args, w)
			continue
		}
		if v, ok := strings.CutPrefix(w, "PGWARD_REPO="); ok && inv.Command == "" {
			for _, p := range strings.Split(v, ",") {
				if p = strings.TrimSpace(p); p != "" {
					inv.Repos = append(inv.Repos, p)
				}
			}
			continue
		}
		if v, ok := strings.CutPrefix(w, "PGWARD_CLUSTER="); ok && inv.Command == "" {
			inv.Cluster = v
			continue
		}
		if v, ok := strings.CutPrefix(w, "PGWARD_CONFIG="); ok && inv.Command == "" {
			inv.Config = v
			continue
		}
		name, ok := strings.CutPrefix(w, "--")
		if !ok || inv.Command == "" {
			continue
		}
		value, inline := "", false
		if n, v, found := strings.Cut(name, "="); found {
			name, value, inline = n, v, true
		}
		if !inline {
			if i+1 >= len(f) || strings.HasPrefix(f[i+1], "--") || escape(f[i+1]) {
				continue // a boolean flag
			}
			i++
			value = f[i]
		}
		switch {
		case name == "repo":
			inv.Repos = append(inv.Repos, value)
		case known[name] != nil:
			*known[name] = value
		default:
			inv.Options = append(inv.Options, Option{name, value})
		}
	}
	return inv
}

// escape reports whether w is one of the escapes PostgreSQL substitutes.
func escape(w string) bool { return w == "%p" || w == "%f" || w == "%r" }

// Fields splits a command line the way sh would for plain words: blanks
// separate, quotes and backslashes group. Operators (&&, ;, |) stay words.
func Fields(s string) []string {
	var out []string
	var cur strings.Builder
	inWord := false
	var quote rune
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case quote == '"':
			if r == '"' {
				quote = 0
			} else if r == '\\' && i+1 < len(rs) && strings.ContainsRune(`"\$`+"`", rs[i+1]) {
				i++
				cur.WriteRune(rs[i])
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == '\\' && i+1 < len(rs):
			i++
			cur.WriteRune(rs[i])
			inWord = true
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out
}
