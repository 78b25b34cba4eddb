// Package gc collects the garbage of a repository's content store: whole chunk objects, pack
// entries and index objects that no backup needs any more, and what crashed writers left
// (docs/repository-format.md, "Garbage collection", is the protocol; this package keeps it).
//
// Invariants:
//   - Nothing a manifest needs is ever deleted: liveness is computed from every manifest of
//     every cluster, transitively through the bases of page deltas, under the repository's
//     exclusive lock, so no writer is running whose objects are not yet named. A manifest that
//     cannot be read stops the collection: what it references is unknown.
//   - Deletion follows creation in reverse: new packs and the new index are durable before an
//     old index object goes, an old index object goes before its packs, so a crash at any
//     step leaves every live entry reachable and a rerun finishes the job.
//   - A pack entry is chosen once per (id, kind), from the largest index object that lists
//     it with its pack present; everything else about it (duplicates, packs no index names)
//     is garbage.
//   - Leftovers of interrupted writes are removed at any age under the names only lock
//     holders write (chunks, packs, index, manifests), and elsewhere (the WAL, written by
//     archive-push without a lock) only when older than LeftoverAge.
package gc
