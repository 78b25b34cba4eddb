package engine

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgward/pgward/internal/pgserver"
)

// Backups from a standby.
//
// BASE_BACKUP works on a hot standby as on a primary, with two differences
// that matter here: the server cannot write a checkpoint (the backup starts at
// its last restartpoint) nor switch WAL at the end (the stop position is the
// last record it replayed), and it waits for nothing to be archived. Neither
// changes what pgward stores: the backup carries the WAL from its start to its
// stop (the WAL option), so it is consistent with no archive at all, and
// recovery past its stop reads the primary's archive, which holds the same WAL
// (one system identifier, one timeline history).
//
// With --backup-standby on or prefer the primary is asked too, over its own
// replication connection, to check that the standby belongs to it (same system
// identifier) and follows it (same timeline): a standby of another cluster, or
// one left behind on an old timeline after a failover, would store a backup
// that restores to the wrong place. With prefer, a standby that cannot be used
// (unreachable, not in recovery, on another timeline) is a warning and the
// primary is backed up instead; another cluster is always an error.

// Standby modes of BackupOptions.Standby.
const (
	StandbyOff    = "off"
	StandbyOn     = "on"
	StandbyPrefer = "prefer"
)

// source is the server a backup is taken from.
type sourceServer struct {
	conn    *pgconn.PgConn
	facts   pgserver.Facts
	connStr string
}

// connectSource opens the replication connection the backup is taken over:
// o.Conn, unless o.Standby says to check it against the primary at
// o.PrimaryConn (and, with prefer, to fall back to the primary).
func connectSource(ctx context.Context, o BackupOptions) (*sourceServer, error) {
	switch o.Standby {
	case "", StandbyOff:
		if o.PrimaryConn != "" {
			return nil, fmt.Errorf("--primary-conn is used only with --backup-standby on or prefer")
		}
		s, err := connectServer(ctx, o.Conn)
		if err == nil && s.facts.InRecovery {
			o.Log.Info("the server at --conn is a standby: the backup is taken from it (--backup-standby on with --primary-conn also checks it against its primary)")
		}
		return s, err
	case StandbyOn, StandbyPrefer:
	default:
		return nil, fmt.Errorf("--backup-standby %q: use off, on or prefer", o.Standby)
	}
	if o.PrimaryConn == "" {
		return nil, fmt.Errorf("--backup-standby %s needs --primary-conn, the connection string of the primary the standby at --conn follows", o.Standby)
	}
	primary, err := connectServer(ctx, o.PrimaryConn)
	if err != nil {
		return nil, fmt.Errorf("--primary-conn: %w", err)
	}
	if primary.facts.InRecovery {
		primary.close(ctx)
		return nil, fmt.Errorf("the server at --primary-conn is in recovery (a standby itself); point --primary-conn at the primary")
	}
	standby, why, err := usableStandby(ctx, o.Conn, primary.facts)
	if err != nil {
		primary.close(ctx)
		return nil, err
	}
	if why == "" {
		primary.close(ctx)
		o.Log.Info("backing up the standby", "system_identifier", standby.facts.SystemIDString, "timeline", standby.facts.Timeline)
		return standby, nil
	}
	if o.Standby == StandbyOn {
		primary.close(ctx)
		return nil, fmt.Errorf("--backup-standby on: %s; fix the standby, or use --backup-standby prefer to back up the primary when it cannot be used", why)
	}
	o.Log.Warn("--backup-standby prefer: backing up the primary because the standby cannot be used: " + why)
	return primary, nil
}

// usableStandby connects to the standby and checks it against the primary's
// facts. why says why it cannot be used (a fallback reason); err is a refusal
// that no fallback makes right.
func usableStandby(ctx context.Context, conn string, primary pgserver.Facts) (s *sourceServer, why string, err error) {
	s, err = connectServer(ctx, conn)
	if err != nil {
		return nil, fmt.Sprintf("the standby at --conn cannot be reached (%v)", err), nil
	}
	f := s.facts
	switch {
	case f.SystemIDString != primary.SystemIDString:
		s.close(ctx)
		return nil, "", fmt.Errorf("the server at --conn (system identifier %s) is not a standby of the primary at --primary-conn (system identifier %s); they are different clusters", f.SystemIDString, primary.SystemIDString)
	case !f.InRecovery:
		why = "the server at --conn is not in recovery (not a standby; promoted?)"
	case f.Timeline != primary.Timeline:
		why = fmt.Sprintf("the standby is on timeline %d but the primary on %d (it has not followed the primary's promotion)", f.Timeline, primary.Timeline)
	case f.Version.Major != primary.Version.Major:
		why = fmt.Sprintf("the standby runs PostgreSQL %d but the primary %d", f.Version.Major, primary.Version.Major)
	}
	if why != "" {
		s.close(ctx)
		return nil, why, nil
	}
	return s, "", nil
}

func connectServer(ctx context.Context, conn string) (*sourceServer, error) {
	c, err := pgserver.ConnectReplication(ctx, conn, "pgward")
	if err != nil {
		return nil, err
	}
	f, err := pgserver.Identify(ctx, c)
	if err != nil {
		c.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return &sourceServer{conn: c, facts: f, connStr: conn}, nil
}

func (s *sourceServer) close(ctx context.Context) { s.conn.Close(context.WithoutCancel(ctx)) }

// catalogConn is the ordinary connection a backup lists the databases on (for the
// manifest: restore --db-include). It is opened in the background when the backup
// starts, so that the end of the backup, which every commit waits for, pays for a
// query and not for a new backend (and, under sslmode=prefer, a second one after
// the server declines TLS).
type catalogConn struct {
	connStr string
	// ctx is the backup's, canceled by close: a listing still running when a failed
	// backup returns stops there.
	ctx    context.Context
	cancel context.CancelFunc
	ready  chan struct{}
	// mu is held while the connection is in use and by close: a PgConn is not safe
	// for concurrent use.
	mu  sync.Mutex
	cat *pgserver.Catalog // nil when opening it failed, or closed
}

func openCatalog(ctx context.Context, connStr string) *catalogConn {
	cctx, cancel := context.WithCancel(ctx)
	c := &catalogConn{connStr: connStr, ctx: cctx, cancel: cancel, ready: make(chan struct{})}
	go func() {
		defer close(c.ready)
		c.cat, _ = pgserver.OpenCatalog(cctx, connStr)
	}()
	return c
}

// databases lists the databases. When the early connection failed or was lost
// during a long backup (idle_session_timeout, a restart), it tries once more on
// a new one; a server that refuses the query costs the names, not the backup.
func (c *catalogConn) databases(log *slog.Logger) []pgserver.Database {
	select {
	case <-c.ready:
	case <-c.ctx.Done():
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx.Err() != nil {
		return nil
	}
	if c.cat != nil {
		if dbs, err := c.cat.Databases(c.ctx); err == nil {
			return dbs
		}
	}
	dbs, err := pgserver.Databases(c.ctx, c.connStr)
	if err != nil {
		log.Warn("the backup does not record the database names (restore --db-include will take database OIDs): listing them over an ordinary connection failed", "error", err)
		return nil
	}
	return dbs
}

// close ends the connection, or the attempt to make it, and a listing under way.
func (c *catalogConn) close(ctx context.Context) {
	c.cancel()
	<-c.ready
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cat != nil {
		c.cat.Close(ctx)
		c.cat = nil
	}
}
