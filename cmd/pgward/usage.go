package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/pgward/pgward/internal/config"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// usageError is a mistake in how pgward was called (a flag, an argument, an option's
// value, the config file): nothing was done, and the exit status says so.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usage(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// noArgs refuses positional arguments.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usage("%s takes no arguments, but was given %q; see pgward %s --help", cmd.CommandPath(), strings.Join(args, " "), cmd.Name())
	}
	return nil
}

// exactArgs wants one argument per name, and names the missing ones.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) < len(names):
			return usage("%s needs %s: missing %s; see %s --help", cmd.CommandPath(), strings.Join(names, " "), strings.Join(names[len(args):], " "), cmd.CommandPath())
		case len(args) > len(names):
			return usage("%s takes %s, but was given %d arguments (%q); see %s --help", cmd.CommandPath(), strings.Join(names, " "), len(args), strings.Join(args, " "), cmd.CommandPath())
		}
		return nil
	}
}

// minArgs wants at least one argument named name.
func minArgs(name string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return usage("%s needs at least one %s; see %s --help", cmd.CommandPath(), name, cmd.CommandPath())
		}
		return nil
	}
}

// flagError turns pflag's errors into usage errors, with the closest flag the command has
// for a mistyped one.
func flagError(cmd *cobra.Command, err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "unknown flag: --"); ok {
		var names []string
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			if !f.Hidden {
				names = append(names, f.Name)
			}
		})
		if s := config.Closest(name, names); s != "" {
			msg += fmt.Sprintf(" (did you mean --%s?)", s)
		}
	}
	return &usageError{fmt.Errorf("%s; see %s --help", msg, cmd.CommandPath())}
}

// isUsage reports whether err is a usage error, including cobra's own (unknown command).
func isUsage(err error) bool {
	var ue *usageError
	return errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command ")
}
