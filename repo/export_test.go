package repo

import "time"

// SetLockTiming shortens a repository's lock clock for tests.
func SetLockTiming(r *Repo, refresh, stale, poll time.Duration) {
	r.lockTiming = lockTiming{refresh: refresh, stale: stale, poll: poll}
}
