package drill

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// osUser is who runs the drill's server: the postgres OS user when the drill runs as root
// (PostgreSQL refuses to run as root), else the drill's own user.
type osUser struct {
	name     string
	uid, gid int // -1: no change of owner
}

func serverUser() (osUser, error) {
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			return osUser{}, err
		}
		return osUser{name: u.Username, uid: -1, gid: -1}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return osUser{}, fmt.Errorf("a drill run as root starts its server as the postgres OS user, which does not exist: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return osUser{name: "postgres", uid: uid, gid: gid}, nil
}

func (u osUser) chown(path string) error {
	if u.uid < 0 {
		return nil
	}
	return os.Chown(path, u.uid, u.gid)
}

// server is the drill's throwaway PostgreSQL.
type server struct {
	cmd    *exec.Cmd
	socket string
	port   int
	user   osUser
	log    *slog.Logger
	output *syncBuffer
	done   chan struct{}
	err    error // the process's exit, once done is closed

	role string // the database role the drill connects as
	conn *pgx.Conn
}

// start starts postgres on the restored data directory: on a free loopback port and a
// socket in the scratch directory, with its own pg_hba (trust, local only), without
// archiving, and with nothing of the source's that could reach out (replication, sync
// standbys) or fail on another host (a logging collector, SSL files).
func start(ctx context.Context, bin Binaries, pgdata, scratch string, u osUser, log *slog.Logger) (*server, error) {
	sock := filepath.Join(scratch, "sock")
	if err := os.Mkdir(sock, 0o700); err != nil {
		return nil, err
	}
	if err := u.chown(sock); err != nil {
		return nil, err
	}
	hba := filepath.Join(scratch, "pg_hba.conf")
	if err := os.WriteFile(hba, []byte("local all all trust\nhost all all 127.0.0.1/32 trust\n"), 0o600); err != nil {
		return nil, err
	}
	if err := u.chown(hba); err != nil {
		return nil, err
	}
	// A Debian-style cluster keeps postgresql.conf outside the data directory, so the
	// backup has none; the server needs one to start.
	if conf := filepath.Join(pgdata, "postgresql.conf"); !exists(conf) {
		if err := os.WriteFile(conf, nil, 0o600); err != nil {
			return nil, err
		}
		if err := u.chown(conf); err != nil {
			return nil, err
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	args := []string{"-D", pgdata, "-c", "port=" + strconv.Itoa(port), "-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=" + sock, "-c", "hba_file=" + hba, "-c", "archive_mode=off",
		"-c", "logging_collector=off", "-c", "log_destination=stderr", "-c", "ssl=off", "-c", "hot_standby=on",
		"-c", "synchronous_standby_names=", "-c", "primary_conninfo=", "-c", "primary_slot_name=",
		"-c", "external_pid_file=", "-c", "cluster_name=pgward-drill", "-c", "huge_pages=try"}
	cmd := exec.Command(filepath.Join(bin.Dir, "postgres"), args...)
	cmd.Dir = scratch
	if u.uid >= 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.uid), Gid: uint32(u.gid), Groups: []uint32{}}}
	}
	s := &server{cmd: cmd, socket: sock, port: port, user: u, log: log, output: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = s.output, s.output
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	go func() {
		s.err = cmd.Wait()
		close(s.done)
	}()
	return s, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// failed describes the server's end, with the end of its log.
func (s *server) failed(what string) error {
	return fmt.Errorf("%s; the server's log ends with:\n%s", what, tailLines(s.output.String(), 15))
}

// connect opens a connection to db, trying the role "postgres" and then the OS user's
// name: the bootstrap superuser is one of them on every installation we know.
func (s *server) connect(ctx context.Context, db string) (*pgx.Conn, error) {
	roles := []string{s.role}
	if s.role == "" {
		roles = []string{"postgres", s.user.name}
	}
	var last error
	for _, role := range roles {
		cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d user=%s dbname=%s connect_timeout=5", s.socket, s.port, role, db))
		if err != nil {
			return nil, err
		}
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			s.role = role
			return c, nil
		}
		last = err
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "28000" {
			break // not "role does not exist": the next role would fail the same way
		}
	}
	return nil, last
}

// waitPromoted waits until recovery has ended and the server runs on its own timeline; it
// returns when that was first seen and the WAL position then.
func (s *server) waitPromoted(ctx context.Context) (time.Time, uint64, error) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.done:
			return time.Time{}, 0, s.failed("the server stopped during recovery (a corrupt backup, or WAL the restore_command could not deliver)")
		case <-ctx.Done():
			return time.Time{}, 0, s.failed(fmt.Sprintf("recovery did not end in time: %v", ctx.Err()))
		case <-tick.C:
		}
		if s.conn == nil {
			c, err := s.connect(ctx, "postgres")
			if err != nil {
				continue // starting up, or not yet consistent
			}
			s.conn = c
		}
		var inRecovery bool
		if err := s.conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil {
			s.conn.Close(ctx)
			s.conn = nil
			continue
		}
		if inRecovery {
			continue
		}
		at := time.Now()
		var lsn string
		if err := s.conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
			return at, 0, fmt.Errorf("reading the WAL position after promotion: %w", err)
		}
		n, err := parseLSN(lsn)
		return at, n, err
	}
}

// writeTransaction commits a transaction that writes WAL: the server accepts work.
func (s *server) writeTransaction(ctx context.Context) (time.Time, error) {
	var xid string
	if err := s.conn.QueryRow(ctx, "SELECT pg_current_xact_id()::text").Scan(&xid); err != nil {
		return time.Time{}, s.failed(fmt.Sprintf("the promoted server refused a read-write transaction: %v", err))
	}
	return time.Now(), nil
}

// stop shuts the server down (fast, then immediate) and waits for it.
func (s *server) stop() {
	if s.conn != nil {
		s.conn.Close(context.Background())
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		_ = s.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	}
}

// syncBuffer collects the server's output while the drill reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.b.Len() > 1<<20 {
		b.b.Reset() // keep the recent end only
	}
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
