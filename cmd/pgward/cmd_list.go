package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/restore"
	"github.com/spf13/cobra"
)

// backupJSON is the stable shape of 'list --json': scripts parse these names.
type backupJSON struct {
	ID               string    `json:"id"`
	Cluster          string    `json:"cluster"`
	Repo             string    `json:"repo"`
	StartTime        time.Time `json:"start_time"`
	StopTime         time.Time `json:"stop_time"`
	StartLSN         string    `json:"start_lsn"`
	StopLSN          string    `json:"stop_lsn"`
	Timeline         uint32    `json:"timeline"`
	PGVersion        int       `json:"pg_version"`
	SystemIdentifier string    `json:"system_identifier"`
	DBBytes          int64     `json:"db_bytes"`
	StoredBytes      int64     `json:"stored_bytes"`
	Compress         string    `json:"compress"`
	Label            string    `json:"label"`
}

func newListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the backups in the repositories",
		Long: `List the committed backups of every cluster in each repository (or only
--cluster when given explicitly). --json prints a JSON array with the keys id,
cluster, repo, start_time, stop_time, start_lsn, stop_lsn, timeline, pg_version,
system_identifier, db_bytes, stored_bytes, compress and label.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			repos, err := openRepos(ctx, cmd)
			if err != nil {
				return err
			}
			asJSON, _ := cmd.Flags().GetBool("json")
			out := []backupJSON{}
			var windows []string
			for _, r := range repos {
				clusters := []string{}
				if cmd.Flags().Changed("cluster") {
					c, err := clusterName(cmd)
					if err != nil {
						return err
					}
					clusters = append(clusters, c)
				} else if clusters, err = r.Clusters(ctx); err != nil {
					return err
				}
				for _, c := range clusters {
					ids, err := r.BackupIDs(ctx, c)
					if err != nil {
						return err
					}
					for _, id := range ids {
						m, err := r.Manifest(ctx, c, id)
						if err != nil {
							return err
						}
						out = append(out, toJSON(r, m))
					}
					if len(ids) > 0 && !asJSON {
						if w, err := restore.RecoveryWindow(ctx, r, c); err == nil {
							windows = append(windows, windowLine(r.String(), c, w))
						}
					}
				}
			}
			w := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			if len(out) == 0 {
				fmt.Fprintln(w, "no backups")
				return nil
			}
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "REPO\tCLUSTER\tID\tSTART\tSTOP\tSTART LSN\tSTOP LSN\tTLI\tPG\tSIZE\tSTORED")
			for _, b := range out {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", b.Repo, b.Cluster, b.ID,
					b.StartTime.Local().Format("2006-01-02 15:04:05"), b.StopTime.Local().Format("2006-01-02 15:04:05"),
					b.StartLSN, b.StopLSN, b.Timeline, b.PGVersion, humanBytes(b.DBBytes), humanBytes(b.StoredBytes))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			for _, l := range windows {
				fmt.Fprintln(w, l)
			}
			return nil
		},
	}
	cmd.Flags().Bool("json", false, "print a JSON array")
	return cmd
}

// windowLine describes what a cluster can be restored to.
func windowLine(repoName, cluster string, w *restore.Window) string {
	s := fmt.Sprintf("\n%s %s: recoverable from %s (%s) to %s (%s)", repoName, cluster,
		w.FromTime.Local().Format("2006-01-02 15:04:05"), w.FromLSN, w.ToTime.Local().Format("2006-01-02 15:04:05"), w.ToLSN)
	if w.LastWAL == "" {
		return s + "; no WAL archived: only the backups' consistency points can be restored"
	}
	s += "; newest archived WAL " + w.LastWAL
	if !w.LastWALTime.IsZero() {
		s += fmt.Sprintf(", %s ago", time.Since(w.LastWALTime).Round(time.Second))
	}
	return s
}

func toJSON(r *repo.Repo, m *repo.Manifest) backupJSON {
	return backupJSON{ID: m.ID, Cluster: m.Cluster, Repo: r.String(), StartTime: m.StartTime, StopTime: m.StopTime,
		StartLSN: m.StartLSN, StopLSN: m.StopLSN, Timeline: m.Timeline, PGVersion: m.PGVersion,
		SystemIdentifier: m.SystemIdentifier, DBBytes: m.DBBytes, StoredBytes: m.StoredBytes, Compress: m.Compress, Label: m.Label}
}
