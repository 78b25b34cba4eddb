// Command pgward backs up PostgreSQL clusters and restores them. This package is
// the CLI only: it parses flags, environment and config file into options and
// calls engine, repo and restore, where the logic (and its tests) live.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

// Exit statuses (README, "Exit statuses"; TestExitStatuses runs each).
const (
	// exitNotArchived is archive-get's quiet "no repository has this file".
	exitNotArchived = 1
	// exitUsage is a mistake in the call (command, flag, argument, option value,
	// config file): nothing was done.
	exitUsage = 2
	// exitFailure is a command that ran and failed or refused its input.
	exitFailure = 3
	// exitReceiveFatal is wal-receive stopping on an error a restart cannot
	// fix (a supervisor should not restart it: RestartPreventExitStatus=4).
	exitReceiveFatal = 4
	// exitInterrupted is a command stopped by SIGINT or SIGTERM (128 + SIGINT).
	exitInterrupted = 130
	// exitWALFatal is every other archive-get failure: above 125, so that
	// PostgreSQL stops recovery with an error instead of promoting early.
	exitWALFatal = 200
)

// exitError carries a specific exit status (archive-get's quiet "not found" is 1).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// PGWARD_CPUPROFILE=FILE writes a Go CPU profile of this run (for
	// docs/benchmarks.md); it is not an option because users never need it.
	if p := os.Getenv("PGWARD_CPUPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				defer pprof.StopCPUProfile()
			}
		}
	}
	root := newRootCmd()
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return
	}
	code := exitFailure
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		code = ee.code
		err = ee.err
	case isUsage(err):
		code = exitUsage
	case ctx.Err() != nil:
		code = exitInterrupted
	}
	if cmd != nil && cmd.Name() == "archive-get" && code != exitNotArchived {
		// PostgreSQL reads any status up to 125 from restore_command as "not
		// archived" and ends recovery there, promoting with the WAL after it
		// lost. Every failure that is not a clean "no repository has it" (a bad
		// flag, an unreadable repository or passphrase, a corrupt copy
		// everywhere) must stop recovery instead.
		code = exitWALFatal
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgward: "+err.Error())
	}
	pprof.StopCPUProfile()
	os.Exit(code)
}
