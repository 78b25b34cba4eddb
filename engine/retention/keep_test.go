package retention

import (
	"slices"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

// backupsAt makes one backup per stop time, IDs "b0", "b1", ... in the given order.
func backupsAt(stops ...time.Time) []Backup {
	var bs []Backup
	for i, s := range stops {
		bs = append(bs, Backup{ID: "b" + string(rune('0'+i)), Stop: s})
	}
	return bs
}

func kept(ds []Decision) []string {
	var ids []string
	for _, d := range ds {
		if d.Keep {
			ids = append(ids, d.ID)
		}
	}
	return ids
}

func ago(d time.Duration) time.Time { return now.Add(-d) }

const day = 24 * time.Hour

func TestKeepLast(t *testing.T) {
	bs := backupsAt(ago(4*day), ago(3*day), ago(2*day), ago(day))
	ds := Apply(Policy{Last: 2}, bs, now, time.UTC)
	if got := kept(ds); !slices.Equal(got, []string{"b2", "b3"}) {
		t.Fatalf("kept %v", got)
	}
	if !ds[2].Window || ds[0].Window {
		t.Fatalf("window flags: %+v", ds)
	}
	// Input order does not matter: the rules look at stop times.
	slices.Reverse(bs)
	if got := kept(Apply(Policy{Last: 2}, bs, now, time.UTC)); !slices.Equal(got, []string{"b3", "b2"}) {
		t.Fatalf("kept %v (reversed input)", got)
	}
}

// The window keeps everything inside it and the newest backup before it, whose WAL reaches
// the window's first point; a boundary between two backups keeps the older one as the base.
func TestKeepWithin(t *testing.T) {
	bs := backupsAt(ago(10*day), ago(8*day), ago(6*day), ago(2*day), ago(1*day))
	ds := Apply(Policy{Within: 7 * day}, bs, now, time.UTC)
	if got := kept(ds); !slices.Equal(got, []string{"b1", "b2", "b3", "b4"}) {
		t.Fatalf("kept %v", got)
	}
	if !strings.Contains(strings.Join(ds[1].Reasons, ","), "base") {
		t.Fatalf("b1's reasons %v do not say it is the window's base", ds[1].Reasons)
	}
	// A backup exactly at the window's start is inside it; then no older base is needed.
	bs = backupsAt(ago(10*day), ago(7*day), ago(1*day))
	if got := kept(Apply(Policy{Within: 7 * day}, bs, now, time.UTC)); !slices.Equal(got, []string{"b1", "b2"}) {
		t.Fatalf("kept %v with a backup on the boundary", got)
	}
}

// Grandfather-father-son: the newest backup of each of the N most recent periods with a
// backup; periods without one do not count.
func TestCalendarRules(t *testing.T) {
	var stops []time.Time
	// Two backups a day for 40 days, at 01:00 and 13:00 UTC.
	for d := 40; d >= 1; d-- {
		base := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC).Add(-time.Duration(d) * day)
		stops = append(stops, base.Add(time.Hour), base.Add(13*time.Hour))
	}
	var bs []Backup
	for i, s := range stops {
		bs = append(bs, Backup{ID: s.Format("20060102T15"), Stop: s})
		_ = i
	}
	got := kept(Apply(Policy{Daily: 3}, bs, now, time.UTC))
	if want := []string{"20261129T13", "20261130T13", "20261201T13"}; !slices.Equal(got, want) {
		t.Fatalf("daily 3 kept %v, want %v", got, want)
	}
	got = kept(Apply(Policy{Weekly: 2}, bs, now, time.UTC))
	// 2026-12-01 is a Tuesday of ISO week 49; week 48 ended Sunday 2026-11-29.
	if want := []string{"20261129T13", "20261201T13"}; !slices.Equal(got, want) {
		t.Fatalf("weekly 2 kept %v, want %v", got, want)
	}
	got = kept(Apply(Policy{Monthly: 3, Yearly: 1}, bs, now, time.UTC))
	if want := []string{"20261031T13", "20261130T13", "20261201T13"}; !slices.Equal(got, want) {
		t.Fatalf("monthly 3 + yearly 1 kept %v, want %v", got, want)
	}
	// A pause does not empty the repository: the 3 most recent days that have backups.
	gap := []Backup{{ID: "a", Stop: ago(300 * day)}, {ID: "b", Stop: ago(200 * day)}, {ID: "c", Stop: ago(100 * day)}, {ID: "d", Stop: ago(99 * day)}}
	if got := kept(Apply(Policy{Daily: 3}, gap, now, time.UTC)); !slices.Equal(got, []string{"b", "c", "d"}) {
		t.Fatalf("daily 3 after a pause kept %v", got)
	}
	// Days are the given zone's: 23:30 UTC is the next day in Berlin.
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no time zone data")
	}
	late := []Backup{{ID: "x", Stop: time.Date(2026, 11, 30, 22, 30, 0, 0, time.UTC)}, {ID: "y", Stop: time.Date(2026, 11, 30, 23, 30, 0, 0, time.UTC)}}
	if got := kept(Apply(Policy{Daily: 2}, late, now, time.UTC)); !slices.Equal(got, []string{"y"}) {
		t.Fatalf("UTC days kept %v", got)
	}
	if got := kept(Apply(Policy{Daily: 2}, late, now, berlin)); !slices.Equal(got, []string{"x", "y"}) {
		t.Fatalf("Berlin days kept %v", got)
	}
}

// Pins survive every policy; the newest backup always stays; rules combine by union.
func TestPinsNewestAndUnion(t *testing.T) {
	bs := backupsAt(ago(30*day), ago(20*day), ago(10*day), ago(day))
	bs[0].Pinned = true
	ds := Apply(Policy{Last: 1}, bs, now, time.UTC)
	if got := kept(ds); !slices.Equal(got, []string{"b0", "b3"}) {
		t.Fatalf("kept %v", got)
	}
	if ds[0].Window {
		t.Fatal("a pinned backup does not start the recovery window")
	}
	ds = Apply(Policy{Last: 1, Within: 15 * day}, bs, now, time.UTC)
	if got := kept(ds); !slices.Equal(got, []string{"b0", "b1", "b2", "b3"}) {
		t.Fatalf("union kept %v", got)
	}
	if len(ds[3].Reasons) < 2 {
		t.Fatalf("the newest backup's reasons %v should name every rule", ds[3].Reasons)
	}
}

func TestValidate(t *testing.T) {
	if err := (Policy{}).Validate(); err == nil || !strings.Contains(err.Error(), "keep-last") {
		t.Fatalf("empty policy: %v", err)
	}
	if err := (Policy{Last: -1}).Validate(); err == nil {
		t.Fatal("negative rule accepted")
	}
	if got := (Policy{Last: 7, Within: 30 * day, Daily: 14}).String(); got != "keep-last 7, keep-within 30d, keep-daily 14" {
		t.Fatalf("String = %q", got)
	}
}
