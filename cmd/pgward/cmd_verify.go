package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pgward/pgward/engine/verify"
	"github.com/pgward/pgward/internal/config"
	"github.com/pgward/pgward/repo"
	"github.com/spf13/cobra"
)

func newVerifyCmd(o *config.Options) *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "Check that the repositories hold what the backups and the WAL archive need, and read it back",
		Long: `Check every backup of --cluster in each repository (docs/verify.md):

  (no option)          structure: every manifest and index object is read; every chunk a
                       backup names is kept (its object, or an index entry whose pack exists
                       and holds it, page delta bases too, transitively); every backup's WAL
                       from its start to its consistency point is in the backup or archived
  --backup ID|latest   only that backup
  --wal                the cluster's whole WAL archive too: segments missing inside each
                       timeline (as ranges), history files recovery could not use
  --all                every cluster, every backup, the whole WAL archive
  --read-data          also read every object in scope (with --all: every object in the
                       repository) and check its tag and content hash, that a chunk object
                       holds its chunk, every pack entry, that each page delta rebuilds its
                       chunk, WAL segment headers, summaries and pins
  --read-data-subset N%  read only objects never verified, or last verified longer than
                       --verify-period ago (default 30d), then the longest unverified until N%
                       of the bytes in scope (0% allowed): a schedule that reads everything
                       once per period, a little every day

verify holds a shared repository lock (expire's garbage collection waits for it, up to
--lock-wait the other way round) and reads --jobs objects at once. Every problem is printed
on one line naming the object and the backups that need it; any problem makes verify exit
with status 2. Each run's result is kept in the repository (info shows the last one).

--json prints an array with one object per repository: repository, scope, mode,
subset_percent, ok, counts (clusters, backups, chunks, wal_segments, objects, objects_read,
objects_skipped, problems), bytes_read, duration_seconds, problems (object, last, kind,
chunk, backups, error).`,
		Example: `  pgward verify
  pgward verify --read-data-subset 5%
  pgward verify --all --read-data --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts, err := verifyOptions(o)
			if err != nil {
				return err
			}
			repos, err := openRepos(cmd.Context(), o)
			if err != nil {
				return err
			}
			results, err := runVerify(cmd, repos, opts)
			if o.JSON {
				if jerr := printJSON(cmd.OutOrStdout(), results); jerr != nil {
					return jerr
				}
			} else {
				for _, res := range results {
					printVerify(cmd.OutOrStdout(), res, opts)
				}
			}
			if err != nil {
				return err
			}
			return verifyVerdict(results)
		},
	}
}

// verifyOptions maps the options to a verify run (verify.OptionsFrom).
func verifyOptions(o *config.Options) (verify.Options, error) { return verify.OptionsFrom(o) }

// runVerify verifies every repository in turn (verify.All).
func runVerify(cmd *cobra.Command, repos []*repo.Repo, opts verify.Options) ([]*verify.Result, error) {
	return verify.All(cmd.Context(), repos, opts)
}

// verifyVerdict is the error that makes verify exit non-zero when it found problems.
func verifyVerdict(results []*verify.Result) error {
	var bad []string
	n := 0
	for _, res := range results {
		if !res.OK {
			n += len(res.Problems)
			bad = append(bad, res.Repository)
		}
	}
	if n == 0 {
		return nil
	}
	return fmt.Errorf("verify found %d problem(s) in %s (each named above); 'pgward info' shows the last result", n, strings.Join(bad, ", "))
}

// printVerify writes one repository's result for a person: a summary line, then one line
// per problem.
func printVerify(w io.Writer, res *verify.Result, o verify.Options) {
	c := res.Counts
	mode := string(res.Mode)
	if res.Mode == verify.ReadSubset {
		mode = fmt.Sprintf("%s %g%%", mode, *res.SubsetPercent)
	}
	fmt.Fprintf(w, "%s: %s (%s): %d backups, %d chunks, %d WAL segments to consistency checked", res.Repository, res.Scope, mode, c.Backups, c.Chunks, c.WALSegments)
	if res.Mode != verify.Structure {
		fmt.Fprintf(w, "; read %d of %d objects (%s)", c.ObjectsRead, c.Objects, humanBytes(res.BytesRead))
		if c.ObjectsSkipped > 0 {
			fmt.Fprintf(w, ", %d verified within %s not read again", c.ObjectsSkipped, periodText(o.Period))
		}
	}
	fmt.Fprintf(w, " in %s\n", (time.Duration(res.DurationSeconds * float64(time.Second))).Round(time.Millisecond))
	for _, p := range res.Problems {
		object := p.Object
		if p.Last != "" {
			object += " to " + p.Last[strings.LastIndexByte(p.Last, '/')+1:]
		}
		// The error names the object too, as errors do; once is enough here.
		msg := strings.TrimPrefix(strings.TrimPrefix(p.Error, p.Object+" in "+res.Repository+": "), p.Object+": ")
		line := fmt.Sprintf("  PROBLEM %s %s: %s", p.Kind, object, msg)
		if len(p.Backups) > 0 {
			line += " (backups " + strings.Join(p.Backups, ", ") + ")"
		}
		fmt.Fprintln(w, line)
	}
	if res.OK {
		fmt.Fprintln(w, "  OK")
	} else {
		fmt.Fprintf(w, "  %d PROBLEM(S)\n", len(res.Problems))
	}
}

// periodText writes a period in days when it is whole days.
func periodText(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}
