package config

import (
	"fmt"
	"strings"
)

// Reference renders docs/config.md from the registry.
func Reference() string {
	var b strings.Builder
	b.WriteString(`# Configuration reference

<!-- Generated from the registry in internal/config/keys.go. Edit the registry, then run
     PGWARD_UPDATE_DOCS=1 go test ./internal/config -run TestReference -->

Every pgward setting is a key. The same key is a command-line flag, an environment variable and a
key of the TOML config file, and means the same in each.

## Where a value comes from

For every key, the first of these that sets it wins:

1. the command-line flag;
2. the environment variable (` + "`PGWARD_`" + ` and the key in upper case, ` + "`-`" + ` → ` + "`_`" + `; a list takes
   comma-separated values, e.g. ` + "`PGWARD_REPO=/a,/b`" + `);
3. the key in the config file's ` + "`[cluster.NAME]`" + ` table of the cluster being worked on;
4. the key at the top level of the config file;
5. the default.

The config file is ` + "`--config`" + ` or ` + "`PGWARD_CONFIG`" + `, else ` + "`" + DefaultFile + "`" + ` when it exists. The
cluster is ` + "`--cluster`" + `, else ` + "`PGWARD_CLUSTER`" + `, else the file's top-level ` + "`default-cluster`" + `,
else ` + "`" + DefaultCluster + "`" + `: ` + "`cluster`" + ` in the file is the table of per-cluster settings.

**The passphrase** of an encrypted repository is one setting made of three keys: ` + "`passphrase`" + `
(the passphrase itself, only ever from ` + "`PGWARD_PASSPHRASE`" + `), ` + "`passphrase-file`" + ` and
` + "`passphrase-command`" + `. The first layer that names any of them wins as a whole:
` + "`--passphrase-file`" + ` or ` + "`--passphrase-command`" + ` on the command line beat ` + "`PGWARD_PASSPHRASE`" + `,
` + "`PGWARD_PASSPHRASE_FILE`" + ` and ` + "`PGWARD_PASSPHRASE_COMMAND`" + `, which beat ` + "`passphrase-file`" + ` and
` + "`passphrase-command`" + ` in the file (a ` + "`[cluster.NAME]`" + ` table before the top level). Within one layer the
passphrase itself comes first, then the file, then the command. The ` + "`restore_command`" + ` that
` + "`restore`" + ` writes carries the strongest passphrase file or command even when ` + "`PGWARD_PASSPHRASE`" + `
wins here: the server does not have this environment.

**The new passphrase** of ` + "`key add`" + ` and ` + "`key passwd`" + ` is read the same way, from its own keys:
` + "`--new-passphrase-file`" + ` beats ` + "`PGWARD_NEW_PASSPHRASE`" + `, which beats ` + "`PGWARD_NEW_PASSPHRASE_FILE`" + `; the
config file cannot set it. With none of them, and a terminal on standard input, it is asked there twice
(not echoed); without a terminal the command refuses.

**Compression**: ` + "`compress`" + ` is the codec of backups (` + "`backup --compress`" + `, ` + "`PGWARD_COMPRESS`" + `);
` + "`wal-compress`" + ` is the codec of WAL (` + "`archive-push --compress`" + `, ` + "`wal-receive --compress`" + `,
` + "`PGWARD_WAL_COMPRESS`" + `).

**The file** is checked as a whole whatever the command: an unknown key, in any table, is refused
with its line, and so is a key that cannot be set where it stands. A list is a TOML array (a single
string is a list of one). A value is parsed and checked only by the commands that take its key.

An environment variable set to the empty string counts as set (` + "`PGWARD_S3_SSE=`" + ` clears the file's
` + "`s3-sse`" + `), except ` + strings.Join(emptyUnsetVars(), ", ") + `, for which an empty value names nothing.

`)
	sections := []struct {
		title string
		keep  func(*Key) bool
	}{
		{"Keys every command takes", func(k *Key) bool { return k.Commands == nil && k.Group == "" }},
		{"S3 repositories (every command)", func(k *Key) bool { return k.Group == S3Group }},
		{"Azure repositories (every command)", func(k *Key) bool { return k.Group == AzureGroup }},
		{"GCS repositories (every command)", func(k *Key) bool { return k.Group == GCSGroup }},
		{"SFTP repositories (every command)", func(k *Key) bool { return k.Group == SFTPGroup }},
		{"Command keys", func(k *Key) bool { return k.Commands != nil }},
	}
	for _, s := range sections {
		fmt.Fprintf(&b, "## %s\n\n", s.title)
		b.WriteString("| key | flag | environment | in the file | type | default | commands | meaning |\n")
		b.WriteString("|---|---|---|---|---|---|---|---|\n")
		for _, k := range registry {
			if !k.Hidden && s.keep(k) {
				b.WriteString(row(k))
			}
		}
		b.WriteString("\n")
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func row(k *Key) string {
	code := func(s string) string {
		if s == "" {
			return "—"
		}
		return "`" + s + "`"
	}
	flag := "—"
	if k.Flag() != "" {
		flag = "`--" + k.Flag() + "`"
	}
	file := "—"
	if fk := k.FileKey(); fk != "" {
		file = code(fk) + ", top level"
		if !k.TopLevelOnly {
			file += " or `[cluster.NAME]`"
		}
	}
	typ := k.Kind.String()
	if k.Unit != "" {
		typ += " (" + k.Unit + ")"
	}
	def := code(k.Default)
	if k.DocDefault != "" {
		def = k.DocDefault
	}
	cmds := "every command"
	if k.Commands != nil {
		cmds = "`" + strings.Join(k.Commands, "`, `") + "`"
	}
	cells := []string{code(k.Name), flag, code(k.Env()), file, typ, def, cmds, k.Help}
	for i, c := range cells {
		cells[i] = strings.ReplaceAll(c, "|", `\|`)
	}
	return "| " + strings.Join(cells, " | ") + " |\n"
}

func emptyUnsetVars() []string {
	var vars []string
	for _, k := range registry {
		if k.emptyUnset && k.Env() != "" {
			vars = append(vars, "`"+k.Env()+"`")
		}
	}
	return vars
}
