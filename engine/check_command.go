package engine

// What check reads in an archive_command, and the line it suggests.

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pgward/pgward/internal/cmdline"
)

// ArchiveCommandLine is the postgresql.conf line that archives with program
// into repos under cluster, quoted for the shell and for the file.
func ArchiveCommandLine(program string, repos []string, cluster string) string {
	inv := cmdline.Invocation{Program: program, Command: "archive-push", Repos: repos, Args: []string{"%p"}}
	if cluster != "main" {
		inv.Cluster = cluster
	}
	return cmdline.Conf("archive_command", inv.Build())
}

// CheckArchiveCommand compares an archive_command with the repositories and
// cluster being checked. It returns an error naming the first difference, and
// warnings for what the command leaves to a config file or the server's
// environment, which check cannot see. config is the config file check itself
// runs with: a command naming that same file archives where check looks.
func CheckArchiveCommand(cmd string, repos []string, cluster, config string) (warnings []string, err error) {
	a := cmdline.Parse(cmd)
	if a.Config != "" && config != "" && sameRepo(a.Config, config) && len(a.Repos) == 0 && a.Cluster == "" {
		return nil, nil // the same file names the repositories and the cluster for both
	}
	if a.Command != "archive-push" {
		return nil, fmt.Errorf("the archive_command does not run pgward archive-push (it is %q)", cmd)
	}
	if !slices.Contains(a.Args, "%p") {
		return nil, fmt.Errorf("the archive_command does not pass the WAL file's path to archive-push: it has no %%p (it is %q)", cmd)
	}
	if len(a.Repos) > 0 {
		for _, want := range repos {
			if !slices.ContainsFunc(a.Repos, func(have string) bool { return sameRepo(have, want) }) {
				return nil, fmt.Errorf("the archive_command does not use this repository: it archives to %s, not to %s (it is %q)", strings.Join(a.Repos, ", "), want, cmd)
			}
		}
	} else {
		src := "PGWARD_REPO in the server's environment or /etc/pgward/pgward.toml"
		if a.Config != "" {
			src = "the config file " + a.Config
		}
		warnings = append(warnings, fmt.Sprintf("the archive_command takes its repositories from %s, which check cannot compare with --repo; the test segment arriving is the proof", src))
	}
	switch {
	case a.Cluster != "" && a.Cluster != cluster:
		return nil, fmt.Errorf("the archive_command archives as cluster %q, not %q (it is %q): fix its --cluster, or check with --cluster %s", a.Cluster, cluster, cmd, a.Cluster)
	case a.Cluster != "":
	case a.Config != "":
		warnings = append(warnings, fmt.Sprintf("the archive_command takes its cluster name from the config file %s (default-cluster, else \"main\"); check assumes %q", a.Config, cluster))
	case cluster != "main":
		return nil, fmt.Errorf("the archive_command gives no --cluster, so it archives as cluster \"main\", not %q (it is %q): add --cluster %s to it", cluster, cmd, cluster)
	}
	return warnings, nil
}

// sameRepo compares an archive_command's --repo with a repository location:
// URLs as text, directories after cleaning and resolving symbolic links.
func sameRepo(a, b string) bool {
	if a == b {
		return true
	}
	if strings.Contains(a, "://") || strings.Contains(b, "://") {
		return strings.TrimRight(a, "/") == strings.TrimRight(b, "/")
	}
	a, b = filepath.Clean(a), filepath.Clean(b)
	if a == b {
		return true
	}
	ra, err1 := filepath.EvalSymlinks(a)
	rb, err2 := filepath.EvalSymlinks(b)
	return err1 == nil && err2 == nil && ra == rb
}
