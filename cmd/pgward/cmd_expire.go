package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pgward/pgward/engine/expire"
	"github.com/pgward/pgward/engine/retention"
	"github.com/pgward/pgward/internal/config"
	"github.com/spf13/cobra"
)

func newExpireCmd(o *config.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "expire",
		Short: "Remove the backups and WAL a retention policy lets go, and collect the garbage",
		Long: `Apply the retention policy to --cluster in every repository. A backup is kept
when any rule keeps it:

  --keep-last N       the N newest backups
  --keep-within D     everything needed to restore to any point within D (e.g. 30d):
                      the backups in the window and the newest one before it
  --keep-daily N, --keep-weekly N, --keep-monthly N, --keep-yearly N
                      the newest backup of each of the N most recent days (ISO weeks,
                      months, years) that have a backup, in the local time zone
  pinned backups      ('pgward pin'); and the newest backup is always kept

WAL is kept from the start of the oldest backup kept by --keep-last or
--keep-within (the recovery window; without either rule, of the oldest kept
backup), plus what every kept backup needs to reach consistency; history files
are never removed. Then chunks and packs no backup needs, what killed backups
left, and leftovers of interrupted writes are deleted under an exclusive
repository lock; while backups run, expire waits up to --lock-wait for them,
then skips that sweep (the next expire does it).

The rules can live in the config file, per cluster ([cluster.NAME] keep-last = 7):
then every backup of the cluster runs them after it commits.

--dry-run prints what would go and the bytes it would free, and removes nothing.
--json prints an array with one object per repository: repository, cluster,
policy, dry_run, backups (id, stop_time, keep, reasons, pinned), expired, wal
(kept_from, removed_files, removed_bytes, first, last), stale_pins, sweep
(deleted_chunks, deleted_packs, repacked_packs, repacked_bytes,
index_objects_written, index_objects_deleted, leftovers_removed, freed_bytes,
skipped, missing_chunks), freed_bytes.`,
		Example: `  pgward expire --keep-last 7 --dry-run
  pgward expire --keep-within 14d --keep-monthly 12
  pgward expire --cluster main --keep-daily 7 --keep-weekly 5 --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cluster, err := clusterName(o)
			if err != nil {
				return err
			}
			policy := retentionPolicy(o)
			if err := policy.Validate(); err != nil {
				return err
			}
			repos, err := openRepos(ctx, o)
			if err != nil {
				return err
			}
			results, err := expire.All(ctx, repos, cluster, policy, o.DryRun, slog.Default())
			if o.JSON {
				if jerr := printJSON(cmd.OutOrStdout(), results); jerr != nil {
					return jerr
				}
			} else {
				for _, res := range results {
					printExpire(cmd.OutOrStdout(), res)
				}
			}
			return err
		},
	}
	return cmd
}

// retentionPolicy is the policy the options give.
func retentionPolicy(o *config.Options) retention.Policy { return retention.FromConfig(o.Keep) }

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printExpire writes one repository's result for a person.
func printExpire(w io.Writer, res *expire.Result) {
	would := ""
	if res.DryRun {
		would = "would be "
	}
	fmt.Fprintf(w, "%s, cluster %s (%s):\n", res.Repository, res.Cluster, res.Policy)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, b := range res.Backups {
		verdict := "expire"
		if b.Keep {
			verdict = "keep"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", verdict, b.ID, b.StopTime.UTC().Format(time.DateTime+" UTC"), strings.Join(b.Reasons, ", "))
	}
	tw.Flush()
	fmt.Fprintf(w, "  backups %sremoved: %d\n", would, len(res.Expired))
	if wl := res.WAL; wl.RemovedFiles > 0 {
		span := ""
		if wl.First != "" {
			span = fmt.Sprintf(", segments %s to %s", wl.First, wl.Last)
		}
		fmt.Fprintf(w, "  WAL %sremoved: %d files, %s%s\n", would, wl.RemovedFiles, humanBytes(wl.RemovedBytes), span)
	}
	if res.WAL.KeptFrom != "" {
		fmt.Fprintf(w, "  WAL kept from %s on\n", res.WAL.KeptFrom)
	}
	if len(res.StalePins) > 0 {
		fmt.Fprintf(w, "  pins of missing backups %sremoved: %s\n", would, strings.Join(res.StalePins, ", "))
	}
	s := res.Sweep
	switch {
	case s.Skipped != "":
		fmt.Fprintf(w, "  garbage collection skipped (the next expire does it): %s\n", s.Skipped)
	default:
		fmt.Fprintf(w, "  garbage %scollected: %d chunks, %d packs deleted (%d repacked, %s copied), %d leftovers of interrupted writes\n",
			would, s.DeletedChunks, s.DeletedPacks, s.RepackedPacks, humanBytes(s.RepackedBytes), s.LeftoversRemoved)
	}
	if s.MissingChunks > 0 {
		fmt.Fprintf(w, "  WARNING: kept backups need %d chunks that are stored nowhere; run 'pgward verify --all'\n", s.MissingChunks)
	}
	fmt.Fprintf(w, "  %sfreed: %s\n", would, humanBytes(res.FreedBytes))
}
