// Package pgserver is what pgward knows of a running PostgreSQL server: how to
// open a replication connection, the server's facts (system identifier, version,
// WAL segment size, timeline), learned once per connection into one struct, and
// what the server's refusals mean. It sits below engine and wal, so that the backup
// engine and the streaming receiver learn the same facts the same way.
//
// Invariants:
//   - Server errors are classified by SQLSTATE, never by message text: servers run
//     with any lc_messages.
//   - The version comes from the server_version parameter every connection reports
//     at start, so a normal and a replication connection agree without a query.
//   - A replication connection is read through Frames (frames.go): 256 KiB per
//     read, and never two messages in one Read, so that a base backup's CopyData
//     payloads can be taken past pgproto3 without it holding bytes read ahead.
package pgserver

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// ConnectReplication opens a physical replication connection with a libpq
// connection string or URI; libpq's environment variables (PGHOST, PGUSER,
// PGPASSWORD, PGSSLMODE, ...) apply as in psql. appName is the
// application_name unless the string sets one.
func ConnectReplication(ctx context.Context, conn, appName string) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig(conn)
	if err != nil {
		return nil, fmt.Errorf("connection string: %w", err)
	}
	cfg.RuntimeParams["replication"] = "true"
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = appName
	}
	var frames *Frames
	cfg.BuildFrontend = replicationFrontend(func(f *Frames) { frames = f })
	c, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, ExplainConnectError(cfg, err)
	}
	c.CustomData()[framesKey] = frames
	return c, nil
}

// SQLSTATEs of the refusals a connection meets.
const (
	codeInsufficientPrivilege = "42501"
	codeInvalidAuthorization  = "28000"
	codeInvalidPassword       = "28P01"
	codeTooManyConnections    = "53300"
)

// ExplainConnectError turns the usual refusals into a sentence a DBA can act on.
// The original error stays wrapped (its *pgconn.PgError included).
func ExplainConnectError(cfg *pgconn.Config, err error) error {
	where := fmt.Sprintf("%s:%d as %q", cfg.Host, cfg.Port, cfg.User)
	replication := cfg.RuntimeParams["replication"] != ""
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == codeInsufficientPrivilege && replication:
			return fmt.Errorf("connecting to %s: the role lacks the REPLICATION attribute; run ALTER ROLE %s REPLICATION on the server: %w", where, cfg.User, err)
		case pe.Code == codeTooManyConnections && replication:
			return fmt.Errorf("connecting to %s: the server accepts no more replication connections (max_wal_senders is used up, or 0 because wal_level = minimal); raise max_wal_senders (wal_level = replica) and restart it: %w", where, err)
		case pe.Code == codeInvalidAuthorization && replication:
			return fmt.Errorf("connecting to %s: the server refuses the replication connection (pg_hba.conf needs a 'replication' line for this role and host, and a reload): %w", where, err)
		case pe.Code == codeInvalidAuthorization || pe.Code == codeInvalidPassword:
			return fmt.Errorf("connecting to %s: the server refuses the login (pg_hba.conf or the password): %w", where, err)
		}
	}
	// pgconn lists every address it tried, one per line; the last says why.
	lines := strings.Split(strings.TrimSpace(err.Error()), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	if i := strings.LastIndex(last, ": "); i >= 0 && len(lines) > 1 {
		last = last[i+2:]
	}
	return fmt.Errorf("connecting to %s: %s; check that the server is running and that --conn (or PGHOST/PGPORT) points at it: %w", where, last, err)
}
