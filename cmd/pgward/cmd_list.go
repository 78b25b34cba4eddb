package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pgward/pgward/internal/config"
	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/restore"
	"github.com/spf13/cobra"
)

// listJSON is the stable shape of 'list --json'.
type listJSON struct {
	Backups  []restore.BackupReport `json:"backups"`
	Clusters []*restore.Report      `json:"clusters"`
}

func newListCmd(o *config.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use: "list",
		Example: `  pgward list --repo /var/lib/pgward
  pgward list --config /etc/pgward/pgward.toml --cluster main --json`,
		Short: "List the backups, timelines and recoverable windows in the repositories",
		Long: `List the committed backups of every cluster in each repository (or only
--cluster when given explicitly), the timelines of the WAL archive with the
segments missing in them, and the windows recovery can reach: from a backup's
consistency point to the last transaction archived, or to the first gap. A
backup whose manifest cannot be read is listed as damaged.

--json prints an object: "backups" (keys id, cluster, repo, start_time,
stop_time, start_lsn, stop_lsn, timeline, pg_version, system_identifier,
db_bytes, stored_bytes, compress, label) and "clusters" (per repository and
cluster: timelines with forks, gaps and partials; windows; damaged backups).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			repos, err := openRepos(ctx, o)
			if err != nil {
				return err
			}
			one := listOneCluster(o)
			if one {
				if err := clusterKnown(ctx, repos, o.Cluster); err != nil {
					return err
				}
			}
			out := listJSON{Backups: []restore.BackupReport{}, Clusters: []*restore.Report{}}
			for _, r := range repos {
				clusters := []string{}
				if one {
					c, err := clusterName(o)
					if err != nil {
						return err
					}
					clusters = append(clusters, c)
				} else if clusters, err = r.Clusters(ctx); err != nil {
					return err
				}
				for _, c := range clusters {
					cat, err := restore.LoadCatalog(ctx, []*repo.Repo{r}, c)
					if err != nil {
						return fmt.Errorf("listing cluster %s in %s: %w", c, r, err)
					}
					for _, m := range cat.Backups {
						out.Backups = append(out.Backups, restore.BackupReportOf(r.String(), m))
					}
					rep, err := cat.Report(ctx, r.String())
					if err != nil {
						return fmt.Errorf("listing cluster %s in %s: %w", c, r, err)
					}
					out.Clusters = append(out.Clusters, rep)
				}
			}
			w := cmd.OutOrStdout()
			if o.JSON {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			return printList(w, out)
		},
	}
	return cmd
}

// listOneCluster tells whether list shows only o.Cluster: when it was named on
// the command line, or in the environment or the file as another than the
// default (a file saying default-cluster = "main" does not hide the others).
func listOneCluster(o *config.Options) bool {
	return o.Origin("cluster") == config.FromFlag || o.Cluster != config.DefaultCluster
}

// printList writes the text form of list.
func printList(w io.Writer, out listJSON) error {
	damaged := 0
	for _, c := range out.Clusters {
		damaged += len(c.Damaged)
	}
	if len(out.Backups) == 0 && damaged == 0 {
		fmt.Fprintln(w, "no backups")
	}
	if len(out.Backups) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "REPO\tCLUSTER\tID\tSTART\tSTOP\tSTART LSN\tSTOP LSN\tTLI\tPG\tSIZE\tSTORED")
		for _, b := range out.Backups {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", b.Repo, b.Cluster, b.ID,
				localTime(b.StartTime), localTime(b.StopTime),
				b.StartLSN, b.StopLSN, b.Timeline, pgVersion(b.PGVersion), humanBytes(b.DBBytes), humanBytes(b.StoredBytes))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, c := range out.Clusters {
		lines := clusterLines(c)
		if len(lines) > 0 {
			fmt.Fprintln(w)
		}
		for _, l := range lines {
			fmt.Fprintf(w, "%s %s: %s\n", c.Repo, c.Cluster, l)
		}
	}
	return nil
}

// clusterLines describes a cluster's damaged backups, timelines and windows.
func clusterLines(c *restore.Report) []string {
	var lines []string
	for _, d := range c.Damaged {
		lines = append(lines, fmt.Sprintf("DAMAGED backup %s cannot be read and is skipped: %s", d.ID, d.Error))
	}
	for _, t := range c.Timelines {
		l := fmt.Sprintf("timeline %d", t.Timeline)
		if t.Parent != 0 {
			l += fmt.Sprintf(" (forked from timeline %d at %s)", t.Parent, t.ForkLSN)
		}
		switch {
		case t.Segments > 0:
			l += fmt.Sprintf(": %d segments archived, %s to %s", t.Segments, t.FirstSegment, t.LastSegment)
		default:
			l += ": no segments archived"
		}
		if t.Partial != nil {
			l += fmt.Sprintf("; streamed partial %s up to %s", t.Partial.Segment, t.Partial.EndLSN)
		}
		if t.HistoryError != "" {
			l += "; its history file cannot be used: " + t.HistoryError
		}
		lines = append(lines, l)
		for _, g := range t.Gaps {
			lines = append(lines, fmt.Sprintf("timeline %d: GAP: %s missing", t.Timeline, gapText(g)))
		}
	}
	for _, wn := range c.Windows {
		l := fmt.Sprintf("timeline %d: recoverable from %s (%s, backup %s) to %s (%s)", wn.Timeline,
			localTime(wn.FromTime), wn.FromLSN, wn.FromBackup, localTime(wn.ToTime), wn.ToLSN)
		if wn.ToTime.After(wn.FromTime) {
			l += fmt.Sprintf(", last transaction %s ago", time.Since(wn.ToTime).Round(time.Second))
		} else {
			l += "; no transaction archived after the backup"
		}
		if wn.Gap != nil {
			l += fmt.Sprintf("; recovery stops there: %s missing, WAL resumes at %s", gapText(*wn.Gap), wn.ResumeSegment)
		}
		lines = append(lines, l)
	}
	return lines
}

func gapText(g restore.GapReport) string {
	if g.Count == 1 {
		return g.First
	}
	return fmt.Sprintf("%s to %s (%d segments)", g.First, g.Last, g.Count)
}

func localTime(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05 MST") }

// pgVersion writes server_version_num as PostgreSQL does: 150018 is 15.18.
func pgVersion(n int) string {
	if n >= 100000 {
		return fmt.Sprintf("%d.%d", n/10000, n%10000)
	}
	return fmt.Sprintf("%d.%d.%d", n/10000, n/100%100, n%100)
}

// clusterKnown refuses a cluster name no repository has, listing those they have: a typo
// must not read as "no backups".
func clusterKnown(ctx context.Context, repos []*repo.Repo, cluster string) error {
	var all []string
	for _, r := range repos {
		names, err := r.Clusters(ctx)
		if err != nil {
			return err
		}
		if slices.Contains(names, cluster) {
			return nil
		}
		all = append(all, names...)
	}
	slices.Sort(all)
	all = slices.Compact(all)
	if len(all) == 0 {
		return fmt.Errorf("cluster %q is in no repository, which hold no cluster yet: the first backup or archive-push records one", cluster)
	}
	return fmt.Errorf("cluster %q is in no repository; the clusters there are: %s (give one with --cluster)", cluster, strings.Join(all, ", "))
}
