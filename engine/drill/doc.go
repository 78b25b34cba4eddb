// Package drill proves that a backup restores: it restores one into a scratch directory,
// starts a throwaway PostgreSQL of the cluster's major version on a free loopback port,
// waits for recovery to reach the target and promote, reads every table to the end (and
// runs amcheck where the server has it), stops the server, removes the scratch directory,
// and records the outcome with the measured recovery time in the repository. The CLI's
// `drill` and the daemon's schedule both call Run.
//
// Invariants:
//   - A drill never touches anything but its scratch directory and its own server: archive_mode
//     is off in the copy, the server listens on 127.0.0.1 and a socket in the scratch
//     directory only, and the scratch directory is removed whatever the outcome.
//   - Success means the server promoted at the target and every check passed; a drill whose
//     server stops during recovery, or that does not promote within the timeout, failed.
//   - The recovery time is measured as consecutive intervals of one clock (restore, WAL
//     replay until promotion, first read-write transaction), so its parts add up to its
//     total; the checks after it are timed apart.
//   - Every drill, failed or not, is recorded (repo.DrillRecord) when the repository can be
//     written, so that info and the daemon see failures too.
package drill
