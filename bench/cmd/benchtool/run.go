package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// runOpts are the flags every command-running subcommand shares.
type runOpts struct {
	user string
	dir  string
	log  string
}

func (o *runOpts) register(fs *flag.FlagSet) {
	fs.StringVar(&o.user, "user", "", "run as this OS user (needs root)")
	fs.StringVar(&o.dir, "dir", "", "working directory of the command")
	fs.StringVar(&o.log, "log", "", "append the command's stdout and stderr to this file")
}

// command builds an exec.Cmd for argv with the options applied. The caller
// closes the returned log file.
func (o *runOpts) command(argv []string) (*exec.Cmd, *os.File, error) {
	if len(argv) == 0 {
		return nil, nil, errors.New("no command given (put it after --)")
	}
	c := exec.Command(argv[0], argv[1:]...)
	c.Dir = o.dir
	c.Env = os.Environ()
	if o.user != "" {
		u, err := user.Lookup(o.user)
		if err != nil {
			return nil, nil, err
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		// Dropping privileges here rather than through runuser keeps PAM and an
		// extra process out of every measured call.
		if os.Geteuid() == 0 && uid != 0 {
			c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
		}
		c.Env = append(c.Env, "HOME="+u.HomeDir, "USER="+u.Username, "LOGNAME="+u.Username)
	}
	var lf *os.File
	if o.log != "" {
		f, err := os.OpenFile(o.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, nil, err
		}
		lf = f
		c.Stdout, c.Stderr = f, f
	} else {
		c.Stdout, c.Stderr = os.Stderr, os.Stderr
	}
	return c, lf, nil
}

// measured is one finished command.
type measured struct {
	wall  time.Duration
	rssKB int64
}

// runMeasured runs c to completion, sampling the RSS of its process tree every
// sample (0: rusage only) while it runs.
func runMeasured(c *exec.Cmd, sample time.Duration) (measured, error) {
	start := time.Now()
	if err := c.Start(); err != nil {
		return measured{}, err
	}
	var peak atomic.Int64
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		if sample <= 0 {
			return
		}
		t := time.NewTicker(sample)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if kb := treeRSSKB(c.Process.Pid); kb > peak.Load() {
					peak.Store(kb)
				}
			}
		}
	}()
	err := c.Wait()
	wall := time.Since(start)
	close(done)
	<-sampled
	m := measured{wall: wall, rssKB: peak.Load()}
	if ru, ok := c.ProcessState.SysUsage().(*syscall.Rusage); ok && ru.Maxrss > m.rssKB {
		m.rssKB = ru.Maxrss
	}
	if err != nil {
		return m, fmt.Errorf("%s: %w", strings.Join(c.Args, " "), err)
	}
	return m, nil
}

// treeRSSKB sums the resident set of root and its descendants. Descendants
// have larger PIDs than root (short of PID wrap-around, which only makes
// the sample miss a process), so only those /proc entries are read: the scan
// stays cheap enough to run every few tens of milliseconds on a busy box.
func treeRSSKB(root int) int64 {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	parent := map[int]int{}
	rss := map[int]int64{}
	page := int64(os.Getpagesize())
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid < root {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command name, which may itself hold spaces and parens.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 22 {
			continue
		}
		pp, _ := strconv.Atoi(f[1])
		pages, _ := strconv.ParseInt(f[21], 10, 64)
		parent[pid] = pp
		rss[pid] = pages * page / 1024
	}
	var sum int64
	for pid, kb := range rss {
		for p := pid; ; {
			if p == root {
				sum += kb
				break
			}
			pp, ok := parent[p]
			if !ok {
				break
			}
			p = pp
		}
	}
	return sum
}

// splitArgs separates flags from the command after "--".
func splitArgs(args []string) (flags, argv []string) {
	for i, a := range args {
		if a == "--" {
			return args[:i], args[i+1:]
		}
	}
	return args, nil
}

// cmdRun runs one command and prints "WALL_SECONDS PEAK_RSS_KB".
func cmdRun(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	var o runOpts
	o.register(fs)
	sample := fs.Duration("sample", 50*time.Millisecond, "RSS sampling interval of the process tree (0: rusage only)")
	fl, argv := splitArgs(args)
	fs.Parse(fl)
	c, lf, err := o.command(argv)
	if err != nil {
		return err
	}
	if lf != nil {
		defer lf.Close()
		fmt.Fprintf(lf, "\n### %s %s\n", time.Now().Format(time.RFC3339), strings.Join(argv, " "))
	}
	m, err := runMeasured(c, *sample)
	if err != nil {
		if o.log != "" {
			return fmt.Errorf("%w (output in %s)", err, o.log)
		}
		return err
	}
	fmt.Printf("%.3f %d\n", m.wall.Seconds(), m.rssKB)
	return nil
}
