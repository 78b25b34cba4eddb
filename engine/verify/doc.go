// Package verify checks that a repository still holds what its backups and WAL archive need,
// and optionally reads it all back (docs/verify.md describes the modes for users;
// docs/repository-format.md, "Verify ledger", the objects it keeps).
//
// A run has three passes:
//
//  1. Structure, always: every manifest in scope is read and decoded; every index object is
//     read; every chunk a manifest names is followed through the content store (package
//     contents) to a whole chunk object or a pack entry whose pack exists and is long enough,
//     through page delta bases to a whole chunk; every backup's WAL from its start to its
//     consistency point is in the backup itself (pg_wal) or in the archive. With --wal (or
//     --all), the archive's timelines are checked for gaps and unusable history files.
//  2. Data, with --read-data or --read-data-subset: the objects in scope (whole chunks, packs,
//     the WAL files, summaries, pins and identities of the clusters in scope; with --all every
//     object) are read by a bounded pool of workers, one object each at a time, and checked:
//     envelope (GCM tag, checksum or content hash), a chunk object holds the chunk its name
//     says, every pack entry the index names is sound and is what the index says, every page
//     delta rebuilds the chunk its id names, a WAL segment's header is the segment its name
//     says and of this cluster's system, summaries, pins and identities decode.
//  3. Record: the run's result is written to verify/runs/, and with data read the ledger is
//     merged and rewritten (verify/ledger/), so that --read-data-subset next time reads what
//     was never read or not for verify-period first.
//
// Invariants:
//   - verify never changes what it checks: it writes only verify/ objects and its lock.
//   - It holds a shared repository lock for the whole run, so no garbage collection sweep
//     deletes or moves an object under it; a run whose lock was lost reports that instead of
//     problems that the sweep may have caused. Expire's forget phase takes no lock: a manifest,
//     a pin or WAL that vanishes during the run is checked again and counted as gone, not
//     damaged, when nothing still in the repository needs it.
//   - Every problem names its object, and the backups that need it, in one line; a problem
//     makes the run fail (Result.OK false). A problem is never skipped because another one
//     was found first.
//   - Memory is bounded by the workers: each holds one object (a pack, a chunk, a WAL segment)
//     at a time; what is kept for the whole run is per object, not per byte.
package verify
