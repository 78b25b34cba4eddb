package restore

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/wal"
)

// Target is a point-in-time recovery target. At most one of Time, LSN, XID,
// Name and Immediate is set; none means "replay all archived WAL".
type Target struct {
	Time      string // as the user wrote it (PostgreSQL parses it too)
	LSN       string
	XID       string
	Name      string
	Immediate bool
	Exclusive bool
	// Action after reaching the target: promote, pause or shutdown.
	Action string
	// Timeline to recover along: "latest" (default), "current" or a number.
	Timeline string

	// Resolved time of Time, and the zone used when it had none.
	at   time.Time
	zone string
}

// Set reports whether a target was given.
func (t *Target) Set() bool {
	return t.Time != "" || t.LSN != "" || t.XID != "" || t.Name != "" || t.Immediate
}

// Validate checks the target's own syntax.
func (t *Target) Validate() error {
	n := 0
	for _, s := range []string{t.Time, t.LSN, t.XID, t.Name} {
		if s != "" {
			n++
		}
	}
	if t.Immediate {
		n++
	}
	if n > 1 {
		return errors.New("give only one of --target-time, --target-lsn, --target-xid, --target-name and --target-immediate")
	}
	switch t.Action {
	case "", "promote", "pause", "shutdown":
	default:
		return fmt.Errorf("--target-action %q: use promote, pause or shutdown", t.Action)
	}
	if t.LSN != "" {
		if _, err := wal.ParseLSN(t.LSN); err != nil {
			return fmt.Errorf("--target-lsn %q is not an LSN like 0/3000060", t.LSN)
		}
	}
	if t.XID != "" {
		for _, c := range t.XID {
			if c < '0' || c > '9' {
				return fmt.Errorf("--target-xid %q is not a transaction ID (a number)", t.XID)
			}
		}
	}
	switch tl := t.Timeline; {
	case tl == "" || tl == "latest" || tl == "current":
	default:
		for _, c := range tl {
			if c < '0' || c > '9' {
				return fmt.Errorf("--target-timeline %q: use latest, current or a timeline number", tl)
			}
		}
	}
	if (t.Exclusive || t.Action != "") && !t.Set() {
		return errors.New("--target-exclusive and --target-action need a recovery target")
	}
	return nil
}

// timeLayouts are the PostgreSQL timestamp spellings accepted for
// --target-time: ISO 8601 date and time with optional fraction and zone.
var timeLayouts = []string{
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z0700",
	"2006-01-02 15:04:05.999999999Z07",
	"2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02T15:04:05.999999999Z07",
}
var localLayouts = []string{
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04",
	"2006-01-02",
}

// ParseTargetTime parses a timestamp as PostgreSQL would: with a zone (offset,
// Z, or a trailing zone name such as "UTC" or "Europe/Paris") or, without one,
// in loc. hasZone tells which.
func ParseTargetTime(s string, loc *time.Location) (at time.Time, hasZone bool, err error) {
	s = strings.TrimSpace(s)
	for _, l := range timeLayouts {
		if at, err := time.Parse(l, s); err == nil {
			return at, true, nil
		}
	}
	if i := strings.LastIndexByte(s, ' '); i > 0 {
		if zl, err := time.LoadLocation(strings.TrimSpace(s[i+1:])); err == nil {
			for _, l := range localLayouts {
				if at, err := time.ParseInLocation(l, s[:i], zl); err == nil {
					return at, true, nil
				}
			}
		}
	}
	for _, l := range localLayouts {
		if at, err := time.ParseInLocation(l, s, loc); err == nil {
			return at, false, nil
		}
	}
	return time.Time{}, false, fmt.Errorf("--target-time %q is not a timestamp PostgreSQL understands; write it like \"2026-10-01 12:30:00+00\" (a zone offset or name is optional)", s)
}

// Resolve parses a time target in the zone the restored server will use (its
// timezone setting, read from the backup's configuration), so that pgward and
// PostgreSQL read the same instant. It returns the zone used.
func (t *Target) Resolve(ctx context.Context, r *repo.Repo, m *repo.Manifest) (string, error) {
	if t.Time == "" {
		return "", nil
	}
	zone := serverTimezone(ctx, r, m)
	loc, err := time.LoadLocation(zone)
	if err != nil {
		loc, zone = time.UTC, "UTC"
	}
	at, hasZone, err := ParseTargetTime(t.Time, loc)
	if err != nil {
		return "", err
	}
	t.at = at
	if hasZone {
		return "", nil
	}
	t.zone = zone
	return zone, nil
}

// serverTimezone reads the timezone setting from the backup's
// postgresql.conf and postgresql.auto.conf (the later wins, as in PostgreSQL);
// PostgreSQL's default is GMT.
func serverTimezone(ctx context.Context, r *repo.Repo, m *repo.Manifest) string {
	zone := "GMT"
	for _, f := range []string{"postgresql.conf", "postgresql.auto.conf"} {
		b, err := ReadFile(ctx, r, m, f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if i := strings.IndexByte(line, '#'); i >= 0 {
				line = strings.TrimSpace(line[:i])
			}
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				k, v, ok = strings.Cut(line, " ")
			}
			if ok && strings.EqualFold(strings.TrimSpace(k), "timezone") {
				zone = strings.Trim(strings.TrimSpace(v), "'")
			}
		}
	}
	return zone
}

// ReadFile returns the content of one (small) file of a backup.
func ReadFile(ctx context.Context, r *repo.Repo, m *repo.Manifest, path string) ([]byte, error) {
	for _, f := range m.Files {
		if f.Path != path || f.Type != repo.TypeFile {
			continue
		}
		if f.Size > 64<<20 {
			return nil, fmt.Errorf("%s is too large to read into memory", path)
		}
		var out []byte
		var bufs repo.ChunkBuffers
		for _, id := range f.Chunks {
			data, err := r.GetChunk(ctx, id, &bufs)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			out = append(out, data...)
		}
		return out, nil
	}
	return nil, fmt.Errorf("backup %s has no file %s", m.ID, path)
}

// RecoverySettings are the postgresql.conf lines that make the restored
// server recover to the target along timeline tli.
func (t *Target) RecoverySettings(restoreCommand string, tli uint32) []Setting {
	s := []Setting{{"restore_command", restoreCommand}}
	switch {
	case t.Time != "":
		s = append(s, Setting{"recovery_target_time", t.Time})
	case t.LSN != "":
		s = append(s, Setting{"recovery_target_lsn", t.LSN})
	case t.XID != "":
		s = append(s, Setting{"recovery_target_xid", t.XID})
	case t.Name != "":
		s = append(s, Setting{"recovery_target_name", t.Name})
	case t.Immediate:
		s = append(s, Setting{"recovery_target", "immediate"})
	}
	if t.Set() {
		if t.Exclusive {
			s = append(s, Setting{"recovery_target_inclusive", "off"})
		}
		action := t.Action
		if action == "" {
			action = "promote"
		}
		s = append(s, Setting{"recovery_target_action", action})
	}
	return append(s, Setting{"recovery_target_timeline", strconv.FormatUint(uint64(tli), 10)})
}
