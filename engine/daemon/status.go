package daemon

import (
	"sync"
	"time"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/wal"
)

// JobStatus is the outcome of a cluster's last job of a kind.
type JobStatus struct {
	Time            time.Time `json:"time"`
	OK              bool      `json:"ok"`
	Error           string    `json:"error,omitempty"`
	DurationSeconds float64   `json:"duration_seconds"`
	// Backup is the backup taken (backups) or drilled (drills).
	Backup string `json:"backup,omitempty"`
	// ReadBytes and StoredBytes are a backup's.
	ReadBytes   int64 `json:"read_bytes,omitempty"`
	StoredBytes int64 `json:"stored_bytes,omitempty"`
	// StageSeconds is where a successful backup's time went (read, seal, store; see
	// engine.StageTimes).
	StageSeconds map[string]float64 `json:"stage_seconds,omitempty"`
	// Summary says what a verify or expire found, in a line.
	Summary string `json:"summary,omitempty"`
}

// ReceiverStatus is a supervised wal-receive's state.
type ReceiverStatus struct {
	Running   bool      `json:"running"`
	Restarts  int       `json:"restarts"`
	LastError string    `json:"last_error,omitempty"`
	Since     time.Time `json:"since,omitempty"`
	// Fatal tells that it stopped on an error a restart cannot fix; it is retried slowly.
	Fatal bool `json:"fatal,omitempty"`
	// FlushedLSN is the end of the WAL held fsynced in the spool, ServerLSN the end of the
	// server's WAL as last reported, LagBytes the difference (-1: not yet known).
	FlushedLSN string `json:"flushed_lsn,omitempty"`
	ServerLSN  string `json:"server_lsn,omitempty"`
	LagBytes   int64  `json:"lag_bytes"`
}

// RepoSize is a repository's size, from its last listing.
type RepoSize struct {
	Location string    `json:"location"`
	Bytes    int64     `json:"bytes"`
	Objects  int64     `json:"objects"`
	Measured time.Time `json:"measured"`
}

// Objective is one objective's state.
type Objective struct {
	Breached bool      `json:"breached"`
	Since    time.Time `json:"since,omitempty"`
	Reason   string    `json:"reason,omitempty"`
}

// ClusterStatus is what the daemon knows of one cluster; /status serves it.
type ClusterStatus struct {
	Name string `json:"name"`
	// NewestBackup is the newest committed backup's stop time (from the repository).
	NewestBackup   time.Time `json:"newest_backup,omitempty"`
	NewestBackupID string    `json:"newest_backup_id,omitempty"`
	// PGMajor is the newest backup's PostgreSQL major version.
	PGMajor int `json:"pg_major,omitempty"`
	Backups int `json:"backups"`
	// WindowFrom and WindowTo are the recoverable window of the newest timeline: the oldest
	// backup's end and the newest durable commit.
	WindowFrom time.Time `json:"window_from,omitempty"`
	WindowTo   time.Time `json:"window_to,omitempty"`
	// RPOSeconds is now minus the newest durable commit (at the time of the snapshot); -1
	// when unknown.
	RPOSeconds  float64               `json:"rpo_seconds"`
	LastBackup  *JobStatus            `json:"last_backup,omitempty"`
	LastExpire  *JobStatus            `json:"last_expire,omitempty"`
	LastVerify  *JobStatus            `json:"last_verify,omitempty"`
	LastDrill   *repo.DrillRecord     `json:"last_drill,omitempty"`
	Receiver    *ReceiverStatus       `json:"receiver,omitempty"`
	Running     string                `json:"running,omitempty"`
	NextRuns    map[string]time.Time  `json:"next_runs"`
	Objectives  map[string]*Objective `json:"objectives"`
	Healthy     bool                  `json:"healthy"`
	StatusError string                `json:"status_error,omitempty"`
}

// statusBox guards a cluster's status.
type statusBox struct {
	mu sync.Mutex
	s  ClusterStatus
}

func (b *statusBox) update(f func(s *ClusterStatus)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f(&b.s)
}

// snapshot is a copy safe to serve.
func (b *statusBox) snapshot() ClusterStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.s
	s.NextRuns = map[string]time.Time{}
	for k, v := range b.s.NextRuns {
		s.NextRuns[k] = v
	}
	s.Objectives = map[string]*Objective{}
	for k, v := range b.s.Objectives {
		o := *v
		s.Objectives[k] = &o
	}
	if b.s.Receiver != nil {
		r := *b.s.Receiver
		s.Receiver = &r
	}
	if !s.WindowTo.IsZero() {
		s.RPOSeconds = time.Since(s.WindowTo).Seconds()
	}
	return s
}

// snapshot is the cluster's status now, with what moves between refreshes (the RPO, the
// receiver's position) brought up to date.
func (c *cluster) snapshot() ClusterStatus {
	s := c.status.snapshot()
	if r := s.Receiver; r != nil {
		r.LagBytes = c.pos.Lag()
		if f := c.pos.Flushed(); f > 0 {
			r.FlushedLSN = wal.FormatLSN(f)
		}
		if e := c.pos.ServerEnd(); e > 0 {
			r.ServerLSN = wal.FormatLSN(e)
		}
	}
	return s
}
