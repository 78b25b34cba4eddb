package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// cmdStartWait starts a restored data directory with pg_ctl (not waiting in
// pg_ctl, whose timeout knows nothing about recovery) and polls until the
// server has left recovery. Prints the seconds from the start command to
// promotion. The server is left running; the script stops it.
func cmdStartWait(args []string) error {
	fs := flag.NewFlagSet("start-wait", flag.ExitOnError)
	var o runOpts
	o.register(fs)
	pgbin := fs.String("pgbin", "/usr/lib/postgresql/15/bin", "PostgreSQL binaries")
	pgdata := fs.String("pgdata", "", "data directory")
	port := fs.Int("port", 0, "port")
	sock := fs.String("sock", "", "unix socket directory")
	opts := fs.String("o", "", "more server options (pg_ctl -o)")
	timeout := fs.Duration("timeout", time.Hour, "give up after")
	fs.Parse(args)
	if *pgdata == "" || *port == 0 || *sock == "" {
		return errors.New("-pgdata, -port and -sock are required")
	}
	srvOpts := fmt.Sprintf("-p %d -k %s -c listen_addresses='' %s", *port, *sock, *opts)
	argv := []string{filepath.Join(*pgbin, "pg_ctl"), "-D", *pgdata, "-l", filepath.Join(filepath.Dir(*pgdata), filepath.Base(*pgdata)+".log"), "-W", "-o", srvOpts, "start"}
	c, lf, err := o.command(argv)
	if err != nil {
		return err
	}
	if lf != nil {
		defer lf.Close()
	}
	start := time.Now()
	if _, err := runMeasured(c, 0); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	conn := fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres connect_timeout=5", *sock, *port)
	var last error
	for {
		inRecovery, err := inRecovery(ctx, conn)
		if err == nil && !inRecovery {
			break
		}
		last = err
		if err == nil {
			last = errors.New("still in recovery")
		}
		// postmaster.pid appears a moment after pg_ctl returns; only a pid that
		// was there and is gone means the server died (e.g. a target not reached).
		if time.Since(start) > 5*time.Second && !postmasterAlive(*pgdata) {
			return fmt.Errorf("the server in %s exited before leaving recovery (last: %v); see %s.log", *pgdata, last, *pgdata)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("still not promoted after %s: %v", *timeout, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
	fmt.Printf("%.3f\n", time.Since(start).Seconds())
	return nil
}

func inRecovery(ctx context.Context, conn string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, conn)
	if err != nil {
		return false, err
	}
	defer c.Close(context.Background())
	var r bool
	err = c.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&r)
	return r, err
}

func postmasterAlive(pgdata string) bool {
	b, err := os.ReadFile(filepath.Join(pgdata, "postmaster.pid"))
	if err != nil {
		return false
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	return err == nil && pid > 0 && syscall.Kill(pid, 0) == nil
}
