package engine

// The round trip of check: switch WAL, wait until every repository has the
// segment, and explain why when it does not arrive.

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pgward/pgward/repo"
)

// archiverStats is a row of pg_stat_archiver.
type archiverStats struct {
	failed                 int64
	lastArchived, archTime string
	lastFailed, failTime   string
}

func (s *checkSession) archiver(ctx context.Context) (archiverStats, error) {
	row, err := s.query(ctx, `SELECT failed_count, coalesce(last_archived_wal, ''), coalesce(date_trunc('second', last_archived_time)::text, ''),
		coalesce(last_failed_wal, ''), coalesce(date_trunc('second', last_failed_time)::text, '') FROM pg_stat_archiver`)
	if err != nil || len(row) != 5 {
		return archiverStats{}, fmt.Errorf("reading pg_stat_archiver on %s: %v", s.where, err)
	}
	var st archiverStats
	st.failed, _ = strconv.ParseInt(row[0], 10, 64)
	st.lastArchived, st.archTime, st.lastFailed, st.failTime = row[1], row[2], row[3], row[4]
	return st, nil
}

// isSegmentName reports whether a pg_stat_archiver name is a plain segment
// (not a history, backup history or partial file).
func isSegmentName(n string) bool {
	if len(n) != 24 {
		return false
	}
	_, err := hex.DecodeString(n)
	return err == nil
}

// roundTrip switches to a new segment and waits until every repository has it.
func (s *checkSession) roundTrip(ctx context.Context) error {
	base, err := s.archiver(ctx)
	if err != nil {
		return err
	}
	// A restore point writes a WAL record, so the switch below always ends a
	// segment, even on an idle server (a switch with nothing written since the
	// last one does nothing).
	if _, err := s.query(ctx, "SELECT pg_create_restore_point('pgward check')"); err != nil {
		return s.switchError(err)
	}
	seg, err := s.queryOne(ctx, "SELECT pg_walfile_name(pg_switch_wal())")
	if err != nil {
		return s.switchError(err)
	}
	start := time.Now()
	s.res.Segment = seg
	s.o.Log.Info("switched WAL, waiting for the segment to be archived", "segment", seg, "timeout", s.o.Timeout)
	deadline := start.Add(s.o.Timeout)
	elapsed := make([]time.Duration, len(s.repos))
	missing := func() []*repo.Repo {
		var out []*repo.Repo
		for i, r := range s.repos {
			if elapsed[i] == 0 {
				out = append(out, r)
			}
		}
		return out
	}
	poll := func() error {
		for i, r := range s.repos {
			if elapsed[i] != 0 {
				continue
			}
			ok, err := r.HasWAL(ctx, s.o.Cluster, seg)
			if err != nil {
				return fmt.Errorf("looking for segment %s in %s: %w", seg, r, err)
			}
			if ok {
				elapsed[i] = max(time.Since(start), time.Nanosecond)
			}
		}
		return nil
	}
	for {
		if err := poll(); err != nil {
			return err
		}
		if len(missing()) == 0 {
			break
		}
		st, err := s.archiver(ctx)
		if err != nil {
			return err
		}
		failed := st.failed - base.failed
		if failed >= archiveRetries {
			return s.failingError(ctx, seg, st, failed)
		}
		if isSegmentName(st.lastArchived) && st.lastArchived >= seg {
			// The archive_command returned 0 for the segment: look once more,
			// since it may have arrived after the poll above.
			if err := poll(); err != nil {
				return err
			}
			if m := missing(); len(m) > 0 {
				return fmt.Errorf("the server reports segment %s archived (at %s), but it is not in %s under cluster %q: the archive_command stores WAL somewhere else; compare its --repo and --cluster (or its --config file) with this check's", seg, st.archTime, m[0], s.o.Cluster)
			}
			break
		}
		if time.Now().After(deadline) {
			return s.timeoutError(ctx, seg, st, failed, missing())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for segment %s: %w", seg, ctx.Err())
		case <-time.After(checkPoll):
		}
	}
	if st, err := s.archiver(ctx); err == nil && st.failed > base.failed {
		s.roundTripWarning = fmt.Sprintf("the archiver failed %d times during the check (last on %s at %s) before succeeding; see the server log", st.failed-base.failed, st.lastFailed, st.failTime)
	}
	for i, r := range s.repos {
		s.res.Repos = append(s.res.Repos, CheckedRepo{Repo: r.String(), Elapsed: elapsed[i], Seconds: elapsed[i].Seconds()})
	}
	return nil
}

// roundTripDetail describes a successful round trip.
func (s *checkSession) roundTripDetail() string {
	var parts []string
	for _, r := range s.res.Repos {
		parts = append(parts, fmt.Sprintf("%s in %s", r.Repo, r.Elapsed.Round(10*time.Millisecond)))
	}
	d := "segment " + s.res.Segment + " archived to " + strings.Join(parts, ", ")
	if s.roundTripWarning != "" {
		d += "; " + s.roundTripWarning
	}
	return d
}

func (s *checkSession) switchError(err error) error {
	if permissionDenied(err) {
		return fmt.Errorf("role %q may not force a WAL switch on %s: run check as a superuser, or %s", s.role, s.where, fmt.Sprintf(checkGrants, s.role))
	}
	return fmt.Errorf("forcing a WAL switch on %s: %w", s.where, err)
}

func (s *checkSession) failingError(ctx context.Context, seg string, st archiverStats, failed int64) error {
	var b strings.Builder
	fmt.Fprintf(&b, "the archiver is failing: it has failed %d times since the check started, last on segment %s at %s", failed, st.lastFailed, st.failTime)
	if isSegmentName(st.lastFailed) && st.lastFailed < seg {
		fmt.Fprintf(&b, " (older than the check's segment %s: archiving is stuck there)", seg)
	}
	s.explainFailure(ctx, &b, seg)
	return errors.New(b.String())
}

func (s *checkSession) timeoutError(ctx context.Context, seg string, st archiverStats, failed int64, missing []*repo.Repo) error {
	var names []string
	for _, r := range missing {
		names = append(names, r.String())
	}
	last := "none"
	if st.lastArchived != "" {
		last = st.lastArchived + " at " + st.archTime
	}
	var b strings.Builder
	fmt.Fprintf(&b, "archiving is slow or stuck: segment %s was not archived to %s within %s (last archived: %s", seg, strings.Join(names, ", "), s.o.Timeout, last)
	if n, err := s.queryOne(ctx, "SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'"); err == nil {
		fmt.Fprintf(&b, "; files waiting to be archived: %s", n)
	}
	b.WriteString(")")
	if failed > 0 {
		fmt.Fprintf(&b, "; the archiver failed %d times meanwhile, last on %s at %s", failed, st.lastFailed, st.failTime)
		s.explainFailure(ctx, &b, seg)
	} else {
		b.WriteString("; a slow archive_command or a long backlog keeps it busy: see pg_stat_archiver and the server log")
	}
	return errors.New(b.String())
}

// explainFailure adds what is known about why the archive_command fails: a
// permission problem on a local repository, and its own error from the server
// log when the server lets check read it.
func (s *checkSession) explainFailure(ctx context.Context, b *strings.Builder, seg string) {
	perm := s.permissionProblem(ctx, seg)
	logLine := s.archiveErrorFromLog(ctx)
	if perm != "" {
		b.WriteString("; permission denied on the repository: " + perm)
	}
	if logLine != "" {
		b.WriteString("; the server log says: " + logLine)
	}
	if perm == "" && logLine == "" {
		b.WriteString("; the archive_command's error is in the server log (look for \"archive command failed\")")
	}
}
