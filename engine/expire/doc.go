// Package expire applies a retention policy to a repository: it removes the backups the
// policy lets go, the WAL no kept backup and no promised recovery window needs, and then
// collects the garbage (package gc). It is the one implementation the CLI's expire, backup's
// retention after a commit, and the daemon call.
//
// Invariants (docs/repository-format.md, "Retention" and "Garbage collection"):
//   - The plan is made first, from the committed manifests and pins; a dry run stops there
//     and reports exactly what would go and the bytes that would be freed.
//   - Manifests go before the WAL and chunks only they need, oldest first, so a crash
//     leaves fewer backups, never a listed backup missing what it needs.
//   - WAL is removed oldest first and only below the recovery window's start, never inside
//     a kept backup's own start-to-stop range, never a history file: a crash leaves the
//     archive contiguous from wherever it stopped.
//   - The sweep runs under the exclusive repository lock. When running backups keep it
//     from being taken within lock-wait, the sweep is skipped and reported, not failed: the
//     next expire does it.
package expire
