package daemon

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/pgward/pgward/internal/units"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Status is /status: the daemon and every cluster.
type Status struct {
	Version  string          `json:"version"`
	Started  time.Time       `json:"started"`
	Config   string          `json:"config"`
	Healthy  bool            `json:"healthy"`
	Clusters []ClusterStatus `json:"clusters"`
	// Repositories are the sizes of the clusters' repositories, from the last listing.
	Repositories []RepoSize `json:"repositories"`
}

func (d *Daemon) status() Status {
	st := Status{Version: d.o.Version, Started: d.started.UTC(), Config: d.o.ConfigPath, Healthy: true}
	for _, c := range d.allClusters() {
		s := c.snapshot()
		st.Healthy = st.Healthy && s.Healthy
		st.Clusters = append(st.Clusters, s)
	}
	sort.Slice(st.Clusters, func(i, j int) bool { return st.Clusters[i].Name < st.Clusters[j].Name })
	d.mu.Lock()
	st.Repositories = append([]RepoSize{}, d.sizes...)
	d.mu.Unlock()
	return st
}

func (d *Daemon) handler() http.Handler {
	mux := http.NewServeMux()
	prom := promhttp.HandlerFor(d.metrics.reg, promhttp.HandlerOpts{})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		for _, c := range d.allClusters() {
			d.metrics.live(c.cfg.Name, c.snapshot())
		}
		prom.ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /healthz", d.healthz)
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(d.status())
	})
	mux.HandleFunc("GET /{$}", d.page)
	return mux
}

// healthz answers 200 "ok" while no objective of any cluster is breached, else 503 with one
// line per breach.
func (d *Daemon) healthz(w http.ResponseWriter, _ *http.Request) {
	st := d.status()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if st.Healthy {
		fmt.Fprintln(w, "ok")
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	for _, c := range st.Clusters {
		for _, name := range sortedKeys(c.Objectives) {
			if o := c.Objectives[name]; o.Breached {
				fmt.Fprintf(w, "%s: %s breached since %s: %s\n", c.Name, name, o.Since.Format(time.RFC3339), o.Reason)
			}
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

//go:embed page.html
var pageHTML string

var pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{
	"ago":      ago,
	"seconds":  func(f float64) string { return time.Duration(f * float64(time.Second)).Round(time.Second).String() },
	"breaches": breaches,
	"bytes":    units.Bytes,
	"keys":     sortedKeys[time.Time],
}).Parse(pageHTML))

func (d *Daemon) page(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = pageTmpl.Execute(w, d.status())
}

// ago says how long ago t was, for a person.
func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%.1fh ago", d.Hours())
	}
	return fmt.Sprintf("%.0fd ago", d.Hours()/24)
}

// breaches lists a cluster's breached objectives ("" when none).
func breaches(c ClusterStatus) string {
	var out []string
	for _, name := range sortedKeys(c.Objectives) {
		if c.Objectives[name].Breached {
			out = append(out, name)
		}
	}
	return strings.Join(out, ", ")
}
