// Command benchtool is the measuring half of bench/run.sh, the side-by-side
// benchmark of pgward, pgBackRest and pg_basebackup. The script decides what to
// run; benchtool runs it and measures it the same way for every tool:
//
//   - run: one command, as a given OS user; prints its wall time and peak RSS.
//     Peak RSS is the larger of the kernel's maximum for the biggest single
//     process (rusage) and the sampled sum over the whole process tree, so a
//     tool that forks workers (pgBackRest's process-max) is charged for all of
//     them, like a single multi-threaded process is.
//   - push-loop / get-loop: a sequence of archive_command / restore_command
//     calls made the way PostgreSQL makes them (one at a time, %p relative to
//     the data directory, .ready renamed to .done after each success).
//   - start-wait: starts a restored data directory and waits until it has left
//     recovery (the end of an RTO measurement).
//   - report: medians per measurement, ratios and the markdown table.
//   - splice: puts a generated block between markers in a markdown file.
//
// It is never part of pgward; it only exists so that the numbers in
// docs/benchmarks.md come from one place and one method.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	args := os.Args[2:]
	switch os.Args[1] {
	case "run":
		err = cmdRun(args)
	case "push-loop":
		err = cmdPushLoop(args)
	case "get-loop":
		err = cmdGetLoop(args)
	case "start-wait":
		err = cmdStartWait(args)
	case "report":
		err = cmdReport(args)
	case "splice":
		err = cmdSplice(args)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtool "+os.Args[1]+":", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: benchtool run|push-loop|get-loop|start-wait|report|splice [flags] [-- command ...]")
	os.Exit(2)
}
