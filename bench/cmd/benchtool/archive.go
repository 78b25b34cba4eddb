package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// readLines reads one name per line, skipping blanks.
func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		if l := strings.TrimSpace(s.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out, s.Err()
}

// expand fills PostgreSQL's %p, %f and %% in an archive or restore command.
func expand(tmpl, p, f string) string {
	r := strings.NewReplacer("%p", p, "%f", f, "%%", "%")
	return r.Replace(tmpl)
}

// loopFlags parses what push-loop and get-loop share.
func loopFlags(name string, args []string) (o runOpts, segs []string, tmpl string, verify string, err error) {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	o.register(fs)
	segFile := fs.String("segs", "", "file with one WAL segment name per line, in order")
	fs.StringVar(&verify, "verify", "", "get-loop: directory with the original segments to compare each fetched one with")
	fl, argv := splitArgs(args)
	fs.Parse(fl)
	if len(argv) != 1 {
		return o, nil, "", "", fmt.Errorf("give the command as one string after --, with %%p and %%f, as in postgresql.conf")
	}
	if o.dir == "" {
		return o, nil, "", "", fmt.Errorf("-dir (the data directory the command runs in) is required")
	}
	segs, err = readLines(*segFile)
	if err != nil {
		return o, nil, "", "", err
	}
	if len(segs) == 0 {
		return o, nil, "", "", fmt.Errorf("%s lists no segments", *segFile)
	}
	return o, segs, argv[0], verify, nil
}

// cmdPushLoop calls an archive_command once per segment, in order, the way
// PostgreSQL's archiver does: through /bin/sh, in the data directory, with
// %p = pg_wal/NAME, and marks each segment done (archive_status/NAME.ready
// becomes .done) before the next call. Prints "SUM_OF_CALL_SECONDS MAX_RSS_KB".
func cmdPushLoop(args []string) error {
	o, segs, tmpl, _, err := loopFlags("push-loop", args)
	if err != nil {
		return err
	}
	status := filepath.Join(o.dir, "pg_wal", "archive_status")
	return timeEach(o, segs, "archiving", func(s string) string { return expand(tmpl, "pg_wal/"+s, s) }, func(s string) error {
		return os.Rename(filepath.Join(status, s+".ready"), filepath.Join(status, s+".done"))
	})
}

// timeEach runs the shell command cmdFor(segment) for each segment in turn,
// then after(segment), and prints "SUM_OF_CALL_SECONDS MAX_RSS_KB" over the
// calls alone.
func timeEach(o runOpts, segs []string, verb string, cmdFor func(string) string, after func(string) error) error {
	var total time.Duration
	var maxRSS int64
	for _, s := range segs {
		c, lf, err := o.command([]string{"/bin/sh", "-c", cmdFor(s)})
		if err != nil {
			return err
		}
		m, err := runMeasured(c, 0)
		if lf != nil {
			lf.Close()
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w", verb, s, err)
		}
		total += m.wall
		maxRSS = max(maxRSS, m.rssKB)
		if err := after(s); err != nil {
			return err
		}
	}
	fmt.Printf("%.3f %d\n", total.Seconds(), maxRSS)
	return nil
}

// sameContent compares two files in small pieces. Reading them whole would
// raise this process's peak RSS, and a vfork'ed child inherits that peak in
// its rusage (exec charges the old address space's high-water mark), which
// would put a floor under every RSS the loops report.
func sameContent(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	ba, bb := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		if ea == io.EOF || ea == io.ErrUnexpectedEOF {
			return eb == ea, nil
		}
		if ea != nil {
			return false, ea
		}
		if eb != nil {
			return false, eb
		}
	}
}

// cmdGetLoop calls a restore_command once per segment, in order, as recovery
// does: %f = NAME, %p = pg_wal/RECOVERYXLOG, the file consumed (compared with
// the original when -verify is given, then removed) before the next call.
// Only the calls are timed: background prefetchers get the same small gap
// between calls for every tool. Prints "SUM_OF_CALL_SECONDS MAX_RSS_KB".
func cmdGetLoop(args []string) error {
	o, segs, tmpl, verify, err := loopFlags("get-loop", args)
	if err != nil {
		return err
	}
	dest := filepath.Join(o.dir, "pg_wal", "RECOVERYXLOG")
	return timeEach(o, segs, "fetching", func(s string) string { return expand(tmpl, "pg_wal/RECOVERYXLOG", s) }, func(s string) error {
		if _, err := os.Stat(dest); err != nil {
			return fmt.Errorf("fetching %s: the command succeeded but wrote nothing: %w", s, err)
		}
		if verify != "" {
			same, err := sameContent(dest, filepath.Join(verify, s))
			if err != nil {
				return err
			}
			if !same {
				return fmt.Errorf("fetching %s: the fetched file differs from the archived one", s)
			}
		}
		return os.Remove(dest)
	})
}
