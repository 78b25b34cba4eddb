package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func mustParse(t *testing.T, text string) *File {
	t.Helper()
	f, err := ParseFile("test.toml", text)
	if err != nil {
		t.Fatalf("ParseFile:\n%s\n%v", text, err)
	}
	return f
}

func mustResolve(t *testing.T, in Input) *Options {
	t.Helper()
	if in.File == nil {
		in.File = &File{}
	}
	o, err := Resolve(in)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	return o
}

// TestPrecedence: for a key of every kind, a flag beats the environment beats
// the cluster's table beats the top level beats the default, and another
// cluster's table changes nothing.
func TestPrecedence(t *testing.T) {
	cases := []struct {
		key, command string
		flag         []string
		env          string
		cluster, top string // TOML values
		get          func(*Options) any
		// want is the value from the flag, env, cluster table, top level, default.
		want [5]any
	}{
		{key: "conn", command: "backup", flag: []string{"host=flag"}, env: "host=env", cluster: `"host=cluster"`, top: `"host=top"`,
			get:  func(o *Options) any { return o.Conn },
			want: [5]any{"host=flag", "host=env", "host=cluster", "host=top", ""}},
		{key: "repo", command: "list", flag: []string{"/f1", "/f2"}, env: "/e1, /e2", cluster: `["/c1", "/c2"]`, top: `"/t"`,
			get:  func(o *Options) any { return o.Repos },
			want: [5]any{[]string{"/f1", "/f2"}, []string{"/e1", "/e2"}, []string{"/c1", "/c2"}, []string{"/t"}, []string(nil)}},
		{key: "synchronous", command: "wal-receive", flag: []string{"false"}, env: "true", cluster: `false`, top: `true`,
			get:  func(o *Options) any { return o.Receive.Synchronous },
			want: [5]any{false, true, false, true, false}},
		{key: "s3-path-style", command: "list", flag: []string{"true"}, env: "false", cluster: `true`, top: `false`,
			get:  func(o *Options) any { return o.S3.PathStyle },
			want: [5]any{true, false, true, false, false}},
		{key: "jobs", command: "restore", flag: []string{"3"}, env: "5", cluster: `7`, top: `"9"`,
			get:  func(o *Options) any { return o.Jobs },
			want: [5]any{3, 5, 7, 9, runtime.NumCPU()}},
		{key: "partial-interval", command: "wal-receive", flag: []string{"1s"}, env: "2s", cluster: `"3s"`, top: `"4m"`,
			get:  func(o *Options) any { return o.Receive.PartialInterval },
			want: [5]any{time.Second, 2 * time.Second, 3 * time.Second, 4 * time.Minute, 10 * time.Second}},
		{key: "max-spool", command: "wal-receive", flag: []string{"1MiB"}, env: "2MiB", cluster: `"3MiB"`, top: `4194304`,
			get:  func(o *Options) any { return o.Receive.MaxSpool },
			want: [5]any{int64(1 << 20), int64(2 << 20), int64(3 << 20), int64(4 << 20), int64(8 << 30)}},
		{key: "wal-compress", command: "archive-push", flag: []string{"lz4"}, env: "zstd:5", cluster: `"zstd:7"`, top: `"none"`,
			get:  func(o *Options) any { return o.WALCompress.String() },
			want: [5]any{"lz4", "zstd:5", "zstd:7", "none", "zstd:1"}},
		{key: "passphrase-file", command: "list", flag: []string{"/flag"}, env: "/env", cluster: `"/cluster"`, top: `"/top"`,
			get:  func(o *Options) any { return o.Passphrase.File },
			want: [5]any{"/flag", "/env", "/cluster", "/top", ""}},
		{key: "passphrase-command", command: "list", flag: []string{"echo flag"}, env: "echo env", cluster: `"echo cluster"`, top: `"echo top"`,
			get:  func(o *Options) any { return o.Passphrase.Command },
			want: [5]any{"echo flag", "echo env", "echo cluster", "echo top", ""}},
	}
	origins := [5]Origin{FromFlag, FromEnv, FromClusterTable, FromTopLevel, FromDefault}
	for _, c := range cases {
		k := Lookup(c.key)
		for layer := range 5 {
			t.Run(fmt.Sprintf("%s/%s", c.key, origins[layer]), func(t *testing.T) {
				in := Input{Command: c.command, Flags: map[string][]string{}}
				env := map[string]string{}
				var text strings.Builder
				if layer <= 0 {
					in.Flags[c.key] = c.flag
				}
				if layer <= 1 {
					env[k.Env()] = c.env
				}
				if layer <= 3 {
					fmt.Fprintf(&text, "%s = %s\n", k.FileKey(), c.top)
				}
				if layer <= 2 {
					fmt.Fprintf(&text, "[cluster.main]\n%s = %s\n", k.FileKey(), c.cluster)
				}
				fmt.Fprintf(&text, "[cluster.other]\n%s = %s\n", k.FileKey(), c.cluster)
				in.Env = envOf(env)
				in.File = mustParse(t, text.String())
				o := mustResolve(t, in)
				if got := c.get(o); !reflect.DeepEqual(got, c.want[layer]) {
					t.Errorf("%s = %#v, want %#v\nfile:\n%s", c.key, got, c.want[layer], text.String())
				}
				if got := o.Origin(c.key); got != origins[layer] {
					t.Errorf("origin of %s = %s, want %s", c.key, got, origins[layer])
				}
			})
		}
	}
}

// TestPassphraseLayers: the first layer that names any passphrase source wins
// as a whole; a file or command stays known under PGWARD_PASSPHRASE for the
// restore_command.
func TestPassphraseLayers(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "pass")
	if err := os.WriteFile(secret, []byte("from the file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		flags map[string][]string
		env   map[string]string
		file  string
		want  PassphraseSource
		// got is what Func returns.
		got string
	}{
		{"flag file beats PGWARD_PASSPHRASE", map[string][]string{"passphrase-file": {secret}}, map[string]string{"PGWARD_PASSPHRASE": "env"}, "",
			PassphraseSource{File: secret}, "from the file"},
		{"flag command beats PGWARD_PASSPHRASE_FILE", map[string][]string{"passphrase-command": {"echo flag"}}, map[string]string{"PGWARD_PASSPHRASE_FILE": secret}, "",
			PassphraseSource{Command: "echo flag"}, "flag"},
		{"PGWARD_PASSPHRASE beats the file, which is kept", nil, map[string]string{"PGWARD_PASSPHRASE": "env"}, fmt.Sprintf("passphrase-file = %q\n", secret),
			PassphraseSource{Value: "env", File: secret}, "env"},
		{"PGWARD_PASSPHRASE before PGWARD_PASSPHRASE_FILE", nil, map[string]string{"PGWARD_PASSPHRASE": "env", "PGWARD_PASSPHRASE_FILE": secret}, "",
			PassphraseSource{Value: "env", File: secret}, "env"},
		{"PGWARD_PASSPHRASE_COMMAND beats the file's passphrase-file", nil, map[string]string{"PGWARD_PASSPHRASE_COMMAND": "echo env"}, "passphrase-file = \"/nowhere\"\n",
			PassphraseSource{Command: "echo env"}, "env"},
		{"the cluster's command beats the top level's file", nil, nil, "passphrase-file = \"/nowhere\"\n[cluster.main]\npassphrase-command = \"echo cluster\"\n",
			PassphraseSource{Command: "echo cluster"}, "cluster"},
		{"an empty PGWARD_PASSPHRASE names nothing", nil, map[string]string{"PGWARD_PASSPHRASE": ""}, fmt.Sprintf("passphrase-file = %q\n", secret),
			PassphraseSource{File: secret}, "from the file"},
		{"none", nil, nil, "", PassphraseSource{}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := mustResolve(t, Input{Command: "list", Flags: c.flags, Env: envOf(c.env), File: mustParse(t, c.file)})
			if o.Passphrase != c.want {
				t.Fatalf("passphrase source = %#v, want %#v", o.Passphrase, c.want)
			}
			get := o.Passphrase.Func()
			if get == nil {
				if c.got != "" {
					t.Fatal("no passphrase source")
				}
				return
			}
			b, err := get()
			if err != nil || string(b) != c.got {
				t.Errorf("passphrase = %q, %v; want %q", b, err, c.got)
			}
		})
	}
	if s := fmt.Sprint(Options{Passphrase: PassphraseSource{Value: "hunter2"}}); strings.Contains(s, "hunter2") {
		t.Errorf("printing Options shows the passphrase: %s", s)
	}
}

// TestPassphraseFileMode: a passphrase file others can read is refused.
func TestPassphraseFileMode(t *testing.T) {
	p := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(p, []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := PassphraseSource{File: p}.Func()()
	if err == nil || !strings.Contains(err.Error(), "can be read by group or others") || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("mode 644: err = %v, want a refusal naming chmod 600", err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := (PassphraseSource{File: p}).Func()(); err != nil || string(b) != "secret" {
		t.Fatalf("mode 600: %q, %v", b, err)
	}
}

// TestFileRefusals: a key that is unknown or out of place is refused, in any
// table, with the key, the table and the line, whatever the command.
func TestFileRefusals(t *testing.T) {
	cases := []struct {
		name, text string
		want       []string
	}{
		{"typo at the top level", "repo = \"/r\"\ncompres = \"lz4\"\n",
			[]string{`config file test.toml, line 2: unknown key "compres"`, "did you mean compress?", "docs/config.md"}},
		{"typo in [cluster.main]", "repo = \"/r\"\n\n[cluster.main]\nconn = \"host=x\"\ncompres = \"lz4\"\n",
			[]string{`config file test.toml, line 5, [cluster.main]: unknown key "compres"`}},
		{"unknown key in [cluster.x]", "[cluster.x]\n# a comment\n  foo = 1 # another\n",
			[]string{`line 3, [cluster.x]: unknown key "foo"`}},
		{"quoted table and dotted key", "[cluster.\"main\"]\nconn = \"x\"\n[cluster.b]\n\"jbos\" = 3\n",
			[]string{`line 4, [cluster.b]: unknown key "jbos" (did you mean jobs?)`}},
		{"dotted key at the top", "cluster.main.cnn = \"x\"\n",
			[]string{`line 1, [cluster.main]: unknown key "cnn"`}},
		{"inline table", "[cluster]\nmain = { conn = \"x\", colour = \"red\" }\n",
			[]string{`line 2, [cluster.main]: unknown key "colour"`}},
		{"after a multi-line string", "label = \"\"\"\nfoo = 1\n\"\"\"\nfoo = 2\n",
			[]string{`line 4: unknown key "foo"`}},
		{"global-only key in a cluster table", "[cluster.main]\nlog-level = \"debug\"\n",
			[]string{"line 2, [cluster.main]: log-level applies to every cluster, so it cannot be set in [cluster.main]", "top level"}},
		{"default-cluster in a cluster table", "[cluster.main]\ndefault-cluster = \"x\"\n",
			[]string{"line 2, [cluster.main]: default-cluster applies to every cluster"}},
		{"config in the file", "config = \"/etc/other.toml\"\n",
			[]string{"line 1: config cannot be set in a config file: use --config or PGWARD_CONFIG"}},
		{"passphrase in the file", "\npassphrase = \"hunter2\"\n",
			[]string{"line 2: passphrase cannot be set in a config file", "passphrase-file"}},
		{"a private flag in the file", "prefetch-after = \"x\"\n", []string{`unknown key "prefetch-after"`}},
		{"cluster as a value", "cluster = \"prod\"\n", []string{"line 1", "default-cluster = \"NAME\""}},
		{"a cluster that is not a table", "[cluster]\nmain = 3\n", []string{"line 2: [cluster.main] must be a table"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseFile("test.toml", c.text)
			if err == nil {
				t.Fatalf("accepted:\n%s", c.text)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	// Every refusal, in the order of the file.
	_, err := ParseFile("test.toml", "[cluster.b]\nzz = 1\n[cluster.a]\nyy = 1\n")
	if err == nil || strings.Index(err.Error(), "line 2") > strings.Index(err.Error(), "line 4") {
		t.Errorf("err = %v, want line 2 then line 4", err)
	}
}

// TestCompressKeys: compress is the backups' codec and wal-compress WAL's,
// whose commands name it --compress.
func TestCompressKeys(t *testing.T) {
	for _, command := range []string{"", "backup", "archive-push", "wal-receive"} {
		o := mustResolve(t, Input{Command: command, File: mustParse(t, "compress = \"lz4\"\n")})
		if got := o.WALCompress.String(); got != "zstd:1" {
			t.Errorf("%s: compress in the file set WAL compression to %s", command, got)
		}
		if command == "" || command == "backup" {
			if got := o.Compress.String(); got != "lz4" {
				t.Errorf("%s: backup compression = %s, want lz4 from the file", command, got)
			}
		}
		o = mustResolve(t, Input{Command: command, Env: envOf(map[string]string{"PGWARD_COMPRESS": "none"})})
		if got := o.WALCompress.String(); got != "zstd:1" {
			t.Errorf("%s: PGWARD_COMPRESS set WAL compression to %s", command, got)
		}
		o = mustResolve(t, Input{Command: command, File: mustParse(t, "[cluster.main]\nwal-compress = \"lz4\"\n")})
		if got := o.Compress.String(); got != "zstd:3" {
			t.Errorf("%s: wal-compress set backup compression to %s", command, got)
		}
		if command != "backup" {
			if got := o.WALCompress.String(); got != "lz4" {
				t.Errorf("%s: WAL compression = %s, want lz4 from wal-compress", command, got)
			}
		}
	}
	k := Lookup("wal-compress")
	if k.Flag() != "compress" || k.Env() != "PGWARD_WAL_COMPRESS" || !k.TakenBy("archive-push") || !k.TakenBy("wal-receive") || k.TakenBy("backup") {
		t.Errorf("wal-compress: flag %q, env %q, commands %v", k.Flag(), k.Env(), k.Commands)
	}
}

// TestCluster: the cluster comes from --cluster, PGWARD_CLUSTER, the file's
// default-cluster or the default, and picks the table.
func TestCluster(t *testing.T) {
	file := "default-cluster = \"prod\"\nconn = \"top\"\n[cluster.prod]\nconn = \"prod\"\n[cluster.dev]\nconn = \"dev\"\n[cluster.qa]\nconn = \"qa\"\n"
	cases := []struct {
		flags         map[string][]string
		env           map[string]string
		text          string
		cluster, conn string
		origin        Origin
	}{
		{nil, nil, file, "prod", "prod", FromTopLevel},
		{nil, map[string]string{"PGWARD_CLUSTER": "dev"}, file, "dev", "dev", FromEnv},
		{nil, map[string]string{"PGWARD_CLUSTER": ""}, file, "prod", "prod", FromTopLevel},
		{map[string][]string{"cluster": {"qa"}}, map[string]string{"PGWARD_CLUSTER": "dev"}, file, "qa", "qa", FromFlag},
		{nil, nil, "conn = \"top\"\n[cluster.prod]\nconn = \"prod\"\n", "main", "top", FromDefault},
	}
	for _, c := range cases {
		o := mustResolve(t, Input{Command: "backup", Flags: c.flags, Env: envOf(c.env), File: mustParse(t, c.text)})
		if o.Cluster != c.cluster || o.Conn != c.conn || o.Origin("cluster") != c.origin {
			t.Errorf("flags %v env %v: cluster %s (%s), conn %s; want %s (%s), %s", c.flags, c.env, o.Cluster, o.Origin("cluster"), o.Conn, c.cluster, c.origin, c.conn)
		}
	}
	if got := mustParse(t, file).Clusters(); !slices.Equal(got, []string{"dev", "prod", "qa"}) {
		t.Errorf("Clusters() = %v", got)
	}
}

// TestValueErrors: a bad value is refused naming the option as it was given,
// and only by the commands that take it.
func TestValueErrors(t *testing.T) {
	cases := []struct {
		name  string
		in    Input
		text  string
		wants []string
	}{
		{"flag", Input{Command: "backup", Flags: map[string][]string{"jobs": {"0"}}}, "", []string{"--jobs 0: give at least 1 parallel worker"}},
		{"flag not a number", Input{Command: "backup", Flags: map[string][]string{"jobs": {"many"}}}, "", []string{`--jobs "many": give a whole number`}},
		{"flag with a unit", Input{Command: "backup", Flags: map[string][]string{"max-rate": {"10"}}}, "", []string{"--max-rate 10 kB/s: give 0 (unlimited) or at least 32"}},
		{"flag of a WAL codec", Input{Command: "archive-push", Flags: map[string][]string{"wal-compress": {"zip"}}}, "", []string{`--compress "zip"`, "unknown codec"}},
		{"environment", Input{Command: "restore", Env: envOf(map[string]string{"PGWARD_JOBS": "0"})}, "", []string{"environment PGWARD_JOBS=0: give at least 1"}},
		{"environment duration", Input{Command: "check", Env: envOf(map[string]string{"PGWARD_TIMEOUT": "soon"})}, "", []string{`environment PGWARD_TIMEOUT="soon": give a duration`}},
		{"top level", Input{Command: "backup"}, "\njobs = \"many\"\n", []string{`config file test.toml, line 2: jobs = "many": give a whole number`}},
		{"cluster table", Input{Command: "backup"}, "[cluster.main]\nmax-rate = 10\n", []string{"config file test.toml, line 2, [cluster.main]: max-rate = 10 kB/s: give 0"}},
		{"wal-compress in the file", Input{Command: "wal-receive"}, "wal-compress = \"zstd:99\"\n", []string{`line 1: wal-compress = "zstd:99"`, "zstd level"}},
		{"list for one value", Input{Command: "check"}, "timeout = [\"1s\", \"2s\"]\n", []string{"line 1: timeout takes one value, not a list"}},
		{"enum", Input{Command: "backup"}, "checkpoint = \"slow\"\n", []string{`checkpoint = "slow": use fast or spread`}},
		{"s3-sse", Input{Command: "list", Flags: map[string][]string{"s3-sse": {"rot13"}}}, "", []string{`--s3-sse "rot13": use AES256 or aws:kms`}},
		{"several", Input{Command: "wal-receive", Flags: map[string][]string{"partial-interval": {"0s"}}}, "status-interval = \"-1s\"\n",
			[]string{"--partial-interval 0s: give a positive duration", `line 1: status-interval = -1s: give a positive duration`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.in.File = mustParse(t, c.text)
			_, err := Resolve(c.in)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	// A bad backup setting does not stop archive-push, which does not take it.
	mustResolve(t, Input{Command: "archive-push", File: mustParse(t, "jobs = 0\ncheckpoint = \"slow\"\n")})
}

// TestRegistry: every Options field is set by exactly one key of the matching
// kind, names are unique where they meet, and every default is valid.
func TestRegistry(t *testing.T) {
	var o Options
	fields := map[uintptr]string{}
	var walk func(v reflect.Value, name string)
	walk = func(v reflect.Value, name string) {
		for i := range v.NumField() {
			f, sf := v.Field(i), v.Type().Field(i)
			if !sf.IsExported() {
				continue
			}
			if f.Kind() == reflect.Struct {
				walk(f, name+sf.Name+".")
				continue
			}
			fields[f.Addr().Pointer()] = name + sf.Name
		}
	}
	walk(reflect.ValueOf(&o).Elem(), "")
	setBy := map[string]string{}
	env, file := map[string]string{}, map[string]string{}
	flags := map[string]map[string]string{}
	for _, k := range Keys() {
		field, ok := fields[reflect.ValueOf(k.field(&o)).Pointer()]
		if !ok {
			t.Errorf("key %s sets no field of Options", k.Name)
		} else if prev, dup := setBy[field]; dup {
			t.Errorf("keys %s and %s both set %s", prev, k.Name, field)
		}
		setBy[field] = k.Name
		if k.Help == "" && !k.Hidden {
			t.Errorf("key %s has no help", k.Name)
		}
		for _, n := range []struct {
			m    map[string]string
			name string
		}{{env, k.Env()}, {file, k.FileKey()}} {
			if prev, dup := n.m[n.name]; dup && n.name != "" {
				t.Errorf("keys %s and %s share %s", prev, k.Name, n.name)
			}
			n.m[n.name] = k.Name
		}
		cmds := k.Commands
		if cmds == nil {
			cmds = []string{""}
		}
		for _, c := range cmds {
			if flags[c] == nil {
				flags[c] = map[string]string{}
			}
			if prev, dup := flags[c][k.Flag()]; dup && k.Flag() != "" {
				t.Errorf("keys %s and %s share the flag --%s", prev, k.Name, k.Flag())
			}
			flags[c][k.Flag()] = k.Name
		}
	}
	for _, f := range fields {
		if _, ok := setBy[f]; !ok {
			t.Errorf("no key sets Options.%s", f)
		}
	}
	for c, fs := range flags {
		for f, k := range fs {
			if g, ok := flags[""][f]; ok && c != "" && f != "" {
				t.Errorf("--%s of %s (%s) shadows the global --%s (%s)", f, c, k, f, g)
			}
		}
	}
	o2 := mustResolve(t, Input{})
	if o2.Cluster != DefaultCluster || o2.Compress.String() != "zstd:3" || o2.S3.RetryMax != 2*time.Minute {
		t.Errorf("defaults: %+v", o2)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"30d": 30 * 24 * time.Hour, "2w": 14 * 24 * time.Hour, "1w2d": 9 * 24 * time.Hour,
		"1d12h": 36 * time.Hour, "90m": 90 * time.Minute, "0s": 0, "10s": 10 * time.Second,
	} {
		if got, err := parseDuration(in); err != nil || got != want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "3x", "2d3w", "-1d", "1.5d"} {
		if got, err := parseDuration(in); err == nil {
			t.Errorf("parseDuration(%q) = %v; want an error", in, got)
		}
	}
}

// TestNewPassphrase: the new passphrase of key add and key passwd follows the
// passphrase's rules: the flag's file beats PGWARD_NEW_PASSPHRASE, which beats
// PGWARD_NEW_PASSPHRASE_FILE; the file cannot hold it; other commands ignore it.
func TestNewPassphrase(t *testing.T) {
	dir := t.TempDir()
	fromFile := filepath.Join(dir, "new")
	if err := os.WriteFile(fromFile, []byte("from the file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	read := func(o *Options) string {
		t.Helper()
		f := o.NewPassphraseFunc()
		if f == nil {
			return "<none>"
		}
		b, err := f()
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	env := map[string]string{"PGWARD_NEW_PASSPHRASE": "from env", "PGWARD_NEW_PASSPHRASE_FILE": "/nonexistent"}
	for _, c := range []struct {
		cmd   string
		flags map[string][]string
		env   map[string]string
		want  string
	}{
		{"key add", map[string][]string{"new-passphrase-file": {fromFile}}, env, "from the file"},
		{"key passwd", nil, env, "from env"},
		{"key add", nil, map[string]string{"PGWARD_NEW_PASSPHRASE_FILE": fromFile}, "from the file"},
		{"key add", nil, map[string]string{"PGWARD_NEW_PASSPHRASE": ""}, "<none>"},
		{"backup", nil, env, "<none>"},
	} {
		o := mustResolve(t, Input{Command: c.cmd, Flags: c.flags, Env: envOf(c.env)})
		if got := read(o); got != c.want {
			t.Errorf("%s with flags %v and env %v: new passphrase %q, want %q", c.cmd, c.flags, c.env, got, c.want)
		}
		if s := o.NewPassphrase.String(); strings.Contains(s, "from env") {
			t.Errorf("String shows the passphrase: %s", s)
		}
	}
	if _, err := ParseFile("test.toml", "new-passphrase-file = \"/x\"\n"); err == nil {
		if _, err := Resolve(Input{Command: "key add", File: mustParse(t, "new-passphrase-file = \"/x\"\n")}); err == nil {
			t.Error("the config file set the new passphrase file")
		}
	}
}
