package daemon

import (
	"time"

	"github.com/pgward/pgward/engine"
	"github.com/pgward/pgward/repo"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the daemon's Prometheus metrics; their names and labels are part of the
// interface (docs/daemon.md lists them) and do not change.
type metrics struct {
	reg *prometheus.Registry

	backupSuccess, backupDuration, backupRead, backupStored *prometheus.GaugeVec
	backupStage                                             *prometheus.GaugeVec
	backups, newestBackup, newestCommit, rpo                *prometheus.GaugeVec
	receiverUpG, receiverLag                                *prometheus.GaugeVec
	repoBytes                                               *prometheus.GaugeVec
	drillTime, drillOK, drillRTO, drillWAL                  *prometheus.GaugeVec
	verifyTime, verifyOK                                    *prometheus.GaugeVec
	breached                                                *prometheus.GaugeVec
	events                                                  *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	g := func(name, help string, labels ...string) *prometheus.GaugeVec {
		v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pgward_" + name, Help: help}, append([]string{"cluster"}, labels...))
		m.reg.MustRegister(v)
		return v
	}
	m.backupSuccess = g("backup_last_success_timestamp_seconds", "When the last successful backup ended (Unix time).")
	m.backupDuration = g("backup_last_duration_seconds", "How long the last backup took, successful or not.")
	m.backupRead = g("backup_last_read_bytes", "Bytes of file data the last successful backup read from the server.")
	m.backupStored = g("backup_last_stored_bytes", "Bytes the last successful backup newly stored in the first repository.")
	m.backupStage = g("backup_stage_seconds", "Where the last successful backup's time went: busy seconds of each pipeline stage (read, seal, store), summed over the stage's goroutines.", "stage")
	m.backups = g("backups", "Committed backups of the cluster in its repositories.")
	m.newestBackup = g("newest_backup_timestamp_seconds", "When the newest committed backup ended (Unix time).")
	m.newestCommit = g("wal_newest_commit_timestamp_seconds", "The time of the newest commit durable in the repositories (Unix time).")
	m.rpo = g("rpo_seconds", "Now minus the time of the newest commit durable in the repositories; -1 when unknown.")
	m.receiverUpG = g("receiver_up", "1 while the supervised wal-receive runs.")
	m.receiverLag = g("receiver_lag_bytes", "WAL the server has written that the supervised wal-receive does not yet hold fsynced in its spool.")
	m.drillTime = g("drill_last_timestamp_seconds", "When the last drill ran (Unix time).")
	m.drillOK = g("drill_last_success", "1 when the last drill passed, 0 when it failed.")
	m.drillRTO = g("drill_rto_seconds", "The last passed drill's measured recovery time: total and its parts (restore, replay, accept).", "part")
	m.drillWAL = g("drill_wal_replayed_bytes", "WAL the last passed drill replayed.")
	m.verifyTime = g("verify_last_timestamp_seconds", "When the last verify ran (Unix time).")
	m.verifyOK = g("verify_last_success", "1 when the last verify found no problem.")
	m.breached = g("objective_breached", "1 while the objective (rpo, rto, backup_age, verify, drill) is breached.", "objective")
	m.repoBytes = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pgward_repository_bytes", Help: "Bytes of every object in the repository, from a listing every few minutes."}, []string{"repo"})
	m.reg.MustRegister(m.repoBytes)
	m.events = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgward_events_total", Help: "Jobs and objective changes by outcome."}, []string{"cluster", "event", "outcome"})
	m.reg.MustRegister(m.events)
	return m
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (m *metrics) backup(cluster string, st *JobStatus, res *engine.BackupResult) {
	m.backupDuration.WithLabelValues(cluster).Set(st.DurationSeconds)
	if st.OK && res != nil {
		m.backupSuccess.WithLabelValues(cluster).Set(float64(st.Time.Unix()) + st.DurationSeconds)
		m.backupRead.WithLabelValues(cluster).Set(float64(res.Received))
		m.backupStored.WithLabelValues(cluster).Set(float64(res.Stored))
		for stage, d := range map[string]time.Duration{"read": res.Stages.Read, "seal": res.Stages.Seal, "store": res.Stages.Store} {
			m.backupStage.WithLabelValues(cluster, stage).Set(d.Seconds())
		}
	}
}

func (m *metrics) drill(cluster string, rec *repo.DrillRecord) {
	if rec == nil {
		return
	}
	m.drillTime.WithLabelValues(cluster).Set(float64(rec.Time.Unix()))
	m.drillOK.WithLabelValues(cluster).Set(b2f(rec.OK))
	if rec.OK {
		for part, v := range map[string]float64{"total": rec.RTOSeconds, "restore": rec.RestoreSeconds, "replay": rec.ReplaySeconds, "accept": rec.AcceptSeconds} {
			m.drillRTO.WithLabelValues(cluster, part).Set(v)
		}
		m.drillWAL.WithLabelValues(cluster).Set(float64(rec.WALBytesReplayed))
	}
}

func (m *metrics) verify(cluster string, st *JobStatus) {
	m.verifyTime.WithLabelValues(cluster).Set(float64(st.Time.Unix()))
	m.verifyOK.WithLabelValues(cluster).Set(b2f(st.OK))
}

func (m *metrics) receiverUp(cluster string, up bool) {
	m.receiverUpG.WithLabelValues(cluster).Set(b2f(up))
}

// live sets what moves between refreshes, just before a scrape: the RPO grows with
// the clock, the receiver's lag with the server's writes.
func (m *metrics) live(cluster string, s ClusterStatus) {
	m.rpo.WithLabelValues(cluster).Set(s.RPOSeconds)
	if s.Receiver != nil && s.Receiver.LagBytes >= 0 {
		m.receiverLag.WithLabelValues(cluster).Set(float64(s.Receiver.LagBytes))
	}
}

// repositories replaces the repository sizes.
func (m *metrics) repositories(sizes []RepoSize) {
	m.repoBytes.Reset()
	for _, r := range sizes {
		m.repoBytes.WithLabelValues(r.Location).Set(float64(r.Bytes))
	}
}

func (m *metrics) event(cluster, event string, ok bool) {
	outcome := "success"
	if !ok {
		outcome = "failure"
	}
	m.events.WithLabelValues(cluster, event, outcome).Inc()
}

// state publishes what refresh learned from the repositories.
func (m *metrics) state(cluster string, s ClusterStatus) {
	m.backups.WithLabelValues(cluster).Set(float64(s.Backups))
	if !s.NewestBackup.IsZero() {
		m.newestBackup.WithLabelValues(cluster).Set(float64(s.NewestBackup.Unix()))
	}
	if !s.WindowTo.IsZero() {
		m.newestCommit.WithLabelValues(cluster).Set(float64(s.WindowTo.UnixMilli()) / 1000)
	}
	m.rpo.WithLabelValues(cluster).Set(s.RPOSeconds)
	if s.LastDrill != nil {
		m.drill(cluster, s.LastDrill)
	}
}

func (m *metrics) objectives(cluster string, s ClusterStatus) {
	for name, o := range s.Objectives {
		m.breached.WithLabelValues(cluster, name).Set(b2f(o.Breached))
	}
}

// forget removes a cluster's series (it left the config).
func (m *metrics) forget(cluster string) {
	for _, v := range []*prometheus.GaugeVec{m.backupSuccess, m.backupDuration, m.backupRead, m.backupStored, m.backupStage, m.backups, m.newestBackup,
		m.newestCommit, m.rpo, m.receiverUpG, m.receiverLag, m.drillTime, m.drillOK, m.drillRTO, m.drillWAL, m.verifyTime, m.verifyOK, m.breached} {
		v.DeletePartialMatch(prometheus.Labels{"cluster": cluster})
	}
	m.events.DeletePartialMatch(prometheus.Labels{"cluster": cluster})
}
