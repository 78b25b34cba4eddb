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
	err := root.ExecuteContext(ctx)
	if err == nil {
		return
	}
	code := 2
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
		err = ee.err
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgward: "+err.Error())
	}
	pprof.StopCPUProfile()
	os.Exit(code)
}
