// Package retention decides which backups a policy keeps (docs/repository-format.md,
// "Retention"). It is pure: backups and a clock in, decisions with reasons out, so every rule
// is tested with times in the past and the operation that deletes (package expire) holds no
// policy of its own.
//
// Invariants:
//   - A backup is kept when any rule keeps it; the reasons name every rule that did.
//   - The newest backup is always kept, and pinned backups are kept by every policy.
//   - A policy with no rule keeps everything; Validate refuses it, so that an empty config
//     never reads as "delete everything but the newest".
package retention

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Policy is a set of rules; zero fields are rules not given.
type Policy struct {
	// Last keeps the N newest backups.
	Last int
	// Within keeps every backup that stopped within this long of now, and the newest one that
	// stopped before (the base of the window's first point).
	Within time.Duration
	// Daily, Weekly, Monthly and Yearly keep the newest backup of each of the N most recent
	// days (weeks, months, years) that have a backup.
	Daily, Weekly, Monthly, Yearly int
}

// Empty reports whether no rule is given.
func (p Policy) Empty() bool { return p == Policy{} }

// Validate refuses a policy that would keep nothing of its own accord, or a negative rule.
func (p Policy) Validate() error {
	for _, n := range []int{p.Last, p.Daily, p.Weekly, p.Monthly, p.Yearly} {
		if n < 0 {
			return errors.New("a keep rule cannot be negative")
		}
	}
	if p.Within < 0 {
		return errors.New("keep-within cannot be negative")
	}
	if p.Empty() {
		return errors.New("no retention rule given: set keep-last, keep-within or keep-daily/-weekly/-monthly/-yearly (on the command line or in the config)")
	}
	return nil
}

// Windowed reports whether the policy promises a recovery window: keep-last or keep-within,
// whose oldest backup starts the WAL kept continuously.
func (p Policy) Windowed() bool { return p.Last > 0 || p.Within > 0 }

// String describes the policy, e.g. "keep-last 7, keep-daily 14".
func (p Policy) String() string {
	var parts []string
	add := func(name string, n int) {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", name, n))
		}
	}
	add("keep-last", p.Last)
	if p.Within > 0 {
		parts = append(parts, "keep-within "+FormatDuration(p.Within))
	}
	add("keep-daily", p.Daily)
	add("keep-weekly", p.Weekly)
	add("keep-monthly", p.Monthly)
	add("keep-yearly", p.Yearly)
	if len(parts) == 0 {
		return "no rule"
	}
	return strings.Join(parts, ", ")
}

// FormatDuration writes whole days as "30d" and the rest as Go does.
func FormatDuration(d time.Duration) string {
	const day = 24 * time.Hour
	if d >= day && d%day == 0 {
		return fmt.Sprintf("%dd", d/day)
	}
	return d.String()
}
