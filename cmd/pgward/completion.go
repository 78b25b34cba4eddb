package main

import (
	"context"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/pgward/pgward/internal/config"
	"github.com/spf13/cobra"
)

// registerCompletions makes shell completion (pgward completion bash|zsh|fish) offer the
// values of options with a fixed set, and backup IDs and cluster names read from the
// repositories the command line (or the environment, or the config file) names.
func registerCompletions(root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, k := range config.Keys() {
			if k.Flag() == "" || !k.TakenBy(commandName(c)) || c.Flags().Lookup(k.Flag()) == nil {
				continue
			}
			switch {
			case len(k.Values) > 0:
				values := k.Values
				_ = c.RegisterFlagCompletionFunc(k.Flag(), func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
					return values, cobra.ShellCompDirectiveNoFileComp
				})
			case k.Name == "backup":
				_ = c.RegisterFlagCompletionFunc(k.Flag(), completeBackups)
			case k.Name == "cluster":
				_ = c.RegisterFlagCompletionFunc(k.Flag(), completeClusters)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	for _, name := range []string{"pin", "unpin"} {
		if c, _, err := root.Find([]string{name}); err == nil {
			c.ValidArgsFunction = completeBackups
		}
	}
}

// completionContext bounds what completion may spend on a repository.
func completionContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 5*time.Second)
}

func completeBackups(cmd *cobra.Command, _ []string, prefix string) ([]string, cobra.ShellCompDirective) {
	o, err := resolveOptions(cmd, os.LookupEnv)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := completionContext()
	defer cancel()
	repos, err := openRepos(ctx, o)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ids := []string{"latest"}
	for _, r := range repos {
		if more, err := r.BackupIDs(ctx, o.Cluster); err == nil {
			ids = append(ids, more...)
		}
	}
	slices.Sort(ids)
	return matching(slices.Compact(ids), prefix), cobra.ShellCompDirectiveNoFileComp
}

func completeClusters(cmd *cobra.Command, _ []string, prefix string) ([]string, cobra.ShellCompDirective) {
	o, err := resolveOptions(cmd, os.LookupEnv)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := completionContext()
	defer cancel()
	repos, err := openRepos(ctx, o)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, r := range repos {
		if more, err := r.Clusters(ctx); err == nil {
			names = append(names, more...)
		}
	}
	slices.Sort(names)
	return matching(slices.Compact(names), prefix), cobra.ShellCompDirectiveNoFileComp
}

func matching(all []string, prefix string) []string {
	var out []string
	for _, s := range all {
		if strings.HasPrefix(s, prefix) {
			out = append(out, s)
		}
	}
	return out
}
