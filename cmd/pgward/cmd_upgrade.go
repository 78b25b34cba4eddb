package main

import (
	"fmt"

	"github.com/pgward/pgward/internal/config"
	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/location"
	"github.com/spf13/cobra"
)

func newUpgradeCmd(o *config.Options) *cobra.Command {
	return &cobra.Command{
		Use:     "upgrade",
		Example: `  pgward upgrade --repo /var/lib/pgward`,
		Short:   "Raise every repository to the newest format",
		Long: `Raise every --repo from repository format 1 to format 2 (packed small objects,
page deltas; docs/repository-format.md, "Format 2"). Nothing is rewritten: the repository gets a
new config object and its old one is deleted, so backups and WAL already stored
stay as they are and restore as before, and new backups use format 2. pgward
releases before format 2 cannot use an upgraded repository. A repository already
in format 2 is left alone.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			specs, err := repoSpecs(o)
			if err != nil {
				return err
			}
			lo := locationOptions(o)
			for _, s := range specs {
				st, err := location.Storage(s, lo, false)
				if err != nil {
					return err
				}
				from, to, err := repo.Upgrade(cmd.Context(), st, lo.Passphrase)
				if err != nil {
					return err
				}
				if from == to {
					fmt.Fprintf(cmd.OutOrStdout(), "%s is already format %d\n", st, to)
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "upgraded %s from format %d to %d\n", st, from, to)
			}
			return nil
		},
	}
}
