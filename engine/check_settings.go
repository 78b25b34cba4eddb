package engine

// The SQL preflight of check: the server's settings and the repositories'
// record of the cluster, before any WAL is switched.

import (
	"context"
	"errors"
	"fmt"

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
