package cmdline

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pgward/pgward/internal/config"
)

// RestoreCommand is the restore_command a restored cluster runs: this pgward binary's
// archive-get with the repositories, cluster and passphrase source of o, and the S3
// options that were set. It carries what was set on the command line, in the environment
// or in the file: the server has neither this environment nor, perhaps, the file.
func RestoreCommand(o *config.Options) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("finding the pgward binary for restore_command: %w", err)
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return "", err
	}
	return ArchiveGet(exe, o), nil
}

// ArchiveGet is the restore_command of program under o.
func ArchiveGet(program string, o *config.Options) string {
	inv := Invocation{Program: program, Command: "archive-get", Args: []string{"%f", "%p"},
		Cluster: o.Cluster, PassphraseCommand: o.Passphrase.Command}
	if o.Config != "" {
		inv.Config, _ = filepath.Abs(o.Config)
	}
	for _, s := range o.Repos {
		if !strings.Contains(s, "://") {
			s, _ = filepath.Abs(s)
		}
		inv.Repos = append(inv.Repos, s)
	}
	// Even when PGWARD_PASSPHRASE won here, the server needs the file.
	if p := o.Passphrase.File; p != "" {
		inv.PassphraseFile, _ = filepath.Abs(p)
	}
	// Credentials are not options: the server gets them from its own
	// environment, AWS shared config, ssh agent or key files.
	for _, k := range config.Keys() {
		if k.Group != "" && o.Origin(k.Name) != config.FromDefault {
			v := o.Text(k.Name)
			if k.IsPath && v != "" {
				v, _ = filepath.Abs(v)
			}
			inv.Options = append(inv.Options, Option{Name: k.Flag(), Value: v})
		}
	}
	return inv.Build()
}
