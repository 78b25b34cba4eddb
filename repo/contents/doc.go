// Package contents is the content store of a repository seen whole: which chunks are kept as
// their own objects, which packs exist, which pack entry counts for each chunk, page delta and
// page digest, and what reading a chunk needs — its whole object or packed entry, its page
// digest, and for a page delta the chunk it is rebuilt over, transitively
// (docs/repository-format.md, "Format 2" and "Garbage collection"). Garbage collection marks
// with it, verify checks with it and info accounts with it, so the three agree on what a
// backup needs.
//
// Invariants:
//   - One entry counts per (id, kind): the first, in index-name order, whose pack exists and
//     is long enough to hold it. The others are duplicates (a crash between writing a new
//     index and deleting the old one leaves them) or name packs that are gone.
//   - A Store is a snapshot: Load lists and reads once, and what writers add afterwards is
//     not in it. Callers that must see every object a running writer will name hold the
//     repository lock that keeps such writers out.
//   - A chunk's needs are followed through page delta bases to a whole chunk, never further
//     than the chain of bases goes: a cycle (damage) ends the walk where it closes.
package contents
