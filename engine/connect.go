package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// ConnectReplication opens a physical replication connection with a libpq
// connection string or URI; libpq's environment variables (PGHOST, PGUSER,
// PGPASSWORD, PGSSLMODE, ...) apply as in psql.
func ConnectReplication(ctx context.Context, conn string) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig(conn)
	if err != nil {
		return nil, fmt.Errorf("connection string: %w", err)
	}
	cfg.RuntimeParams["replication"] = "true"
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "pgward"
	}
	c, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, explainConnectError(cfg, err)
	}
	return c, nil
}

// explainConnectError turns the usual refusals into a sentence a DBA can act on.
func explainConnectError(cfg *pgconn.Config, err error) error {
	where := fmt.Sprintf("%s:%d as %q", cfg.Host, cfg.Port, cfg.User)
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		msg := pe.Message
		switch {
		case strings.Contains(msg, "must be superuser or replication role"),
			strings.Contains(msg, "permission denied to start WAL sender"):
			return fmt.Errorf("connecting to %s: the role lacks the REPLICATION attribute; run ALTER ROLE %s REPLICATION on the server: %w", where, cfg.User, err)
		case strings.Contains(msg, "exceeds max_wal_senders (currently 0)"):
			return fmt.Errorf("connecting to %s: the server allows no replication connections (max_wal_senders = 0, usually because wal_level = minimal); set wal_level = replica and max_wal_senders > 0 and restart it: %w", where, err)
		case strings.Contains(msg, "no pg_hba.conf entry for replication"):
			return fmt.Errorf("connecting to %s: pg_hba.conf has no 'replication' line for this role and host; add one and reload: %w", where, err)
		}
	}
	// pgconn lists every address it tried, one per line; the last says why.
	lines := strings.Split(strings.TrimSpace(err.Error()), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	if i := strings.LastIndex(last, ": "); i >= 0 && len(lines) > 1 {
		last = last[i+2:]
	}
	return fmt.Errorf("connecting to %s: %s; check that the server is running and that --conn (or PGHOST/PGPORT) points at it", where, last)
}

// showSetting runs SHOW over a replication connection (allowed there since
// PostgreSQL 10).
func showSetting(ctx context.Context, c *pgconn.PgConn, name string) (string, error) {
	res, err := c.Exec(ctx, "SHOW "+name).ReadAll()
	if err != nil {
		return "", fmt.Errorf("SHOW %s: %w", name, err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) != 1 {
		return "", fmt.Errorf("SHOW %s: unexpected result", name)
	}
	return string(res[0].Rows[0][0]), nil
}

// WALSegmentSize reads wal_segment_size, which SHOW prints with a unit
// ("16MB", "1GB").
func WALSegmentSize(ctx context.Context, c *pgconn.PgConn) (uint64, error) {
	v, err := showSetting(ctx, c, "wal_segment_size")
	if err != nil {
		return 0, err
	}
	num := strings.TrimRight(v, "kMGTB")
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cannot parse wal_segment_size %q", v)
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
		return 0, fmt.Errorf("cannot parse wal_segment_size %q", v)
	}
	return n, nil
}
