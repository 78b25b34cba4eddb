// Package receive is pgward's streaming WAL receiver: it follows a server over
// the physical replication protocol and archives its WAL as it is written, so
// that a restore "to the latest point" loses at most what the server had not
// yet sent (nothing, in synchronous mode).
//
// How it works:
//   - The segment being received lives in the spool as <segment>.partial,
//     zero-padded to the segment size (as pg_receivewal does). Data is written
//     at its offset and fsynced before the flush position is reported to the
//     server, so with --synchronous (the receiver listed in
//     synchronous_standby_names) a commit acknowledged to a client is already
//     durable on the backup host.
//   - A completed segment is renamed to its own name and handed to a pusher
//     goroutine, which archives it through archive.PushData (the same
//     validation, compression, encryption, idempotency and repositories as
//     archive-push) and only then deletes the local file. A segment delivered
//     by archive_command too is stored once.
//   - Every PartialInterval, and on shutdown, the segment in progress is also
//     uploaded as a streamed partial (repo.PutWALPartial), so an S3-only
//     repository holds the newest transactions too.
//   - Start position, in order: completed-but-unpushed files in the spool are
//     pushed first; a .partial in the spool is re-received from the start of its
//     segment (the slot keeps that segment); otherwise streaming starts at the
//     segment after the newest one archived, or at the server's current segment
//     when the archive is empty. A start the server can no longer serve is an
//     error, never a silent gap.
//   - Timelines: when the server ends a timeline (a promotion upstream), the old
//     timeline's last segment is archived as .partial, the new timeline's
//     history file is archived, and streaming resumes on the new timeline at the
//     start of the switch point's segment.
//   - Connection loss: reconnect with exponential backoff and resume from the
//     flushed position. SIGKILL: the spool is enough to resume without loss.
package receive
