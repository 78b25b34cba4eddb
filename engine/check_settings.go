package engine

// The SQL preflight of check: the server's settings and the repositories'
// record of the cluster, before any WAL is switched.

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/pgward/pgward/internal/pgserver"
	"github.com/pgward/pgward/repo"
)

// suggestion is the archive_command line that would archive into the
// repositories being checked.
func (s *checkSession) suggestion() string {
	var specs []string
	for _, r := range s.repos {
		specs = append(specs, r.String())
	}
	line := ArchiveCommandLine(s.o.Program, specs, s.o.Cluster)
	if len(s.repos) == 0 {
		return line
	}
	if s.repos[0].Encrypted() {
		line += " (the repository is encrypted: also give archive-push --passphrase-file, or use --config with a file that names one)"
	}
	return line
}

// identifyRole learns the role and the server's major version.
func (s *checkSession) identifyRole(ctx context.Context) error {
	var err error
	if s.role, err = s.queryOne(ctx, "SELECT current_user"); err != nil {
		return fmt.Errorf("querying %s: %w", s.where, err)
	}
	v, err := pgserver.VersionOf(s.c)
	if err != nil {
		return fmt.Errorf("%s: %w", s.where, err)
	}
	s.major = v.Major
	return nil
}

// checkReplication opens a replication connection as backups and wal-receive do: the
// role needs the REPLICATION attribute and pg_hba.conf a replication line.
func (s *checkSession) checkReplication(ctx context.Context) {
	rc, err := pgserver.ConnectReplication(ctx, s.o.Conn, "pgward check")
	if err != nil {
		s.res.add("replication connection", CheckFailed, err.Error()+" (backups and wal-receive need it; archiving does not)", "")
		return
	}
	defer rc.Close(context.Background())
	if _, err := pgserver.Identify(ctx, rc); err != nil {
		s.res.add("replication connection", CheckFailed, err.Error(), "")
		return
	}
	s.res.add("replication connection", CheckOK, "role "+s.role+" may stream base backups and WAL", "")
}

// checkPrimary: a standby cannot be made to switch WAL, so the round trip needs the primary.
func (s *checkSession) checkPrimary(ctx context.Context) bool {
	rec, err := s.queryOne(ctx, "SELECT pg_is_in_recovery()")
	switch {
	case err != nil:
		s.res.add("server is a primary", CheckFailed, fmt.Sprintf("querying %s: %v", s.where, err), "")
		return false
	case rec == "t":
		s.res.add("server is a primary", CheckWarning, fmt.Sprintf("the server at %s is a standby (in recovery), where a WAL switch cannot be forced: run pgward check against the primary for the round trip", s.where), "")
		return false
	}
	s.res.add("server is a primary", CheckOK, "not in recovery", "")
	return true
}

func (s *checkSession) checkWALLevel(ctx context.Context) error {
	level, err := s.show(ctx, "wal_level")
	if err != nil {
		return err
	}
	s.walLevel = level
	if level != "replica" && level != "logical" {
		return fmt.Errorf("wal_level is %q on %s: archiving needs wal_level = replica (or logical); set it in postgresql.conf and restart the server", level, s.where)
	}
	return nil
}

func (s *checkSession) checkArchiveMode(ctx context.Context) error {
	mode, err := s.show(ctx, "archive_mode")
	if err != nil {
		return err
	}
	s.archiveMode = mode
	if mode == "off" {
		return fmt.Errorf("archive_mode is off on %s, so the server archives no WAL: set archive_mode = on in postgresql.conf and restart the server (a reload is not enough)", s.where)
	}
	return nil
}

// checkArchiveCommandItem checks archive_library (PostgreSQL 15+) and that the
// archive_command runs archive-push of these repositories and this cluster.
func (s *checkSession) checkArchiveCommandItem(ctx context.Context) bool {
	const name = "archive_command"
	fail := func(err error, hint string) bool {
		s.res.add(name, CheckFailed, err.Error(), hint)
		return false
	}
	if s.major >= 15 {
		lib, err := s.show(ctx, "archive_library")
		if err != nil {
			return fail(err, "")
		}
		if lib != "" {
			return fail(fmt.Errorf("archive_library is %q on %s, so the server archives through that module and not through pgward: set archive_library = '' and the archive_command below in postgresql.conf, and reload", lib, s.where), s.suggestion())
		}
	}
	cmd, err := s.show(ctx, "archive_command")
	if err != nil {
		return fail(err, "")
	}
	if cmd == "" || cmd == "(disabled)" {
		return fail(fmt.Errorf("archive_command is not set on %s, so nothing is archived and WAL piles up in pg_wal: add the line below to postgresql.conf and reload the server (SELECT pg_reload_conf())", s.where), s.suggestion())
	}
	if len(s.repos) == 0 {
		s.res.add(name, CheckSkipped, "the repositories could not be opened, so the archive_command cannot be compared with them", "")
		return false
	}
	warnings, err := CheckArchiveCommand(cmd, s.specs(), s.o.Cluster, s.o.Config)
	if err != nil {
		return fail(fmt.Errorf("%w; to archive into the repositories checked here, use the line below", err), s.suggestion())
	}
	if len(warnings) > 0 {
		s.res.add(name, CheckWarning, strings.Join(warnings, "; "), "")
		return true
	}
	s.res.add(name, CheckOK, "runs pgward archive-push into these repositories as cluster "+s.o.Cluster, "")
	return true
}

func (s *checkSession) specs() []string {
	var specs []string
	for _, r := range s.repos {
		specs = append(specs, r.String())
	}
	return specs
}

// checkIdentityItem records checkIdentity's outcome.
func (s *checkSession) checkIdentityItem(ctx context.Context) bool {
	if len(s.repos) == 0 {
		s.res.add("system identifier", CheckSkipped, "needs the repositories", "")
		return false
	}
	warn, err := s.checkIdentity(ctx)
	switch {
	case err != nil:
		s.res.add("system identifier", CheckFailed, err.Error(), "")
		return false
	case warn != "":
		s.res.add("system identifier", CheckWarning, warn, "")
	default:
		s.res.add("system identifier", CheckOK, fmt.Sprintf("the repositories' cluster %q is this server (system %s)", s.o.Cluster, s.res.SystemIdentifier), "")
	}
	return true
}

// checkIdentity compares the repositories' record of the cluster with the
// server: archive-push refuses the WAL of another system.
func (s *checkSession) checkIdentity(ctx context.Context) (warning string, err error) {
	sysid, err := s.queryOne(ctx, "SELECT system_identifier::text FROM pg_control_system()")
	if permissionDenied(err) {
		return fmt.Sprintf("role %q may not read the server's system identifier, so check cannot compare it with the repository's cluster %q", s.role, s.o.Cluster), nil
	}
	if err != nil {
		return "", fmt.Errorf("reading the system identifier of %s: %w", s.where, err)
	}
	s.res.SystemIdentifier = sysid
	for _, r := range s.repos {
		id, err := r.Identity(ctx, s.o.Cluster)
		if errors.Is(err, repo.ErrNotFound) {
			s.o.Log.Debug("cluster not recorded in the repository yet; the first archived segment or backup records it", "repo", r.String(), "cluster", s.o.Cluster)
			continue
		}
		if err != nil {
			return "", fmt.Errorf("reading the identity of cluster %q in %s: %w", s.o.Cluster, r, err)
		}
		if id.SystemIdentifier != sysid {
			return "", fmt.Errorf("wrong cluster name: cluster %q in %s belongs to the PostgreSQL system %s, but this server is system %s, so archive-push refuses its WAL; give this server its own cluster name (--cluster NAME in the archive_command and in pgward's other commands)", s.o.Cluster, r, id.SystemIdentifier, sysid)
		}
		if id.PGMajor != 0 && id.PGMajor != s.major {
			return "", fmt.Errorf("wrong cluster name: cluster %q in %s holds PostgreSQL %d, but this server runs PostgreSQL %d, so archive-push refuses its WAL; after a major upgrade use a new cluster name (--cluster NAME in the archive_command and in pgward's other commands)", s.o.Cluster, r, id.PGMajor, s.major)
		}
	}
	return "", nil
}
