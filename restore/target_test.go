package restore

import (
	"testing"
	"time"
)

func TestParseTargetTime(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Skip("no tzdata")
	}
	utc := func(s string) time.Time { v, _ := time.Parse(time.RFC3339Nano, s); return v }
	cases := []struct {
		in      string
		want    time.Time
		hasZone bool
	}{
		{"2026-10-01 12:30:00+00", utc("2026-10-01T12:30:00Z"), true},
		{"2026-10-01 12:30:00.250+02:00", utc("2026-10-01T10:30:00.25Z"), true},
		{"2026-10-01T12:30:00Z", utc("2026-10-01T12:30:00Z"), true},
		{"2026-10-01 12:30:00 UTC", utc("2026-10-01T12:30:00Z"), true},
		{"2026-10-01 12:30:00 Europe/Paris", utc("2026-10-01T10:30:00Z"), true},
		// Without a zone: in the zone given (the restored server's).
		{"2026-10-01 12:30:00", utc("2026-10-01T10:30:00Z"), false},
		{"2026-10-01", utc("2026-09-30T22:00:00Z"), false},
	}
	for _, c := range cases {
		got, hasZone, err := ParseTargetTime(c.in, paris)
		if err != nil || !got.Equal(c.want) || hasZone != c.hasZone {
			t.Errorf("%q: got %v zone=%v err=%v, want %v zone=%v", c.in, got.UTC(), hasZone, err, c.want, c.hasZone)
		}
	}
	for _, bad := range []string{"", "yesterday", "2026-13-01 00:00:00", "12:30"} {
		if _, _, err := ParseTargetTime(bad, time.UTC); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestTargetValidate(t *testing.T) {
	bad := []Target{
		{Time: "2026-01-01", LSN: "0/1"},
		{LSN: "nope"},
		{XID: "12a"},
		{Action: "explode", Immediate: true},
		{Timeline: "newest"},
		{Exclusive: true},
	}
	for _, tg := range bad {
		if err := tg.Validate(); err == nil {
			t.Errorf("%+v accepted", tg)
		}
	}
	good := []Target{{}, {LSN: "0/3000060"}, {XID: "1234", Exclusive: true, Action: "pause"}, {Timeline: "2"}, {Immediate: true, Action: "shutdown"}}
	for _, tg := range good {
		if err := tg.Validate(); err != nil {
			t.Errorf("%+v: %v", tg, err)
		}
	}
	s := (&Target{XID: "7", Exclusive: true}).RecoverySettings("cmd %f %p", 3)
	want := map[string]string{"restore_command": "cmd %f %p", "recovery_target_xid": "7", "recovery_target_inclusive": "off", "recovery_target_action": "promote", "recovery_target_timeline": "3"}
	if len(s) != len(want) {
		t.Fatalf("settings %v", s)
	}
	for _, kv := range s {
		if want[kv.Name] != kv.Value {
			t.Errorf("%s = %q, want %q", kv.Name, kv.Value, want[kv.Name])
		}
	}
}
