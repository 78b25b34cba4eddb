// Package wal knows PostgreSQL's write-ahead log as files: their names, the long page
// header at the start of every segment, and timeline history files. It is the pure
// layer under archive-push, archive-get and the streaming receiver: it reads only the
// bytes a caller hands it and imports nothing else from pgward.
//
// What it guarantees to callers:
//   - ParseName accepts exactly the names PostgreSQL 13–18 gives archived files
//     (upper-case hex, fixed widths, timeline ≥ 1) and refuses everything else, so a
//     repository key built from a Name can never collide with a stray file.
//   - ValidateSegment accepts a segment only when its first page's long header says
//     it is WAL (a known page magic, the long-header flag, a legal segment and block
//     size), from the expected cluster (system identifier) and major (page magic), of
//     the size the header promises, holding the WAL its name claims (page address ==
//     the name's start LSN) on a timeline no newer than the name's. Those are the
//     checks that catch the mistakes a backup tool can make or be handed: a truncated
//     copy, a file from another cluster or major, a renamed or recycled segment. Record
//     CRCs are not checked here; PostgreSQL checks them on replay.
//   - Every error is one sentence naming the file, and wraps one of the exported
//     sentinels (ErrNotWAL, ErrWrongSystem, ...) for errors.Is.
//
// The layouts and rules are facts read from PostgreSQL's source, cited where they are
// used and summarised in docs/wal.md; no PostgreSQL code is copied.
package wal
