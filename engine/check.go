package engine

// pgward check: prove that WAL archiving into the repositories works, and when
// it does not, say why in terms a DBA can act on.
//
// The order of the steps is the order in which a broken setup usually fails,
// so the first error is the one to fix first:
//
//  1. the server's settings (wal_level, archive_mode, archive_library,
//     archive_command and what the command names: archive-push, %p, each
//     repository, the cluster name);
//  2. the repository's record of the cluster (its system identifier and major
//     version must be this server's, or archive-push refuses every segment);
//  3. a real round trip: a restore point (so that an idle server has WAL to
//     switch), pg_switch_wal(), and polling every repository until the
//     segment is there. Meanwhile pg_stat_archiver tells whether the archiver
//     is failing; since the archive_command's own error is only in the server
//     log, check reads the log when the server lets it, and for a local
//     repository compares its owners and modes with the server's OS user.
//
// Check changes nothing but the server's WAL position (one segment switch and
// a restore point named "pgward check").

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgward/pgward/internal/pgserver"
	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/restore"
)

// CheckOptions configures Check.
type CheckOptions struct {
	Cluster string
	// Conn is a libpq connection string or URI; a normal (not replication)
	// connection is opened, and a replication one to check the backups' access.
	Conn string
	// Open opens the repositories; its failure is a failed check, not the end of check.
	Open func(context.Context) ([]*repo.Repo, error)
	// Config is the config file check runs with: an archive_command naming the same file
	// archives where check looks.
	Config string
	// Timeout bounds the wait for the switched segment (default 60 s).
	Timeout time.Duration
	// Program is the pgward executable named in a suggested archive_command
	// (default "pgward").
	Program string
	// MaxBackupAge is how old the newest backup may be before check warns (default 7 days).
	MaxBackupAge time.Duration
	Log          *slog.Logger
}

// CheckResult is the checklist, and what the round trip measured.
type CheckResult struct {
	Items []CheckItem `json:"checks"`
	// Segment is the WAL file the check switched to.
	Segment          string `json:"segment,omitempty"`
	SystemIdentifier string `json:"system_identifier,omitempty"`
	// Repos has one entry per repository that received the segment.
	Repos []CheckedRepo `json:"repos,omitempty"`
}

// CheckedRepo is one repository's part of the round trip.
type CheckedRepo struct {
	Repo string `json:"repo"`
	// Elapsed is the time from the WAL switch until the segment was seen in
	// this repository.
	Elapsed time.Duration `json:"-"`
	Seconds float64       `json:"seconds"`
}

// archiveRetries is PostgreSQL's NUM_ARCHIVE_RETRIES: the archiver tries a
// segment this many times in a row, then waits up to a minute. A full round
// of failures is a broken archive_command, not a hiccup.
const archiveRetries = 3

// checkPoll is how often the repositories and pg_stat_archiver are polled.
const checkPoll = 200 * time.Millisecond

// checkGrants is what a role other than a superuser needs for check.
const checkGrants = "GRANT pg_monitor TO %[1]s; GRANT EXECUTE ON FUNCTION pg_create_restore_point(text), pg_switch_wal() TO %[1]s"

// Check runs the checklist: the repositories, the server's access and settings, and a real
// archive round trip, each on its own line. Every failure is one sentence saying what is
// wrong and what to do. The error is only for check itself failing to run.
func Check(ctx context.Context, o CheckOptions) (*CheckResult, error) {
	if o.Timeout <= 0 {
		o.Timeout = 60 * time.Second
	}
	if o.Program == "" {
		o.Program = "pgward"
	}
	if o.MaxBackupAge <= 0 {
		o.MaxBackupAge = 7 * 24 * time.Hour
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	s := &checkSession{o: o, res: &CheckResult{}}
	cfg, err := pgconn.ParseConfig(o.Conn)
	if err != nil {
		return nil, fmt.Errorf("connection string: %w", err)
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "pgward check"
	}
	s.where = fmt.Sprintf("%s:%d", cfg.Host, cfg.Port)
	c, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		s.res.add("connection", CheckFailed, pgserver.ExplainConnectError(cfg, err).Error(), "")
		s.res.skip("needs a connection to the server", serverChecks...)
		if s.checkRepos(ctx) {
			s.checkBackups(ctx)
			s.checkFreeSpace()
		}
		return s.res, nil
	}
	defer c.Close(context.Background())
	s.c = c
	if err := s.identifyRole(ctx); err != nil {
		s.res.add("connection", CheckFailed, err.Error(), "")
		return s.res, nil
	}
	s.res.add("connection", CheckOK, fmt.Sprintf("%s as role %s, PostgreSQL %d", s.where, s.role, s.major), "")
	s.runChecks(ctx)
	return s.res, nil
}

// checkContinuity warns when a restore of the newest backup to the latest point
// would stop at a gap in the archive: archiving works now, but WAL was lost
// earlier (a segment deleted, a period of failed archiving that was skipped).
func (s *checkSession) checkContinuity(ctx context.Context) {
	var problems []string
	for _, r := range s.repos {
		_, err := restore.Prepare(ctx, []*repo.Repo{r}, restore.Request{Cluster: s.o.Cluster})
		if err != nil && !errors.Is(err, repo.ErrNoBackup) {
			problems = append(problems, fmt.Sprintf("%s: %v", r, err))
		}
	}
	if len(problems) > 0 {
		s.res.add("WAL continuity", CheckWarning, strings.Join(problems, "; "), "")
		return
	}
	s.res.add("WAL continuity", CheckOK, "the newest backup reaches the newest archived WAL without a gap", "")
}

type checkSession struct {
	c *pgconn.PgConn
	// walLevel and archiveMode are what the server said, for the checklist.
	walLevel, archiveMode string
	// roundTripWarning notes archiver failures during a round trip that then succeeded.
	roundTripWarning string
	o                CheckOptions
	repos            []*repo.Repo
	where            string
	role             string
	major            int
	res              *CheckResult
}

// query runs one statement (simple protocol) and returns its first row as
// text, a NULL as ""; no row gives nil.
func (s *checkSession) query(ctx context.Context, sql string) ([]string, error) {
	res, err := s.c.Exec(ctx, sql).ReadAll()
	if err != nil {
		return nil, err
	}
	if len(res) == 0 || len(res[0].Rows) == 0 {
		return nil, nil
	}
	row := res[0].Rows[0]
	out := make([]string, len(row))
	for i, v := range row {
		out[i] = string(v)
	}
	return out, nil
}

func (s *checkSession) queryOne(ctx context.Context, sql string) (string, error) {
	row, err := s.query(ctx, sql)
	if err != nil {
		return "", err
	}
	if len(row) != 1 {
		return "", fmt.Errorf("%s: expected one value, got %d", sql, len(row))
	}
	return row[0], nil
}

func permissionDenied(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42501"
}

// show reads a setting; a role that may not read it is told which grant it
// needs.
func (s *checkSession) show(ctx context.Context, name string) (string, error) {
	v, err := s.queryOne(ctx, "SHOW "+name)
	if permissionDenied(err) {
		return "", fmt.Errorf("role %q may not read %s on %s: run check as a superuser, or %s", s.role, name, s.where, fmt.Sprintf(checkGrants, s.role))
	}
	if err != nil {
		return "", fmt.Errorf("reading %s on %s: %w", name, s.where, err)
	}
	return v, nil
}
