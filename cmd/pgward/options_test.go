package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pgward/pgward/internal/cmdline"
	"github.com/pgward/pgward/internal/config"
	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/retry"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// options parses a command line as pgward would and resolves it with env and
// the config file text (never the machine's /etc/pgward/pgward.toml).
func options(t *testing.T, env map[string]string, file string, args ...string) *config.Options {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "pgward.toml")
	if err := os.WriteFile(cfg, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, rest, err := newRootCmd().Find(args)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.ParseFlags(append(rest, "--config", cfg)); err != nil {
		t.Fatal(err)
	}
	o, err := resolveOptions(cmd, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return o
}

// TestFlagsFromRegistry: every flag of every command is a registry key's, and
// every key with a flag is on each command that takes it.
func TestFlagsFromRegistry(t *testing.T) {
	root := newRootCmd()
	var all []*cobra.Command
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			all = append(all, sub)
			walk(sub)
		}
	}
	walk(root)
	for _, c := range all {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if _, ok := f.Value.(*flagValue); !ok && f.Name != "help" {
				t.Errorf("%s --%s is not defined from the registry", c.Name(), f.Name)
			}
		})
		c.InheritedFlags().VisitAll(func(f *pflag.Flag) {
			if _, ok := f.Value.(*flagValue); !ok && f.Name != "help" && f.Name != "version" {
				t.Errorf("%s --%s (inherited) is not defined from the registry", c.Name(), f.Name)
			}
		})
	}
	for _, k := range config.Keys() {
		if k.Flag() == "" {
			continue
		}
		cmds := k.Commands
		if cmds == nil {
			cmds = []string{"backup", "archive-get"}
		}
		for _, name := range cmds {
			c, _, err := root.Find(strings.Fields(name))
			if err != nil {
				t.Fatal(err)
			}
			if f := c.Flag(k.Flag()); f == nil || f.Value.(*flagValue).key != k {
				t.Errorf("%s has no --%s for key %s", name, k.Flag(), k.Name)
			}
		}
	}
}

// TestDefaultsMatchLibraries: the registry's defaults for values the libraries
// also define are the libraries' own.
func TestDefaultsMatchLibraries(t *testing.T) {
	o := options(t, nil, "", "init")
	if o.ChunkSizeKiB<<10 != repo.DefaultChunkSize {
		t.Errorf("chunk-size-kib defaults to %d KiB, the repository to %d bytes", o.ChunkSizeKiB, repo.DefaultChunkSize)
	}
	if o.S3.RetryMax != retry.DefaultMaxElapsed {
		t.Errorf("s3-retry-max defaults to %s, the retry wrapper to %s", o.S3.RetryMax, retry.DefaultMaxElapsed)
	}
}

// TestCommandLine: flags reach their keys, --compress is the WAL codec on the WAL
// commands, and a flag passphrase source beats PGWARD_PASSPHRASE.
func TestCommandLine(t *testing.T) {
	o := options(t, nil, "", "archive-push", "--compress", "lz4", "--repo", "/a", "--repo", "/b,c", "x")
	if o.WALCompress.String() != "lz4" || o.Compress.String() != "zstd:3" {
		t.Errorf("archive-push --compress lz4: WAL %s, backup %s", o.WALCompress, o.Compress)
	}
	if !slices.Equal(o.Repos, []string{"/a", "/b,c"}) {
		t.Errorf("--repo twice: %q", o.Repos)
	}
	o = options(t, nil, "wal-compress = \"none\"\n", "backup", "--compress", "lz4")
	if o.Compress.String() != "lz4" {
		t.Errorf("backup --compress lz4: backup codec %s", o.Compress)
	}
	o = options(t, nil, "", "restore", "--tablespace-map", "1=/a,2=/b", "--tablespace-map", "3=/c", "--target-immediate")
	if !slices.Equal(o.Restore.TablespaceMap, []string{"1=/a", "2=/b", "3=/c"}) || !o.Restore.TargetImmediate {
		t.Errorf("restore: %q, immediate %v", o.Restore.TablespaceMap, o.Restore.TargetImmediate)
	}
	o = options(t, map[string]string{"PGWARD_PASSPHRASE": "from env"}, "", "list", "--passphrase-file", "/flag")
	if o.Passphrase != (config.PassphraseSource{File: "/flag"}) {
		t.Errorf("--passphrase-file under PGWARD_PASSPHRASE: %#v", o.Passphrase)
	}
}

// TestRestoreCommandCarries: the restore_command carries the repositories, the
// config file, the passphrase file and the S3 options set by flag, environment
// or file, and nothing left at its default.
func TestRestoreCommandCarries(t *testing.T) {
	env := map[string]string{"PGWARD_PASSPHRASE": "only here", "PGWARD_S3_ENDPOINT": "http://127.0.0.1:9000"}
	file := "repo = [\"rel-repo\", \"s3://bucket/pg\"]\npassphrase-file = \"pass\"\ns3-path-style = true\n[cluster.db]\ns3-retry-max = \"30s\"\n"
	o := options(t, env, file, "restore", "--cluster", "db")
	line := archiveGetCommand("/usr/bin/pgward", o)
	inv := cmdline.Parse(line)
	abs := func(p string) string { a, _ := filepath.Abs(p); return a }
	if !filepath.IsAbs(inv.Config) || inv.Cluster != "db" || inv.PassphraseFile != abs("pass") || inv.PassphraseCommand != "" {
		t.Errorf("config %q, cluster %q, passphrase file %q, command %q in %s", inv.Config, inv.Cluster, inv.PassphraseFile, inv.PassphraseCommand, line)
	}
	if !slices.Equal(inv.Repos, []string{abs("rel-repo"), "s3://bucket/pg"}) {
		t.Errorf("repos %q in %s", inv.Repos, line)
	}
	want := []cmdline.Option{{Name: "s3-endpoint", Value: "http://127.0.0.1:9000"}, {Name: "s3-path-style", Value: "true"}, {Name: "s3-retry-max", Value: "30s"}}
	if !slices.Equal(inv.Options, want) {
		t.Errorf("options %v, want %v, in %s", inv.Options, want, line)
	}
	if strings.Contains(line, "only here") {
		t.Errorf("the restore_command carries the passphrase itself: %s", line)
	}
}

// TestListCluster: list shows every cluster unless one was named.
func TestListCluster(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		file string
		args []string
		one  bool
	}{
		{nil, "", nil, false},
		{nil, "", []string{"--cluster", "main"}, true},
		{map[string]string{"PGWARD_CLUSTER": "db"}, "", nil, true},
		{nil, "default-cluster = \"db\"\n", nil, true},
		{nil, "default-cluster = \"main\"\n", nil, false},
	} {
		o := options(t, c.env, c.file, append([]string{"list"}, c.args...)...)
		if got := listOneCluster(o); got != c.one {
			t.Errorf("env %v file %q args %v: one cluster %v, want %v", c.env, c.file, c.args, got, c.one)
		}
	}
}

// TestKeyCommandOptions: the key commands are registry commands by their full
// names; key list takes --json but not the top-level list's other keys, and
// the new passphrase flag reaches key add only.
func TestKeyCommandOptions(t *testing.T) {
	o := options(t, map[string]string{"PGWARD_NEW_PASSPHRASE": "from env"}, "", "key", "add", "--note", "DR site", "--repo", "/r")
	if o.KeyNote != "DR site" || o.NewPassphrase.Value != "from env" || o.Repos[0] != "/r" {
		t.Fatalf("key add: %+v", o)
	}
	if o := options(t, nil, "", "key", "list", "--json"); !o.JSON {
		t.Fatal("key list --json")
	}
	root := newRootCmd()
	for _, c := range []struct {
		args []string
		flag string
		want bool
	}{
		{[]string{"key", "add"}, "new-passphrase-file", true},
		{[]string{"key", "passwd"}, "note", true},
		{[]string{"key", "remove"}, "new-passphrase-file", false},
		{[]string{"key", "list"}, "note", false},
		{[]string{"list"}, "note", false},
	} {
		cmd, _, err := root.Find(c.args)
		if err != nil {
			t.Fatal(err)
		}
		if got := cmd.Flags().Lookup(c.flag) != nil; got != c.want {
			t.Errorf("%v --%s defined: %v, want %v", c.args, c.flag, got, c.want)
		}
	}
}
