package receive

import (
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// FatalError stops the receiver: retrying cannot help (the server no longer has
// the WAL, the slot is gone, the credentials are refused, another cluster answers,
// the archive holds other bytes under a segment's name). The CLI exits with its own
// status for it, so that a supervisor does not restart into the same wall.
type FatalError struct{ Err error }

func (e *FatalError) Error() string { return e.Err.Error() }
func (e *FatalError) Unwrap() error { return e.Err }

func fatal(format string, args ...any) error {
	return &FatalError{fmt.Errorf(format, args...)}
}

// fatalStates are the SQLSTATEs of server errors that reconnecting cannot cure,
// with what they mean for the receiver. Everything else (connection failures, a
// server starting up or shutting down, too many connections, a slot still held by
// a dying connection) is retried with backoff. Classifying by SQLSTATE rather than
// by message text keeps working whatever lc_messages the server runs with.
var fatalStates = map[string]string{
	"58P01": "the server has already removed WAL the receiver needs, so the archive would have a gap; take a new backup, and use a replication slot (--slot NAME --create-slot) so that the server keeps WAL until it is received",
	"42704": "the replication slot does not exist on the server; create it (--create-slot) or fix --slot",
	"28000": "the server refuses the connection (pg_hba.conf or the role); fix the access, then restart the receiver",
	"28P01": "the server refuses the password; fix the credentials, then restart the receiver",
	"42501": "the role may not stream WAL; give it the REPLICATION attribute (ALTER ROLE ... REPLICATION)",
	"3D000": "the server does not know the database in the connection string",
}

// classify turns a session's error into a FatalError when the server's SQLSTATE
// says that retrying is useless; other errors are returned as they are.
func classify(err error) error {
	var fe *FatalError
	if err == nil || errors.As(err, &fe) {
		return err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		if meaning, ok := fatalStates[pe.Code]; ok {
			return &FatalError{fmt.Errorf("wal-receive stopped: %s (server said: %s, SQLSTATE %s)", meaning, pe.Message, pe.Code)}
		}
	}
	return err
}

// backoff is the wait between reconnection attempts: doubling from min to max,
// back to min only after a session that streamed for a healthy stretch, so that a
// server that accepts and then drops every connection is not hammered.
type backoff struct {
	min, max, healthy time.Duration
	cur               time.Duration
}

func newBackoff() *backoff {
	return &backoff{min: time.Second, max: 30 * time.Second, healthy: time.Minute, cur: time.Second}
}

// next returns how long to wait after a session that streamed for streamed.
func (b *backoff) next(streamed time.Duration) time.Duration {
	if streamed >= b.healthy {
		b.cur = b.min
	}
	wait := b.cur
	b.cur = min(2*b.cur, b.max)
	return wait
}
