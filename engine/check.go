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
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgward/pgward/internal/cmdline"
	"github.com/pgward/pgward/internal/pgserver"
	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/restore"
)

// CheckOptions configures Check.
type CheckOptions struct {
	Cluster string
	// Conn is a libpq connection string or URI; a normal (not replication)
	// connection is opened.
	Conn string
	// Timeout bounds the wait for the switched segment (default 60 s).
	Timeout time.Duration
	// Program is the pgward executable named in a suggested archive_command
	// (default "pgward").
	Program string
	Log     *slog.Logger
}

// CheckResult describes a successful check.
type CheckResult struct {
	// Segment is the WAL file the check switched to and found archived.
	Segment          string
	SystemIdentifier string
	// Repos has one entry per repository, in the order given.
	Repos []CheckedRepo
	// Warnings are the things check could not verify (also logged).
	Warnings []string
}

// CheckedRepo is one repository's part of a successful check.
type CheckedRepo struct {
	Repo string
	// Elapsed is the time from the WAL switch until the segment was seen in
	// this repository.
	Elapsed time.Duration
}

// archiveRetries is PostgreSQL's NUM_ARCHIVE_RETRIES: the archiver tries a
// segment this many times in a row, then waits up to a minute. A full round
// of failures is a broken archive_command, not a hiccup.
const archiveRetries = 3

// checkPoll is how often the repositories and pg_stat_archiver are polled.
const checkPoll = 200 * time.Millisecond

// checkGrants is what a role other than a superuser needs for check.
const checkGrants = "GRANT pg_monitor TO %[1]s; GRANT EXECUTE ON FUNCTION pg_create_restore_point(text), pg_switch_wal() TO %[1]s"

// Check verifies that the server at o.Conn archives its WAL into every
// repository under o.Cluster. Every error is one sentence saying what is
// wrong and what to do.
func Check(ctx context.Context, repos []*repo.Repo, o CheckOptions) (*CheckResult, error) {
	if len(repos) == 0 {
		return nil, errors.New("check: no repository given")
	}
	if o.Timeout <= 0 {
		o.Timeout = 60 * time.Second
	}
	if o.Program == "" {
		o.Program = "pgward"
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgconn.ParseConfig(o.Conn)
	if err != nil {
		return nil, fmt.Errorf("connection string: %w", err)
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "pgward check"
	}
	c, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, pgserver.ExplainConnectError(cfg, err)
	}
	defer c.Close(context.Background())
	s := &checkSession{c: c, o: o, repos: repos, where: fmt.Sprintf("%s:%d", cfg.Host, cfg.Port), res: &CheckResult{}}
	if err := s.checkSettings(ctx); err != nil {
		return nil, err
	}
	if err := s.checkIdentity(ctx); err != nil {
		return nil, err
	}
	if err := s.roundTrip(ctx); err != nil {
		return nil, err
	}
	s.checkContinuity(ctx)
	return s.res, nil
}

// checkContinuity warns when a restore of the newest backup to the latest point
// would stop at a gap in the archive: archiving works now, but WAL was lost
// earlier (a segment deleted, a period of failed archiving that was skipped).
func (s *checkSession) checkContinuity(ctx context.Context) {
	for _, r := range s.repos {
		_, err := restore.Prepare(ctx, []*repo.Repo{r}, restore.Request{Cluster: s.o.Cluster})
		if err != nil && !errors.Is(err, repo.ErrNoBackup) {
			s.warn(fmt.Sprintf("%s: %v", r, err))
		}
	}
}

type checkSession struct {
	c     *pgconn.PgConn
	o     CheckOptions
	repos []*repo.Repo
	where string
	role  string
	major int
	res   *CheckResult
}

func (s *checkSession) warn(msg string) {
	s.o.Log.Warn(msg)
	s.res.Warnings = append(s.res.Warnings, msg)
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

// suggestion is the archive_command line that would archive into the
// repositories being checked.
func (s *checkSession) suggestion() string {
	var specs []string
	for _, r := range s.repos {
		specs = append(specs, r.String())
	}
	line := ArchiveCommandLine(s.o.Program, specs, s.o.Cluster)
	if s.repos[0].Encrypted() {
		line += " (the repository is encrypted: also give archive-push --passphrase-file, or use --config with a file that names one)"
	}
	return line
}

func (s *checkSession) checkSettings(ctx context.Context) error {
	var err error
	if s.role, err = s.queryOne(ctx, "SELECT current_user"); err != nil {
		return fmt.Errorf("querying %s: %w", s.where, err)
	}
	v, err := pgserver.VersionOf(s.c)
	if err != nil {
		return fmt.Errorf("%s: %w", s.where, err)
	}
	s.major = v.Major
	level, err := s.show(ctx, "wal_level")
	if err != nil {
		return err
	}
	if level != "replica" && level != "logical" {
		return fmt.Errorf("wal_level is %q on %s: archiving needs wal_level = replica (or logical); set it in postgresql.conf and restart the server", level, s.where)
	}
	mode, err := s.show(ctx, "archive_mode")
	if err != nil {
		return err
	}
	if mode == "off" {
		return fmt.Errorf("archive_mode is off on %s, so the server archives no WAL: set archive_mode = on in postgresql.conf and restart the server (a reload is not enough)", s.where)
	}
	rec, err := s.queryOne(ctx, "SELECT pg_is_in_recovery()")
	if err != nil {
		return fmt.Errorf("querying %s: %w", s.where, err)
	}
	if rec == "t" {
		return fmt.Errorf("the server at %s is a standby (in recovery), where a WAL switch cannot be forced: run pgward check against the primary", s.where)
	}
	if s.major >= 15 {
		lib, err := s.show(ctx, "archive_library")
		if err != nil {
			return err
		}
		if lib != "" {
			return fmt.Errorf("archive_library is %q on %s, so the server archives through that module and not through pgward: set archive_library = '' and %s in postgresql.conf, and reload", lib, s.where, s.suggestion())
		}
	}
	cmd, err := s.show(ctx, "archive_command")
	if err != nil {
		return err
	}
	if cmd == "" || cmd == "(disabled)" {
		return fmt.Errorf("archive_command is not set on %s, so nothing is archived and WAL piles up in pg_wal: add this line to postgresql.conf and reload the server (SELECT pg_reload_conf()): %s", s.where, s.suggestion())
	}
	var specs []string
	for _, r := range s.repos {
		specs = append(specs, r.String())
	}
	warnings, err := CheckArchiveCommand(cmd, specs, s.o.Cluster)
	if err != nil {
		return fmt.Errorf("%w; to archive into the repositories checked here, use: %s", err, s.suggestion())
	}
	for _, w := range warnings {
		s.warn(w)
	}
	return nil
}

// ArchiveCommandLine is the postgresql.conf line that archives with program
// into repos under cluster, quoted for the shell and for the file.
func ArchiveCommandLine(program string, repos []string, cluster string) string {
	inv := cmdline.Invocation{Program: program, Command: "archive-push", Repos: repos, Args: []string{"%p"}}
	if cluster != "main" {
		inv.Cluster = cluster
	}
	return cmdline.Conf("archive_command", inv.Build())
}

// CheckArchiveCommand compares an archive_command with the repositories and
// cluster being checked. It returns an error naming the first difference, and
// warnings for what the command leaves to a config file or the server's
// environment, which check cannot see.
func CheckArchiveCommand(cmd string, repos []string, cluster string) (warnings []string, err error) {
	a := cmdline.Parse(cmd)
	if a.Command != "archive-push" {
		return nil, fmt.Errorf("the archive_command does not run pgward archive-push (it is %q)", cmd)
	}
	if !slices.Contains(a.Args, "%p") {
		return nil, fmt.Errorf("the archive_command does not pass the WAL file's path to archive-push: it has no %%p (it is %q)", cmd)
	}
	if len(a.Repos) > 0 {
		for _, want := range repos {
			if !slices.ContainsFunc(a.Repos, func(have string) bool { return sameRepo(have, want) }) {
				return nil, fmt.Errorf("the archive_command does not use this repository: it archives to %s, not to %s (it is %q)", strings.Join(a.Repos, ", "), want, cmd)
			}
		}
	} else {
		src := "PGWARD_REPO in the server's environment or /etc/pgward/pgward.toml"
		if a.Config != "" {
			src = "the config file " + a.Config
		}
		warnings = append(warnings, fmt.Sprintf("the archive_command takes its repositories from %s, which check cannot compare with --repo; the test segment arriving is the proof", src))
	}
	switch {
	case a.Cluster != "" && a.Cluster != cluster:
		return nil, fmt.Errorf("the archive_command archives as cluster %q, not %q (it is %q): fix its --cluster, or check with --cluster %s", a.Cluster, cluster, cmd, a.Cluster)
	case a.Cluster != "":
	case a.Config != "":
		warnings = append(warnings, fmt.Sprintf("the archive_command takes its cluster name from the config file %s (default-cluster, else \"main\"); check assumes %q", a.Config, cluster))
	case cluster != "main":
		return nil, fmt.Errorf("the archive_command gives no --cluster, so it archives as cluster \"main\", not %q (it is %q): add --cluster %s to it", cluster, cmd, cluster)
	}
	return warnings, nil
}

// sameRepo compares an archive_command's --repo with a repository location:
// URLs as text, directories after cleaning and resolving symbolic links.
func sameRepo(a, b string) bool {
	if a == b {
		return true
	}
	if strings.Contains(a, "://") || strings.Contains(b, "://") {
		return strings.TrimRight(a, "/") == strings.TrimRight(b, "/")
	}
	a, b = filepath.Clean(a), filepath.Clean(b)
	if a == b {
		return true
	}
	ra, err1 := filepath.EvalSymlinks(a)
	rb, err2 := filepath.EvalSymlinks(b)
	return err1 == nil && err2 == nil && ra == rb
}

// checkIdentity compares the repositories' record of the cluster with the
// server: archive-push refuses the WAL of another system.
func (s *checkSession) checkIdentity(ctx context.Context) error {
	sysid, err := s.queryOne(ctx, "SELECT system_identifier::text FROM pg_control_system()")
	if permissionDenied(err) {
		s.warn(fmt.Sprintf("role %q may not read the server's system identifier, so check cannot compare it with the repository's cluster %q", s.role, s.o.Cluster))
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the system identifier of %s: %w", s.where, err)
	}
	s.res.SystemIdentifier = sysid
	for _, r := range s.repos {
		id, err := r.Identity(ctx, s.o.Cluster)
		if errors.Is(err, repo.ErrNotFound) {
			s.o.Log.Debug("cluster not recorded in the repository yet; the first archived segment or backup records it", "repo", r.String(), "cluster", s.o.Cluster)
			continue
		}
		if err != nil {
			return fmt.Errorf("reading the identity of cluster %q in %s: %w", s.o.Cluster, r, err)
		}
		if id.SystemIdentifier != sysid {
			return fmt.Errorf("wrong cluster name: cluster %q in %s belongs to the PostgreSQL system %s, but this server is system %s, so archive-push refuses its WAL; give this server its own cluster name (--cluster NAME in the archive_command and in pgward's other commands)", s.o.Cluster, r, id.SystemIdentifier, sysid)
		}
		if id.PGMajor != 0 && id.PGMajor != s.major {
			return fmt.Errorf("wrong cluster name: cluster %q in %s holds PostgreSQL %d, but this server runs PostgreSQL %d, so archive-push refuses its WAL; after a major upgrade use a new cluster name (--cluster NAME in the archive_command and in pgward's other commands)", s.o.Cluster, r, id.PGMajor, s.major)
		}
	}
	return nil
}

// archiverStats is a row of pg_stat_archiver.
type archiverStats struct {
	failed                 int64
	lastArchived, archTime string
	lastFailed, failTime   string
}

func (s *checkSession) archiver(ctx context.Context) (archiverStats, error) {
	row, err := s.query(ctx, `SELECT failed_count, coalesce(last_archived_wal, ''), coalesce(date_trunc('second', last_archived_time)::text, ''),
		coalesce(last_failed_wal, ''), coalesce(date_trunc('second', last_failed_time)::text, '') FROM pg_stat_archiver`)
	if err != nil || len(row) != 5 {
		return archiverStats{}, fmt.Errorf("reading pg_stat_archiver on %s: %v", s.where, err)
	}
	var st archiverStats
	st.failed, _ = strconv.ParseInt(row[0], 10, 64)
	st.lastArchived, st.archTime, st.lastFailed, st.failTime = row[1], row[2], row[3], row[4]
	return st, nil
}

// isSegmentName reports whether a pg_stat_archiver name is a plain segment
// (not a history, backup history or partial file).
func isSegmentName(n string) bool {
	if len(n) != 24 {
		return false
	}
	_, err := hex.DecodeString(n)
	return err == nil
}

// roundTrip switches to a new segment and waits until every repository has it.
func (s *checkSession) roundTrip(ctx context.Context) error {
	base, err := s.archiver(ctx)
	if err != nil {
		return err
	}
	// A restore point writes a WAL record, so the switch below always ends a
	// segment, even on an idle server (a switch with nothing written since the
	// last one does nothing).
	if _, err := s.query(ctx, "SELECT pg_create_restore_point('pgward check')"); err != nil {
		return s.switchError(err)
	}
	seg, err := s.queryOne(ctx, "SELECT pg_walfile_name(pg_switch_wal())")
	if err != nil {
		return s.switchError(err)
	}
	start := time.Now()
	s.res.Segment = seg
	s.o.Log.Info("switched WAL, waiting for the segment to be archived", "segment", seg, "timeout", s.o.Timeout)
	deadline := start.Add(s.o.Timeout)
	elapsed := make([]time.Duration, len(s.repos))
	missing := func() []*repo.Repo {
		var out []*repo.Repo
		for i, r := range s.repos {
			if elapsed[i] == 0 {
				out = append(out, r)
			}
		}
		return out
	}
	poll := func() error {
		for i, r := range s.repos {
			if elapsed[i] != 0 {
				continue
			}
			ok, err := r.HasWAL(ctx, s.o.Cluster, seg)
			if err != nil {
				return fmt.Errorf("looking for segment %s in %s: %w", seg, r, err)
			}
			if ok {
				elapsed[i] = max(time.Since(start), time.Nanosecond)
			}
		}
		return nil
	}
	for {
		if err := poll(); err != nil {
			return err
		}
		if len(missing()) == 0 {
			break
		}
		st, err := s.archiver(ctx)
		if err != nil {
			return err
		}
		failed := st.failed - base.failed
		if failed >= archiveRetries {
			return s.failingError(ctx, seg, st, failed)
		}
		if isSegmentName(st.lastArchived) && st.lastArchived >= seg {
			// The archive_command returned 0 for the segment: look once more,
			// since it may have arrived after the poll above.
			if err := poll(); err != nil {
				return err
			}
			if m := missing(); len(m) > 0 {
				return fmt.Errorf("the server reports segment %s archived (at %s), but it is not in %s under cluster %q: the archive_command stores WAL somewhere else; compare its --repo and --cluster (or its --config file) with this check's", seg, st.archTime, m[0], s.o.Cluster)
			}
			break
		}
		if time.Now().After(deadline) {
			return s.timeoutError(ctx, seg, st, failed, missing())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for segment %s: %w", seg, ctx.Err())
		case <-time.After(checkPoll):
		}
	}
	if st, err := s.archiver(ctx); err == nil && st.failed > base.failed {
		s.warn(fmt.Sprintf("the archiver failed %d times during the check (last on %s at %s) before succeeding; see the server log", st.failed-base.failed, st.lastFailed, st.failTime))
	}
	for i, r := range s.repos {
		s.res.Repos = append(s.res.Repos, CheckedRepo{Repo: r.String(), Elapsed: elapsed[i]})
	}
	return nil
}

func (s *checkSession) switchError(err error) error {
	if permissionDenied(err) {
		return fmt.Errorf("role %q may not force a WAL switch on %s: run check as a superuser, or %s", s.role, s.where, fmt.Sprintf(checkGrants, s.role))
	}
	return fmt.Errorf("forcing a WAL switch on %s: %w", s.where, err)
}

func (s *checkSession) failingError(ctx context.Context, seg string, st archiverStats, failed int64) error {
	var b strings.Builder
	fmt.Fprintf(&b, "the archiver is failing: it has failed %d times since the check started, last on segment %s at %s", failed, st.lastFailed, st.failTime)
	if isSegmentName(st.lastFailed) && st.lastFailed < seg {
		fmt.Fprintf(&b, " (older than the check's segment %s: archiving is stuck there)", seg)
	}
	s.explainFailure(ctx, &b, seg)
	return errors.New(b.String())
}

func (s *checkSession) timeoutError(ctx context.Context, seg string, st archiverStats, failed int64, missing []*repo.Repo) error {
	var names []string
	for _, r := range missing {
		names = append(names, r.String())
	}
	last := "none"
	if st.lastArchived != "" {
		last = st.lastArchived + " at " + st.archTime
	}
	var b strings.Builder
	fmt.Fprintf(&b, "archiving is slow or stuck: segment %s was not archived to %s within %s (last archived: %s", seg, strings.Join(names, ", "), s.o.Timeout, last)
	if n, err := s.queryOne(ctx, "SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'"); err == nil {
		fmt.Fprintf(&b, "; files waiting to be archived: %s", n)
	}
	b.WriteString(")")
	if failed > 0 {
		fmt.Fprintf(&b, "; the archiver failed %d times meanwhile, last on %s at %s", failed, st.lastFailed, st.failTime)
		s.explainFailure(ctx, &b, seg)
	} else {
		b.WriteString("; a slow archive_command or a long backlog keeps it busy: see pg_stat_archiver and the server log")
	}
	return errors.New(b.String())
}

// explainFailure adds what is known about why the archive_command fails: a
// permission problem on a local repository, and its own error from the server
// log when the server lets check read it.
func (s *checkSession) explainFailure(ctx context.Context, b *strings.Builder, seg string) {
	perm := s.permissionProblem(ctx, seg)
	logLine := s.archiveErrorFromLog(ctx)
	if perm != "" {
		b.WriteString("; permission denied on the repository: " + perm)
	}
	if logLine != "" {
		b.WriteString("; the server log says: " + logLine)
	}
	if perm == "" && logLine == "" {
		b.WriteString("; the archive_command's error is in the server log (look for \"archive command failed\")")
	}
}

// archiveErrorFromLog reads the tail of the server's current log file (this
// needs the logging collector and superuser or pg_read_server_files) and
// returns the archive_command's error.
func (s *checkSession) archiveErrorFromLog(ctx context.Context) string {
	row, err := s.query(ctx, `SELECT pg_read_binary_file(f, greatest((pg_stat_file(f)).size - 65536, 0), 65536) FROM pg_current_logfile() AS f WHERE f IS NOT NULL`)
	if err != nil || len(row) != 1 {
		if err != nil {
			s.o.Log.Debug("cannot read the server log", "err", err)
		}
		return ""
	}
	text, err := hex.DecodeString(strings.TrimPrefix(row[0], `\x`))
	if err != nil {
		return ""
	}
	return ArchiveFailureFromLog(string(text))
}

// ArchiveFailureFromLog picks the archive_command's own error out of a server
// log: the last line pgward printed ("pgward: ...") before PostgreSQL's last
// "archive command failed" line, else that line itself.
func ArchiveFailureFromLog(log string) string {
	lines := strings.Split(log, "\n")
	last := -1
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], "archive command failed") {
			last = i
			break
		}
	}
	if last < 0 {
		return ""
	}
	clip := func(s string) string {
		s = strings.TrimSpace(s)
		if len(s) > 500 {
			s = s[:500] + "..."
		}
		return s
	}
	for i := last - 1; i >= 0 && i >= last-20; i-- {
		if strings.Contains(lines[i], "archive command failed") {
			break
		}
		if j := strings.Index(lines[i], "pgward: "); j >= 0 {
			return clip(lines[i][j:])
		}
	}
	return clip(lines[last])
}

// permissionProblem judges, from owners and mode bits, whether the server's
// OS user (the owner of its data directory) can write WAL into each local
// repository. It says nothing when it cannot tell: the data directory is not
// readable, or it is not on this machine.
func (s *checkSession) permissionProblem(ctx context.Context, seg string) string {
	dataDir, err := s.queryOne(ctx, "SHOW data_directory")
	if err != nil {
		s.o.Log.Debug("cannot read data_directory; skipping the permission check", "err", err)
		return ""
	}
	fi, err := os.Stat(dataDir)
	if err != nil {
		return ""
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	// The same path on another machine would mislead: when pg_control is
	// readable, its system identifier must be this server's.
	if b, err := os.ReadFile(filepath.Join(dataDir, "global", "pg_control")); err == nil && len(b) >= 8 && s.res.SystemIdentifier != "" {
		if strconv.FormatUint(binary.LittleEndian.Uint64(b), 10) != s.res.SystemIdentifier {
			return ""
		}
	}
	uid := int(st.Uid)
	uname := strconv.Itoa(uid)
	gids := []int{int(st.Gid)}
	if u, err := user.LookupId(uname); err == nil {
		uname = u.Username
		if gs, err := u.GroupIds(); err == nil {
			for _, g := range gs {
				if n, err := strconv.Atoi(g); err == nil {
					gids = append(gids, n)
				}
			}
		}
	}
	var problems []string
	for _, r := range s.repos {
		d, ok := repo.As[interface{ Dir() string }](r.Storage())
		if !ok {
			continue
		}
		if p := AccessProblem(d.Dir(), s.o.Cluster, seg, uid, gids, uname); p != "" {
			problems = append(problems, p)
		}
	}
	return strings.Join(problems, "; ")
}

// AccessProblem explains why the user uid (in groups gids, named uname) cannot
// archive segment seg of cluster into the local repository at dir, judging by
// owners and mode bits; "" when they allow it. It needs search on every
// directory down to the repository, read on its config, and write and search
// on the deepest existing directory of the segment's path.
func AccessProblem(dir, cluster, seg string, uid int, gids []int, uname string) string {
	if uid == 0 {
		return ""
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return ""
	}
	fix := fmt.Sprintf("make the repository writable by %s (e.g. chown -R %s %s)", uname, uname, dir)
	// Every directory above the repository must be searchable.
	var ancestors []string
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		ancestors = append(ancestors, d)
		if d == filepath.Dir(d) {
			break
		}
	}
	for i := len(ancestors) - 1; i >= 0; i-- {
		fi, err := os.Stat(ancestors[i])
		if err != nil {
			return ""
		}
		if !allowed(fi, uid, gids, 1) {
			return fmt.Sprintf("%s cannot reach %s: %s is %s", uname, dir, ancestors[i], describe(fi))
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return ""
	}
	if !allowed(fi, uid, gids, 5) {
		return fmt.Sprintf("%s cannot read %s, which is %s; %s", uname, dir, describe(fi), fix)
	}
	if cfi, err := os.Stat(filepath.Join(dir, "config")); err == nil && !allowed(cfi, uid, gids, 4) {
		return fmt.Sprintf("%s cannot read %s, which is %s; %s", uname, filepath.Join(dir, "config"), describe(cfi), fix)
	}
	// Walk down the segment's directory; the deepest existing one gets the
	// temp file (or the next directory).
	deepest, dfi := dir, fi
	rel := filepath.Join("clusters", cluster, "wal")
	if len(seg) >= 16 {
		rel = filepath.Join(rel, seg[:16])
	}
	cur := dir
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		cur = filepath.Join(cur, part)
		fi, err := os.Stat(cur)
		if err != nil {
			break
		}
		if !allowed(dfi, uid, gids, 1) {
			return fmt.Sprintf("%s cannot enter %s, which is %s; %s", uname, deepest, describe(dfi), fix)
		}
		deepest, dfi = cur, fi
	}
	if !allowed(dfi, uid, gids, 3) {
		return fmt.Sprintf("%s cannot write into %s, which is %s; %s", uname, deepest, describe(dfi), fix)
	}
	return ""
}

// allowed applies the owner, group and other mode bits (want: 4 read, 2 write,
// 1 search, combined) for a user other than root.
func allowed(fi os.FileInfo, uid int, gids []int, want uint32) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	perm := uint32(fi.Mode().Perm())
	switch {
	case int(st.Uid) == uid:
		perm >>= 6
	case slices.Contains(gids, int(st.Gid)):
		perm >>= 3
	}
	return perm&want == want
}

// describe names a file's owner, group and mode.
func describe(fi os.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Sprintf("mode %04o", fi.Mode().Perm())
	}
	owner, group := strconv.Itoa(int(st.Uid)), strconv.Itoa(int(st.Gid))
	if u, err := user.LookupId(owner); err == nil {
		owner = u.Username
	}
	if g, err := user.LookupGroupId(group); err == nil {
		group = g.Name
	}
	return fmt.Sprintf("owned by %s:%s with mode %04o", owner, group, fi.Mode().Perm())
}
