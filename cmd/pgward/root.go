package main

import (
	"os"

	"github.com/pgward/pgward/internal/config"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func newRootCmd() *cobra.Command {
	// Every command reads the options resolved once, before it runs.
	o := new(config.Options)
	root := &cobra.Command{
		Use:           "pgward",
		Short:         "Back up PostgreSQL and restore it to any point in time",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			resolved, err := resolveOptions(cmd, os.LookupEnv)
			if err != nil {
				return &usageError{err}
			}
			*o = *resolved
			return setupLogging(o)
		},
	}
	root.AddCommand(newInitCmd(o), newBackupCmd(o), newListCmd(o), newRestoreCmd(o), newArchivePushCmd(o), newArchiveGetCmd(o))
	root.AddCommand(newCheckCmd(o))
	root.AddCommand(newWalReceiveCmd(o), newUpgradeCmd(o))
	root.AddCommand(newExpireCmd(o), newPinCmd(o), newUnpinCmd(o), newDrillCmd(o), newDaemonCmd(o))
	root.AddCommand(newVersionCmd(o), newManCmd(o))
	root.AddCommand(newKeyCmd(o))
	root.AddCommand(newVerifyCmd(o), newInfoCmd(o))
	defineFlags(root)
	registerCompletions(root)
	root.SetFlagErrorFunc(flagError)
	root.SuggestionsMinimumDistance = 2
	return root
}

// stderrIsTerminal decides between a progress bar and log lines.
func stderrIsTerminal() bool { return term.IsTerminal(int(os.Stderr.Fd())) }
