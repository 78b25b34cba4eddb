package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/location"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "pgward",
		Short:         "Back up PostgreSQL and restore it to any point in time",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := resolveFlags(cmd); err != nil {
				return err
			}
			return setupLogging(cmd)
		},
	}
	pf := root.PersistentFlags()
	pf.String("config", "", "TOML config file (default "+defaultConfigFile+" when it exists)")
	pf.StringArray("repo", nil, "repository location: a directory or s3://bucket/prefix (repeat for several repositories)")
	pf.String("cluster", "main", "name of the PostgreSQL cluster inside the repository")
	pf.String("passphrase-file", "", "file holding the repository passphrase (or set PGWARD_PASSPHRASE)")
	pf.String("passphrase-command", "", "shell command that prints the repository passphrase")
	pf.String("log-format", "text", "log format: text or json")
	pf.String("log-level", "info", "log level: debug, info, warn or error")
	addS3Flags(pf)
	root.AddCommand(newInitCmd(), newBackupCmd(), newListCmd(), newRestoreCmd(), newArchivePushCmd(), newArchiveGetCmd())
	root.AddCommand(newCheckCmd())
	root.AddCommand(newWalReceiveCmd())
	return root
}

func setupLogging(cmd *cobra.Command) error {
	format, _ := cmd.Flags().GetString("log-format")
	lvlName, _ := cmd.Flags().GetString("log-level")
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(lvlName)); err != nil {
		return fmt.Errorf("--log-level %q: use debug, info, warn or error", lvlName)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, opts)))
	case "json":
		slog.SetDefault(slog.New(slog.NewJSONHandler(os.Stderr, opts)))
	default:
		return fmt.Errorf("--log-format %q: use text or json", format)
	}
	return nil
}

// stderrIsTerminal decides between a progress bar and log lines.
func stderrIsTerminal() bool { return term.IsTerminal(int(os.Stderr.Fd())) }

func repoSpecs(cmd *cobra.Command) ([]string, error) {
	specs, _ := cmd.Flags().GetStringArray("repo")
	if len(specs) == 0 {
		return nil, fmt.Errorf("no repository given: use --repo DIR, PGWARD_REPO, or repo in the config file")
	}
	return specs, nil
}

// openRepos opens every configured repository.
func openRepos(ctx context.Context, cmd *cobra.Command) ([]*repo.Repo, error) {
	specs, err := repoSpecs(cmd)
	if err != nil {
		return nil, err
	}
	return location.Open(ctx, specs, locationOptions(cmd))
}

func clusterName(cmd *cobra.Command) (string, error) {
	c, _ := cmd.Flags().GetString("cluster")
	return c, repo.ValidClusterName(c)
}
