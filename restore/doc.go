// Package restore turns a backup back into a startable PostgreSQL data
// directory: it recreates directories, files (with their modes and times),
// tablespace symlinks, and the recovery settings that make PostgreSQL replay WAL
// and promote.
//
// How it runs: one goroutine walks the manifest, creates directories and the
// files of several chunks, and hands (file, chunk) jobs to N workers over a
// bounded channel; each worker reads a chunk, has the repository verify it (GCM
// tag, zstd checksum or content hash, and that the object is the chunk its name
// says), creates the file if it is a one-chunk file, and writes the chunk at its
// offset with pwrite (O_DIRECT for large files, direct.go). A file is closed by
// whichever worker writes its last chunk, so open files stay bounded by the jobs
// in flight; one syncfs per file system makes them all durable at the end.
//
// A delta restore (delta.go) rewrites an existing data directory of the same
// cluster instead, comparing each chunk range of the files there with the
// backup's chunk IDs; a selective restore (selective.go) writes the relation
// files of the databases not asked for as sparse files of zeros; a standby
// restore writes standby.signal and primary_conninfo (plan.go).
//
// Invariants:
//   - Restore never destroys: the data directory and every tablespace directory
//     must be empty or absent, checked for all of them before the first write.
//     A tablespace whose original location holds files (the source cluster on
//     the same host) needs --tablespace-map; the error says so. The one
//     exception is a delta restore, which the user asks for, into a directory
//     whose pg_control has the backup's system identifier and on which no
//     server runs, and into the tablespace directories it already links to.
//   - Nothing unverified is written: a bad chunk stops the restore with an error
//     naming the object.
//   - A failed restore leaves nothing that looks startable: global/pg_control is
//     written last, after every other file is durable, and on error everything
//     the restore created is removed again (a delta restore sets pg_control
//     aside before its first change and leaves the directory for a retry).
package restore
