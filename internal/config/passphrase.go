package config

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// PassphraseSource is where an encrypted repository's passphrase comes from.
// Its keys are one setting: the first layer (flag, environment, [cluster.NAME],
// top level) that names any of them wins as a whole, so --passphrase-file
// beats PGWARD_PASSPHRASE, which beats a passphrase-file in the file.
//
// Value is PGWARD_PASSPHRASE, set only when the environment is that layer.
// File or Command is the strongest file or command named anywhere, even below
// a winning Value: a restore_command runs without this environment and needs
// it. Within one layer Value comes first, then File, then Command.
type PassphraseSource struct {
	Value, File, Command string
}

// String never shows the passphrase, so that printing Options cannot leak it.
func (p PassphraseSource) String() string {
	switch {
	case p.Value != "":
		return "PGWARD_PASSPHRASE"
	case p.File != "":
		return "file " + p.File
	case p.Command != "":
		return "command " + p.Command
	}
	return "none"
}

// Named reports whether a file or a command was configured: an unencrypted
// repository is then worth a warning (PGWARD_PASSPHRASE may be set for every
// repository of a shell, so it is not).
func (p PassphraseSource) Named() bool { return p.File != "" || p.Command != "" }

// Func returns how to get the passphrase, or nil when no source is configured.
func (p PassphraseSource) Func() func() ([]byte, error) {
	switch {
	case p.Value != "":
		return func() ([]byte, error) { return []byte(p.Value), nil }
	case p.File != "":
		return func() ([]byte, error) { return readPassphraseFile(p.File) }
	case p.Command != "":
		return func() ([]byte, error) {
			x := exec.Command("/bin/sh", "-c", p.Command)
			x.Stderr = os.Stderr
			out, err := x.Output()
			if err != nil {
				return nil, fmt.Errorf("passphrase command failed: %w", err)
			}
			return []byte(strings.TrimRight(string(out), "\r\n")), nil
		}
	}
	return nil
}

// readPassphraseFile reads a passphrase file, refusing one that group or others
// may access: like ssh with a private key and libpq with .pgpass, a secret that
// others can read is treated as a mistake, not used.
func readPassphraseFile(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("passphrase file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("passphrase file: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("passphrase file %s can be read by group or others (mode %04o); make it private with 'chmod 600 %s'", p, perm, p)
	}
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("passphrase file %s: %w", p, err)
	}
	return []byte(strings.TrimRight(string(b), "\r\n")), nil
}

// NewPassphraseSource is where key add and key passwd take the new passphrase
// from: PGWARD_NEW_PASSPHRASE (Value) or a file (--new-passphrase-file or
// PGWARD_NEW_PASSPHRASE_FILE). As for the passphrase, the stronger layer wins
// (the flag over the environment) and within the environment the value comes
// before the file.
type NewPassphraseSource struct {
	Value, File string
}

// String never shows the passphrase.
func (p NewPassphraseSource) String() string {
	switch {
	case p.Value != "":
		return "PGWARD_NEW_PASSPHRASE"
	case p.File != "":
		return "file " + p.File
	}
	return "none"
}

// NewPassphraseFunc returns how to get the new passphrase, or nil when none is
// configured (the CLI then asks on a terminal).
func (o *Options) NewPassphraseFunc() func() ([]byte, error) {
	p := o.NewPassphrase
	switch {
	case p.File != "" && o.Origin("new-passphrase-file") == FromFlag, p.Value == "" && p.File != "":
		return func() ([]byte, error) { return readPassphraseFile(p.File) }
	case p.Value != "":
		return func() ([]byte, error) { return []byte(p.Value), nil }
	}
	return nil
}
