package main

import (
	"fmt"

	"github.com/pgward/pgward/internal/config"
	"github.com/pgward/pgward/repo"
	"github.com/spf13/cobra"
)

func newPinCmd(o *config.Options) *cobra.Command {
	return &cobra.Command{
		Use:   "pin BACKUP-ID",
		Short: "Keep a backup whatever the retention policy says",
		Long: `Pin a committed backup of --cluster in every repository that has it: expire keeps
it under every policy until 'pgward unpin'. --note says why (shown by info).
Pinning a pinned backup again replaces its note.`,
		Example: `  pgward pin 20261201T010000Z --note "before the 17 upgrade"`,
		Args:    exactArgs("BACKUP-ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return eachRepoWithBackup(cmd, o, args[0], func(r *repo.Repo, cluster, id string) error {
				p, err := r.PinBackup(cmd.Context(), cluster, id, o.Note)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "backup %s of cluster %s pinned in %s\n", p.Backup, cluster, r)
				return nil
			})
		},
	}
}

func newUnpinCmd(o *config.Options) *cobra.Command {
	return &cobra.Command{
		Use:     "unpin BACKUP-ID",
		Example: `  pgward unpin 20261201T010000Z`,
		Short:   "Let the retention policy decide about a pinned backup again",
		Args:    exactArgs("BACKUP-ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return eachRepoWithBackup(cmd, o, args[0], func(r *repo.Repo, cluster, id string) error {
				found, err := r.UnpinBackup(cmd.Context(), cluster, id)
				if err != nil {
					return err
				}
				if found {
					fmt.Fprintf(cmd.OutOrStdout(), "backup %s of cluster %s unpinned in %s\n", id, cluster, r)
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "backup %s of cluster %s was not pinned in %s\n", id, cluster, r)
				}
				return nil
			})
		},
	}
}

// eachRepoWithBackup calls fn for every repository that holds the backup (id may be
// "latest": each repository's newest), and fails with one sentence when none does.
func eachRepoWithBackup(cmd *cobra.Command, o *config.Options, id string, fn func(r *repo.Repo, cluster, id string) error) error {
	ctx := cmd.Context()
	cluster, err := clusterName(o)
	if err != nil {
		return err
	}
	repos, err := openRepos(ctx, o)
	if err != nil {
		return err
	}
	found := false
	for _, r := range repos {
		m, err := r.Manifest(ctx, cluster, id)
		if err != nil {
			continue
		}
		found = true
		if err := fn(r, cluster, m.ID); err != nil {
			return err
		}
	}
	if !found {
		return fmt.Errorf("backup %q of cluster %q is in no repository ('pgward list' shows the backups)", id, cluster)
	}
	return nil
}
