package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// defaultConfigFile is read when it exists and no --config is given.
const defaultConfigFile = "/etc/pgward/pgward.toml"

// configFile is the TOML file: top-level keys are global options, [cluster.NAME]
// tables hold per-cluster ones. Keys are the long flag names.
type configFile struct {
	path     string
	global   map[string]any
	clusters map[string]map[string]any
}

func loadConfigFile(path string, explicit bool) (*configFile, error) {
	cf := &configFile{path: path, global: map[string]any{}, clusters: map[string]map[string]any{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return cf, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading config file: %w", err)
	}
	var raw map[string]any
	if _, err := toml.Decode(string(b), &raw); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	for k, v := range raw {
		if k == "cluster" {
			if t, ok := v.(map[string]any); ok {
				for name, cv := range t {
					ct, ok := cv.(map[string]any)
					if !ok {
						return nil, fmt.Errorf("config file %s: [cluster.%s] must be a table", path, name)
					}
					cf.clusters[name] = ct
				}
				continue
			}
		}
		cf.global[k] = v
	}
	return cf, nil
}

// lookup finds a key for the cluster: its table first, then the top level.
func (cf *configFile) lookup(cluster, key string) (any, bool) {
	if t, ok := cf.clusters[cluster]; ok {
		if v, ok := t[key]; ok {
			return v, true
		}
	}
	v, ok := cf.global[key]
	return v, ok
}

// envName is the environment variable for an option: PGWARD_ + upper snake case.
func envName(flag string) string {
	return "PGWARD_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// resolveFlags fills every flag the user did not set from the environment, then
// from the config file: flags beat env beat file.
func resolveFlags(cmd *cobra.Command) error {
	flags := cmd.Flags()
	cfgPath, _ := flags.GetString("config")
	explicit := flags.Changed("config")
	if !explicit {
		if v := os.Getenv(envName("config")); v != "" {
			cfgPath, explicit = v, true
		}
	}
	if cfgPath == "" {
		cfgPath = defaultConfigFile
	}
	cf, err := loadConfigFile(cfgPath, explicit)
	if err != nil {
		return err
	}
	cluster := "main"
	for k := range cf.global {
		if k != "default-cluster" && flags.Lookup(k) == nil && !knownFileKey(k) {
			return fmt.Errorf("config file %s: unknown option %q (options are the long flag names, e.g. repo, conn, compress)", cf.path, k)
		}
	}
	if f := flags.Lookup("cluster"); f != nil {
		switch {
		case f.Changed:
			cluster = f.Value.String()
		case os.Getenv(envName("cluster")) != "":
			cluster = os.Getenv(envName("cluster"))
		default:
			// "cluster" at the top level is the table of per-cluster options,
			// so the file names its default cluster with another key.
			if v, ok := cf.global["default-cluster"]; ok {
				cluster = fmt.Sprint(v)
			}
		}
	}
	var errs []error
	flags.VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "config" || f.Name == "help" || f.Name == "cluster" {
			return
		}
		if f.Name == "passphrase" {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if err := setFlag(flags, f, v, true); err != nil {
				errs = append(errs, fmt.Errorf("environment %s: %w", envName(f.Name), err))
			}
			return
		}
		v, ok := cf.lookup(cluster, f.Name)
		if !ok {
			return
		}
		switch t := v.(type) {
		case []any:
			for _, e := range t {
				if err := setFlag(flags, f, fmt.Sprint(e), false); err != nil {
					errs = append(errs, fmt.Errorf("config file %s, key %s: %w", cf.path, f.Name, err))
				}
			}
		default:
			if err := setFlag(flags, f, fmt.Sprint(t), false); err != nil {
				errs = append(errs, fmt.Errorf("config file %s, key %s: %w", cf.path, f.Name, err))
			}
		}
	})
	if cluster != "" {
		// Only a cluster chosen by env or file counts as given: list shows
		// every cluster otherwise.
		if f := flags.Lookup("cluster"); f != nil && !f.Changed && cluster != f.DefValue {
			_ = flags.Set("cluster", cluster)
		}
	}
	return errors.Join(errs...)
}

// knownFileKey accepts options that belong to other commands, so one config
// file serves every command.
func knownFileKey(k string) bool {
	for _, c := range newRootCmd().Commands() {
		if c.Flags().Lookup(k) != nil {
			return true
		}
	}
	return false
}

// setFlag sets a flag from env or file. A list flag from the environment takes
// comma-separated values.
func setFlag(flags *pflag.FlagSet, f *pflag.Flag, v string, fromEnv bool) error {
	if sv, ok := f.Value.(pflag.SliceValue); ok && fromEnv {
		var parts []string
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		return sv.Replace(parts)
	}
	return flags.Set(f.Name, v)
}

// passphraseSource returns how to get the passphrase, or nil when none is
// configured. It never takes a passphrase from a flag value: those end up in
// shell history and ps output.
func passphraseSource(cmd *cobra.Command) func() ([]byte, error) {
	if v, ok := os.LookupEnv("PGWARD_PASSPHRASE"); ok {
		return func() ([]byte, error) { return []byte(v), nil }
	}
	if p, _ := cmd.Flags().GetString("passphrase-file"); p != "" {
		return func() ([]byte, error) { return readPassphraseFile(p) }
	}
	if c, _ := cmd.Flags().GetString("passphrase-command"); c != "" {
		return func() ([]byte, error) {
			x := exec.Command("/bin/sh", "-c", c)
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
