package engine

import (
	"context"
	"fmt"
	"strings"
)

// The checklist of check: every check on its own line with its outcome, so one run shows
// everything that is wrong, not only the first thing. A check whose prerequisite failed is
// SKIPPED with the reason, never guessed.

// Outcomes of a check, from best to worst (Nagios's order).
const (
	CheckOK      = "OK"
	CheckWarning = "WARNING"
	CheckFailed  = "FAILED"
	CheckSkipped = "SKIPPED"
)

// CheckItem is one line of the checklist.
type CheckItem struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	// Detail says what was found; on failure, what is wrong and what to do.
	Detail string `json:"detail,omitempty"`
	// Hint is the fix when it is a line to copy (the archive_command to use, a GRANT).
	Hint string `json:"hint,omitempty"`
}

// add appends an item.
func (r *CheckResult) add(name, status, detail, hint string) {
	r.Items = append(r.Items, CheckItem{Name: name, Status: status, Detail: detail, Hint: hint})
}

// run runs a check that fails with an error (which says what to do) and records it.
func (r *CheckResult) run(name string, okDetail func() string, check func() error) bool {
	if err := check(); err != nil {
		r.add(name, CheckFailed, err.Error(), "")
		return false
	}
	r.add(name, CheckOK, okDetail(), "")
	return true
}

// skip records checks that cannot run, and why.
func (r *CheckResult) skip(why string, names ...string) {
	for _, n := range names {
		r.add(n, CheckSkipped, why, "")
	}
}

// Failed reports whether any check failed.
func (r *CheckResult) Failed() bool { return r.count(CheckFailed) > 0 }

// Warned reports whether any check warned.
func (r *CheckResult) Warned() bool { return r.count(CheckWarning) > 0 }

func (r *CheckResult) count(status string) int {
	n := 0
	for _, it := range r.Items {
		if it.Status == status {
			n++
		}
	}
	return n
}

// Summary is one line: what failed, else what warned, else how many passed.
func (r *CheckResult) Summary() string {
	for _, status := range []string{CheckFailed, CheckWarning} {
		var names []string
		for _, it := range r.Items {
			if it.Status == status {
				names = append(names, it.Name)
			}
		}
		if len(names) > 0 {
			first := ""
			for _, it := range r.Items {
				if it.Status == status {
					first = it.Detail
					if it.Hint != "" {
						first += ": " + it.Hint
					}
					break
				}
			}
			return fmt.Sprintf("%d %s (%s): %s", len(names), strings.ToLower(status), strings.Join(names, ", "), first)
		}
	}
	return fmt.Sprintf("%d checks passed", r.count(CheckOK))
}

// Err is the check's failure as an error, nil when nothing failed.
func (r *CheckResult) Err() error {
	if !r.Failed() {
		return nil
	}
	return fmt.Errorf("check: %s", r.Summary())
}

// serverChecks are the checks that need a connection to the server.
var serverChecks = []string{"replication connection", "server is a primary", "wal_level", "archive_mode", "archive_command", "system identifier", "archive round trip"}

// runChecks is the checklist in the order a broken setup usually fails.
func (s *checkSession) runChecks(ctx context.Context) {
	r := s.res
	if !s.checkRepos(ctx) {
		r.skip("needs the repositories", "archive round trip")
	}
	s.checkReplication(ctx)
	primary := s.checkPrimary(ctx)
	walOK := r.run("wal_level", func() string { return "wal_level is " + s.walLevel }, func() error { return s.checkWALLevel(ctx) })
	modeOK := r.run("archive_mode", func() string { return "archive_mode is " + s.archiveMode }, func() error { return s.checkArchiveMode(ctx) })
	cmdOK := s.checkArchiveCommandItem(ctx)
	idOK := s.checkIdentityItem(ctx)
	switch {
	case len(s.repos) == 0:
	case !primary:
		r.skip("a standby cannot switch WAL: run check against the primary", "archive round trip")
	case !walOK || !modeOK || !cmdOK || !idOK:
		r.skip("fix the failed checks above first (the test segment could not arrive)", "archive round trip")
	default:
		r.run("archive round trip", s.roundTripDetail, func() error { return s.roundTrip(ctx) })
	}
	if len(s.repos) > 0 {
		s.checkContinuity(ctx)
		s.checkBackups(ctx)
		s.checkFreeSpace()
	}
}
