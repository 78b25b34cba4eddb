// Package archive is PostgreSQL's archive_command and restore_command:
// archive-push validates a WAL file and stores it in every repository;
// archive-get fetches, verifies and hands one back.
//
// Both are called once per file by PostgreSQL, one at a time, so per-call
// latency is what limits a busy primary's archiver and a recovery's replay
// speed. Two local spools (bounded, per cluster and repository set) take the
// latency off the critical path:
//
//   - push-ahead: while pushing the segment PostgreSQL asked for, archive-push
//     also pushes the next few segments that are ready (pg_wal/archive_status/
//     *.ready), in parallel, and records each one durably archived with a marker
//     holding its SHA-256. When PostgreSQL then asks for one of those, the call
//     hashes the local file, finds the marker matching and returns at once. It
//     never marks a segment done itself: PostgreSQL does that when the call
//     returns 0, so a crash at any point only repeats work (a re-push of an
//     identical segment succeeds).
//   - prefetch: archive-get starts one background prefetcher that keeps the
//     segments after the one last asked for, verified and decoded, in the spool,
//     following recovery until the archive ends or recovery stops asking; later
//     calls rename them into place. Files PostgreSQL has moved past are removed,
//     so the spool never holds more than the prefetch depth, and a spool from an
//     earlier boot is emptied (prefetch.go).
//
// Invariants:
//   - archive-push returns nil only when the file is durable in every
//     repository (or identical bytes already were).
//   - A file is validated before it is stored: a segment's header must name this
//     cluster's system identifier and major version and the segment's own
//     position; anything that is not a WAL segment, .partial segment, timeline
//     history or backup history file is refused.
//   - Different bytes under an archived name fail loudly and change nothing.
//   - archive-get reports "not archived" (found == false) only when no
//     repository has the file; a corrupt or undecryptable copy is an error unless
//     another repository has a good one.
package archive
