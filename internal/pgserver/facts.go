package pgserver

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
)

// Version is the server's version.
type Version struct {
	// Num is server_version_num's form: major*10000 + minor (150018 for 15.18).
	Num   int
	Major int
}

// VersionOf reads the server_version parameter the server reported when the
// connection started ("15.18 (Debian 15.18-0+deb12u1)", "17beta1", "18.4").
func VersionOf(conn *pgconn.PgConn) (Version, error) {
	return parseVersion(conn.ParameterStatus("server_version"))
}

func parseVersion(v string) (Version, error) {
	major, rest, ok := leadingInt(v)
	if !ok {
		return Version{}, fmt.Errorf("cannot parse the server's version %q", v)
	}
	minor := 0
	if strings.HasPrefix(rest, ".") {
		minor, _, _ = leadingInt(rest[1:])
	}
	return Version{Num: major*10000 + minor, Major: major}, nil
}

func leadingInt(s string) (int, string, bool) {
	end := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		end = len(s)
	}
	n, err := strconv.Atoi(s[:end])
	return n, s[end:], err == nil
}

// Facts are what a replication connection tells about the server, learned once.
type Facts struct {
	// SystemID is pg_control's system identifier; SystemIDString as the server
	// prints it (the repository records it so).
	SystemID       uint64
	SystemIDString string
	// Timeline and XLogPos are the server's current timeline and WAL position
	// (flush position on a primary, replay position on a standby).
	Timeline uint32
	XLogPos  uint64
	Version  Version
	// SegSize is wal_segment_size in bytes.
	SegSize uint64
	// WALLevel is minimal, replica or logical.
	WALLevel string
	// InRecovery is set on a standby (a server in recovery).
	InRecovery bool
}

// Identify learns the facts over a replication connection: IDENTIFY_SYSTEM and
// SHOW (allowed on replication connections since PostgreSQL 10).
func Identify(ctx context.Context, conn *pgconn.PgConn) (Facts, error) {
	var f Facts
	sys, err := pglogrepl.IdentifySystem(ctx, conn)
	if err != nil {
		return f, fmt.Errorf("IDENTIFY_SYSTEM: %w", err)
	}
	if f.SystemID, err = strconv.ParseUint(sys.SystemID, 10, 64); err != nil {
		return f, fmt.Errorf("IDENTIFY_SYSTEM: system identifier %q: %w", sys.SystemID, err)
	}
	f.SystemIDString = sys.SystemID
	f.Timeline, f.XLogPos = uint32(sys.Timeline), uint64(sys.XLogPos)
	if f.Version, err = VersionOf(conn); err != nil {
		return f, err
	}
	if f.WALLevel, err = Show(ctx, conn, "wal_level"); err != nil {
		return f, err
	}
	size, err := Show(ctx, conn, "wal_segment_size")
	if err != nil {
		return f, err
	}
	if f.SegSize, err = parseSize(size); err != nil {
		return f, fmt.Errorf("cannot parse wal_segment_size %q", size)
	}
	if f.InRecovery, err = inRecovery(ctx, conn, f.Version.Major); err != nil {
		return f, err
	}
	return f, nil
}

// inRecovery tells a standby from a primary over a replication connection,
// where pg_is_in_recovery() cannot be called. PostgreSQL 14 and later report
// in_hot_standby. On 13, a walsender's SHOW transaction_read_only is on during
// recovery, and otherwise only when default_transaction_read_only is on, so a
// primary with that default cannot be told from a standby there; it counts as a
// primary.
func inRecovery(ctx context.Context, conn *pgconn.PgConn, major int) (bool, error) {
	if major >= 14 {
		v, err := Show(ctx, conn, "in_hot_standby")
		return v == "on", err
	}
	ro, err := Show(ctx, conn, "transaction_read_only")
	if err != nil || ro != "on" {
		return false, err
	}
	def, err := Show(ctx, conn, "default_transaction_read_only")
	return def == "off", err
}

// Show runs SHOW name and returns the value.
func Show(ctx context.Context, c *pgconn.PgConn, name string) (string, error) {
	res, err := c.Exec(ctx, "SHOW "+name).ReadAll()
	if err != nil {
		return "", fmt.Errorf("SHOW %s: %w", name, err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) != 1 {
		return "", fmt.Errorf("SHOW %s: unexpected result", name)
	}
	return string(res[0].Rows[0][0]), nil
}

// parseSize reads a size as SHOW prints it ("16MB", "1GB", "8192").
func parseSize(v string) (uint64, error) {
	num := strings.TrimRight(v, "kMGTB")
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return 0, err
	}
	switch strings.TrimPrefix(v, num) {
	case "kB":
		n <<= 10
	case "MB":
		n <<= 20
	case "GB":
		n <<= 30
	case "", "B":
	default:
		return 0, fmt.Errorf("unknown unit")
	}
	return n, nil
}
