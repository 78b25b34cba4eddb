package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/engine"
	"github.com/pgward/pgward/repo"
)

// Every metric the daemon exports is documented in docs/daemon.md, with its labels.
func TestMetricsDocumented(t *testing.T) {
	m := newMetrics()
	ok := &JobStatus{Time: time.Now(), OK: true, DurationSeconds: 1}
	m.backup("main", ok, &engine.BackupResult{Received: 1, Stored: 1, Stages: engine.StageTimes{Read: time.Second}})
	m.drill("main", &repo.DrillRecord{OK: true, RTOSeconds: 1})
	m.verify("main", ok)
	m.receiverUp("main", true)
	s := ClusterStatus{Backups: 1, NewestBackup: time.Now(), WindowTo: time.Now(), Receiver: &ReceiverStatus{LagBytes: 0},
		Objectives: map[string]*Objective{"rpo": {}}}
	m.state("main", s)
	m.live("main", s)
	m.objectives("main", s)
	m.event("main", "backup", true)
	m.repositories([]RepoSize{{Location: "/r", Bytes: 1}})
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "daemon.md"))
	if err != nil {
		t.Fatal(err)
	}
	if len(families) < 20 {
		t.Errorf("only %d metric families exported", len(families))
	}
	for _, f := range families {
		var labels []string
		for _, l := range f.Metric[0].Label {
			labels = append(labels, l.GetName())
		}
		row := "| `" + f.GetName() + "` | " + strings.Join(labels, ", ") + " |"
		if !strings.Contains(string(doc), row) {
			t.Errorf("docs/daemon.md has no row %q", row)
		}
	}
}
