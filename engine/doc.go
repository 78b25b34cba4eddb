// Package engine orchestrates pgward's jobs: the backup pipeline (this file set),
// and later retention, scheduling and the daemon. It wires the replication
// stream (internal/pgserver/basebackup) to the repository (repo) and owns the
// concurrency.
//
// The backup pipeline, and why it is shaped this way:
//
//		server ──BASE_BACKUP──▶ reader ──jobs (bounded)──▶ N workers ──▶ repo.PutChunk
//		                          │                          hash, skip known, compress, seal, store
//		                          └─ tar parse, CRC32C per file, manifest entries
//
//	  - One reader goroutine owns the connection and the tar parser: the server
//	    sends one ordered stream, so there is nothing to parallelise there, and
//	    keeping it cheap (a copy and a CRC) leaves the CPU to the workers and the
//	    walsender, which share the same cores.
//	  - Memory is bounded by construction: chunk buffers come from a fixed pool of
//	    2×jobs+2 buffers of chunk size; the reader blocks when all are in use. Nothing
//	    grows with the database except the manifest's list of chunk IDs.
//	  - A chunk already stored (known from the previous backup's manifest, seen
//	    earlier in this backup, or found by Stat) is never compressed or written
//	    again.
//	  - Commit last: the manifest is written only after every worker has finished
//	    and every chunk is durable, and after the files received have been checked
//	    against the server's own backup_manifest (size and CRC32C).
//	  - Any error cancels the whole group; nothing is committed.
//
// A backup may be taken from a standby (standby.go): the same BASE_BACKUP, with
// the standby checked against its primary when --backup-standby asks for it.
package engine
