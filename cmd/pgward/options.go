package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/pgward/pgward/internal/config"
	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/location"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// flagValue is a flag defined from a registry key. It keeps the texts as given,
// unparsed: config.Resolve parses them with the same code as the environment's
// and the file's, so a value means the same and is refused in the same words
// wherever it comes from.
type flagValue struct {
	key   *config.Key
	texts []string
}

func (v *flagValue) Set(s string) error {
	if v.key.Kind == config.List {
		v.texts = append(v.texts, s)
	} else {
		v.texts = []string{s}
	}
	return nil
}

func (v *flagValue) String() string {
	if v.texts == nil {
		return v.key.Default
	}
	return strings.Join(v.texts, ",")
}

// Type is what help shows as the flag's argument ("" for a bool).
func (v *flagValue) Type() string {
	switch v.key.Kind {
	case config.List:
		if v.key.SplitCommas {
			return "strings"
		}
		return "stringArray"
	case config.Passphrase:
		return "string"
	}
	return v.key.Kind.String()
}

// defineFlags defines every registry key's flag: on the root, persistent, for
// the keys every command takes; on each command that takes it otherwise.
func defineFlags(root *cobra.Command) {
	for _, k := range config.Keys() {
		if k.Flag() == "" {
			continue
		}
		if k.Commands == nil {
			addFlag(root.PersistentFlags(), k)
			continue
		}
		for _, name := range k.Commands {
			c, _, err := root.Find(strings.Fields(name))
			if err != nil || c == root || commandName(c) != name {
				panic("config key " + k.Name + " names an unknown command " + name)
			}
			addFlag(c.Flags(), k)
		}
	}
}

func addFlag(fs *pflag.FlagSet, k *config.Key) {
	help := k.Help
	if k.DocDefault != "" && k.Default == "" {
		help += " (default: " + k.DocDefault + ")"
	}
	f := fs.VarPF(&flagValue{key: k}, k.Flag(), k.Short, help)
	if k.Kind == config.Bool {
		f.NoOptDefVal = "true"
	}
	f.Hidden = k.Hidden
}

// resolveOptions layers the flags given to cmd over the environment, the config
// file and the defaults.
func resolveOptions(cmd *cobra.Command, env func(string) (string, bool)) (*config.Options, error) {
	given := map[string][]string{}
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if v, ok := f.Value.(*flagValue); ok {
			given[v.key.Name] = v.texts
		}
	})
	return config.Resolve(config.Input{Command: commandName(cmd), Flags: given, Env: env})
}

// commandName is the command as the registry names it: its path below the
// root ("backup", "key add").
func commandName(cmd *cobra.Command) string {
	return strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
}

func setupLogging(o *config.Options) error {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.LogLevel)); err != nil {
		return err // the registry refuses it first, naming where it came from
	}
	h := &slog.HandlerOptions{Level: lvl}
	var w io.Writer = os.Stderr
	if stderrIsTerminal() {
		w = clearLine{os.Stderr} // a log line replaces a progress bar drawn there
	}
	if o.LogFormat == "json" {
		// Durations in seconds (a float), not Go's nanoseconds: what a log pipeline expects.
		h.ReplaceAttr = func(_ []string, a slog.Attr) slog.Attr {
			if a.Value.Kind() == slog.KindDuration {
				return slog.Float64(a.Key, a.Value.Duration().Seconds())
			}
			return a
		}
		slog.SetDefault(slog.New(slog.NewJSONHandler(w, h)))
	} else {
		slog.SetDefault(slog.New(slog.NewTextHandler(w, h)))
	}
	return nil
}

// clearLine erases the terminal's current line before each log record, so that a record
// does not run on after a progress bar; the bar is drawn again on its next tick.
type clearLine struct{ w io.Writer }

func (c clearLine) Write(p []byte) (int, error) {
	if _, err := io.WriteString(c.w, "\r\x1b[K"); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// locationOptions are the options every repository location is opened with.
func locationOptions(o *config.Options) location.Options { return location.FromConfig(o) }

func repoSpecs(o *config.Options) ([]string, error) { return location.Specs(o) }

// openRepos opens every configured repository.
func openRepos(ctx context.Context, o *config.Options) ([]*repo.Repo, error) {
	return location.OpenConfigured(ctx, o)
}

// openReadRepos opens the configured repositories for a command that only reads (restore,
// archive-get): one that cannot be opened is skipped with a warning while another opens.
func openReadRepos(ctx context.Context, o *config.Options) ([]*repo.Repo, error) {
	return location.OpenAvailableConfigured(ctx, o)
}

func clusterName(o *config.Options) (string, error) {
	return o.Cluster, repo.ValidClusterName(o.Cluster)
}
