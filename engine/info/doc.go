// Package info describes a repository for a person or a monitor: its format and encryption,
// what its content store holds and how much of it no backup needs, the last verify run, and
// per cluster the backups — logical size, what each added when it was taken, what it needs,
// and what only it needs (what removing it alone would free) — pins and notes, the dedup
// ratio, and the recoverable windows per timeline with their gaps (the catalog list and
// restore use, package restore).
//
// Invariants:
//   - info only reads; it takes no lock. A backup committed or expired while it runs may be
//     counted or not; sizes are those of one listing.
//   - A backup's needs are followed as garbage collection follows them (package contents):
//     its chunks, the bases of their page deltas transitively, their page digests; a piece
//     counts by its stored size (a whole object's size, a pack entry's length). "Unique" is
//     unique in the whole repository, across clusters.
//   - A backup whose manifest cannot be read is listed as damaged and counts for nothing; what
//     only it needed then shows as unreferenced.
package info
