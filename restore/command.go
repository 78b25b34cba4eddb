package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// CommandCheck is a trial run of the restore_command a restore writes, made before
// anything is written: PostgreSQL ends recovery quietly when restore_command cannot
// deliver a file, so a command that cannot open the repository from the server's
// point of view (a passphrase only in this shell's environment, a passphrase file the
// server's user cannot read, a binary it cannot reach) would promote the restored
// server at the backup's end with every archived transaction lost.
type CommandCheck struct {
	// Command is the restore_command, with %f and %p.
	Command string
	// Probe is a WAL file name to ask for; Archived says whether it is archived
	// (then the command must deliver it) or not (then it must exit 1, which it
	// does only after opening the repository).
	Probe    string
	Archived bool
	// UID and GID run the command as the server's user; -1 runs it as this
	// process's user.
	UID, GID int
	// Dir is where it runs (PostgreSQL runs it in the data directory; that
	// does not exist yet, so its parent).
	Dir string
}

// Run runs the check. The command gets this process's environment without the
// PGWARD_ variables (the server does not have them) and, as another user, that
// user's HOME; it is given the time an S3 retry budget needs.
func (c CommandCheck) Run(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	// Next to the data directory, which the server's user can reach; the
	// system's temporary directory otherwise.
	tmp, err := os.MkdirTemp(c.Dir, ".pgward-restore-command-")
	if err != nil {
		if tmp, err = os.MkdirTemp("", "pgward-restore-command-"); err != nil {
			return err
		}
	}
	defer os.RemoveAll(tmp)
	if c.UID >= 0 {
		if err := os.Chown(tmp, c.UID, c.GID); err != nil {
			return fmt.Errorf("preparing the restore_command check: %w", err)
		}
	}
	dest := filepath.Join(tmp, "probe")
	line := substitute(c.Command, c.Probe, dest)
	x := exec.CommandContext(ctx, "/bin/sh", "-c", line)
	x.Dir = c.Dir
	x.Env = c.environment()
	if c.UID >= 0 && c.UID != os.Geteuid() {
		x.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(c.UID), Gid: uint32(c.GID), Groups: []uint32{}}}
	}
	var stderr bytes.Buffer
	x.Stderr = &stderr
	err = x.Run()
	who := c.who()
	var ee *exec.ExitError
	switch {
	case err == nil && c.Archived:
		if fi, serr := os.Stat(dest); serr != nil || fi.Size() == 0 {
			return fmt.Errorf("the restore_command exited 0 for %s but wrote nothing to %%p", c.Probe)
		}
		return nil
	case err == nil:
		return fmt.Errorf("the restore_command delivered %s, which is not archived: it does not read this repository and cluster", c.Probe)
	case errors.As(err, &ee) && ee.ExitCode() == 1 && !c.Archived:
		return nil // opened the repository and found nothing: as expected
	case errors.As(err, &ee) && ee.ExitCode() == 1:
		return fmt.Errorf("the restore_command, run %s, says %s is not archived, but it is: it does not read this repository and cluster", who, c.Probe)
	}
	msg := strings.TrimSpace(stderr.String())
	if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
		msg = strings.TrimSpace(msg[i+1:])
	}
	if msg == "" {
		msg = err.Error()
	}
	return fmt.Errorf("the restore_command fails when PostgreSQL runs it (%s, without this shell's PGWARD_* variables): %s", who, msg)
}

func (c CommandCheck) who() string {
	if c.UID < 0 || c.UID == os.Geteuid() {
		return "as " + currentUserName()
	}
	if u, err := user.LookupId(strconv.Itoa(c.UID)); err == nil {
		return "as user " + u.Username
	}
	return fmt.Sprintf("as uid %d", c.UID)
}

func currentUserName() string {
	if u, err := user.Current(); err == nil {
		return "user " + u.Username
	}
	return fmt.Sprintf("uid %d", os.Geteuid())
}

func (c CommandCheck) environment() []string {
	var env []string
	for _, e := range os.Environ() {
		if strings.HasPrefix(e, "PGWARD_") {
			continue
		}
		if c.UID >= 0 && c.UID != os.Geteuid() && (strings.HasPrefix(e, "HOME=") || strings.HasPrefix(e, "USER=") || strings.HasPrefix(e, "LOGNAME=")) {
			continue
		}
		env = append(env, e)
	}
	if c.UID >= 0 && c.UID != os.Geteuid() {
		if u, err := user.LookupId(strconv.Itoa(c.UID)); err == nil {
			env = append(env, "HOME="+u.HomeDir, "USER="+u.Username, "LOGNAME="+u.Username)
		}
	}
	return env
}

// substitute replaces %f, %p and %% as PostgreSQL does (%r with a segment name
// that archive-get ignores).
func substitute(cmd, file, path string) string {
	var b strings.Builder
	for i := 0; i < len(cmd); i++ {
		if cmd[i] != '%' || i+1 == len(cmd) {
			b.WriteByte(cmd[i])
			continue
		}
		i++
		switch cmd[i] {
		case 'f':
			b.WriteString(file)
		case 'p':
			b.WriteString(path)
		case 'r':
			b.WriteString("000000010000000000000001")
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(cmd[i])
		}
	}
	return b.String()
}
