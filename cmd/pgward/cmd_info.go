package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/pgward/pgward/engine/info"
	"github.com/pgward/pgward/internal/config"
	"github.com/spf13/cobra"
)

func newInfoCmd(o *config.Options) *cobra.Command {
	return &cobra.Command{
		Use:   "info",
		Short: "Describe the repositories: backups and their sizes, pins, recoverable windows, encryption, the last verify",
		Long: `Describe each repository: its format, encryption and chunk size; what the content store
holds and how much of it no backup needs (expire collects that); the last verify run and
its result; and per cluster (every cluster, or --cluster when given explicitly) the
backups with their logical size, what each added when it was taken, what it needs (every
object, shared ones in full), what only it needs (what expiring it alone would free), its
dedup ratio, pins and their notes, the cluster's dedup ratio, its WAL, and the windows
recovery can reach per timeline with the gaps in them (as 'pgward list' shows them).

--json prints an array with one object per repository: repository, format, encryption,
chunk_size, content_bytes, content_objects, unreferenced_bytes, last_verify (null, or time,
duration_seconds, ok, scope, mode, objects_read, bytes_read, problem_count, problems),
clusters (the keys of 'list --json' clusters: repo, cluster, system_identifier, pg_major,
wal_segment_size, timelines, windows, damaged; and backups (the keys of 'list --json'
backups: id, cluster, repo, start_time, stop_time, start_lsn, stop_lsn, timeline,
pg_version, system_identifier, db_bytes, stored_bytes, compress, label; and
referenced_bytes, unique_bytes, dedup_ratio, pinned, pin_note), db_bytes,
referenced_bytes, unique_bytes, dedup_ratio, wal_files, wal_bytes, error).`,
		Example: `  pgward info
  pgward info --cluster main --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cluster := ""
			if listOneCluster(o) {
				var err error
				if cluster, err = clusterName(o); err != nil {
					return err
				}
			}
			repos, err := openRepos(ctx, o)
			if err != nil {
				return err
			}
			reports := []*info.Report{}
			for _, r := range repos {
				rep, err := info.Gather(ctx, r, cluster)
				if err != nil {
					return fmt.Errorf("info of %s: %w", r, err)
				}
				reports = append(reports, rep)
			}
			if o.JSON {
				return printJSON(cmd.OutOrStdout(), reports)
			}
			for _, rep := range reports {
				printInfo(cmd.OutOrStdout(), rep)
			}
			return nil
		},
	}
}

// printInfo writes one repository's report for a person.
func printInfo(w io.Writer, rep *info.Report) {
	fmt.Fprintf(w, "%s: format %d, encryption %s, chunks of %s\n", rep.Repository, rep.Format, rep.Encryption, humanBytes(int64(rep.ChunkSize)))
	fmt.Fprintf(w, "  content: %s in %d objects, %s of it needed by no backup", humanBytes(rep.ContentBytes), rep.ContentObjects, humanBytes(rep.UnreferencedBytes))
	if rep.UnreferencedBytes > 0 {
		fmt.Fprint(w, " ('pgward expire' collects it)")
	}
	fmt.Fprintln(w)
	if v := rep.LastVerify; v == nil {
		fmt.Fprintln(w, "  last verify: never ('pgward verify')")
	} else {
		verdict := "OK"
		if !v.OK {
			verdict = fmt.Sprintf("%d PROBLEM(S), e.g. %s %s", v.ProblemCount, v.Problems[0].Kind, v.Problems[0].Object)
		}
		fmt.Fprintf(w, "  last verify: %s (%s ago), %s, %s: %s; %d objects read (%s)\n", localTime(v.Time),
			time.Since(v.Time).Round(time.Minute), v.Mode, v.Scope, verdict, v.ObjectsRead, humanBytes(v.BytesRead))
	}
	for _, c := range rep.Clusters {
		fmt.Fprintf(w, "\ncluster %s", c.Cluster)
		if c.Error != "" {
			fmt.Fprintf(w, ": cannot be described: %s\n", c.Error)
			continue
		}
		fmt.Fprintf(w, " (system %s, PostgreSQL %d): %d backups, %s logical, %s stored, dedup %.1fx; WAL %d files, %s\n",
			c.SystemIdentifier, c.PGMajor, len(c.Backups), humanBytes(c.DBBytes), humanBytes(c.ReferencedBytes), c.DedupRatio, c.WALFiles, humanBytes(c.WALBytes))
		if len(c.Backups) > 0 {
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "  ID\tSTOP\tSIZE\tADDED\tNEEDS\tUNIQUE\tDEDUP\tPIN")
			for _, b := range c.Backups {
				pin := ""
				if b.Pinned {
					pin = "pinned " + b.PinNote
				}
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%.1fx\t%s\n", b.ID, b.StopTime.Local().Format("2006-01-02 15:04:05"),
					humanBytes(b.DBBytes), humanBytes(b.StoredBytes), humanBytes(b.ReferencedBytes), humanBytes(b.UniqueBytes), b.DedupRatio, pin)
			}
			tw.Flush()
		}
		for _, l := range clusterLines(&c.Report) {
			fmt.Fprintln(w, "  "+l)
		}
	}
}
