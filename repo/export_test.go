package repo

import "time"

// SetLockTiming shortens a repository's lock clock for tests.
func SetLockTiming(r *Repo, refresh, stale, poll time.Duration) {
	r.lockTiming = lockTiming{refresh: refresh, stale: stale, poll: poll}
}

// KeyedHash is the keyed hash computed without ContentHash's memo of zero runs.
func (r *Repo) KeyedHash(b []byte) Hash { return r.keyedHash(b) }
