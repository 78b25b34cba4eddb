package retention

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// Backup is what the rules look at.
type Backup struct {
	ID   string
	Stop time.Time
	// Pinned backups are kept by every policy.
	Pinned bool
}

// Decision is the verdict on one backup.
type Decision struct {
	Backup
	Keep bool
	// Reasons names the rules that keep it ("last 2", "daily 2026-11-30", "pinned"), empty
	// when it goes.
	Reasons []string
	// Window reports that keep-last or keep-within keeps it: the WAL from it on is kept.
	Window bool
}

// Apply decides every backup, returned in the order given. now is the clock the time rules
// measure from; loc the time zone calendar periods are in.
func Apply(p Policy, backups []Backup, now time.Time, loc *time.Location) []Decision {
	ds := make([]Decision, len(backups))
	order := make([]int, len(backups)) // newest first
	for i, b := range backups {
		ds[i].Backup = b
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		if c := backups[b].Stop.Compare(backups[a].Stop); c != 0 {
			return c
		}
		return cmp.Compare(backups[b].ID, backups[a].ID)
	})
	keep := func(i int, why string, window bool) {
		ds[i].Keep = true
		ds[i].Reasons = append(ds[i].Reasons, why)
		ds[i].Window = ds[i].Window || window
	}
	for rank, i := range order {
		if rank < p.Last {
			keep(i, fmt.Sprintf("last %d", p.Last), true)
		}
		if backups[i].Pinned {
			keep(i, "pinned", false)
		}
	}
	if len(order) > 0 {
		keep(order[0], "newest", false)
	}
	if p.Within > 0 {
		within(p.Within, backups, order, now, keep)
	}
	for _, c := range calendars(p) {
		c.apply(backups, order, loc, keep)
	}
	return ds
}

// within keeps the backups that stopped inside the window, and the newest one that stopped at
// or before its start: restoring to the window's first point starts from that one.
func within(d time.Duration, backups []Backup, order []int, now time.Time, keep func(int, string, bool)) {
	start := now.Add(-d)
	why := "within " + FormatDuration(d)
	for _, i := range order {
		if backups[i].Stop.After(start) {
			keep(i, why, true)
			continue
		}
		keep(i, why+" (the window's base)", true)
		return
	}
}

// calendar is one grandfather-father-son rule.
type calendar struct {
	name   string
	n      int
	period func(time.Time) string
}

func calendars(p Policy) []calendar {
	return []calendar{
		{"daily", p.Daily, func(t time.Time) string { return t.Format("2006-01-02") }},
		{"weekly", p.Weekly, func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprintf("%04d-W%02d", y, w) }},
		{"monthly", p.Monthly, func(t time.Time) string { return t.Format("2006-01") }},
		{"yearly", p.Yearly, func(t time.Time) string { return t.Format("2006") }},
	}
}

// apply keeps the newest backup of each of the n most recent periods that have one.
func (c calendar) apply(backups []Backup, order []int, loc *time.Location, keep func(int, string, bool)) {
	if c.n <= 0 {
		return
	}
	seen := 0
	last := ""
	for _, i := range order {
		p := c.period(backups[i].Stop.In(loc))
		if p == last {
			continue
		}
		last = p
		if seen++; seen > c.n {
			return
		}
		keep(i, c.name+" "+p, false)
	}
}
