package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Event is what hooks receive: as JSON on a command's stdin, or as a webhook's body.
type Event struct {
	// Event is backup, expire, verify, drill, wal-receive, objective-breached or
	// objective-recovered.
	Event   string    `json:"event"`
	Cluster string    `json:"cluster"`
	OK      bool      `json:"ok"`
	Time    time.Time `json:"time"`
	Error   string    `json:"error,omitempty"`
	Backup  string    `json:"backup,omitempty"`
	// Objective names a breached or recovered objective.
	Objective string `json:"objective,omitempty"`
	Details   any    `json:"details,omitempty"`
}

// event counts a job's outcome and runs the cluster's hooks for it.
func (c *cluster) event(kind string, ok bool, errText, backup string, details any) {
	c.d.metrics.event(c.cfg.Name, kind, ok)
	c.hooks(Event{Event: kind, Cluster: c.cfg.Name, OK: ok, Time: time.Now().UTC(), Error: errText, Backup: backup, Details: details})
}

// hooks runs on-failure or on-success hooks for ev, each bounded by hook-timeout, in the
// background; a hook's failure is logged, never more.
func (c *cluster) hooks(ev Event) {
	d := c.cfg.Options.Daemon
	list := d.OnSuccess
	if !ev.OK {
		list = d.OnFailure
	}
	if len(list) == 0 {
		return
	}
	body, _ := json.Marshal(ev)
	for _, h := range list {
		c.d.hooksRunning.Add(1)
		go func() {
			defer c.d.hooksRunning.Done()
			ctx, cancel := context.WithTimeout(context.Background(), d.HookTimeout)
			defer cancel()
			var err error
			if strings.HasPrefix(h, "http://") || strings.HasPrefix(h, "https://") {
				err = postHook(ctx, h, body)
			} else {
				err = runHook(ctx, h, body, ev)
			}
			if err != nil {
				c.log.Warn("hook failed", "hook", h, "event", ev.Event, "error", err)
			}
		}()
	}
}

func runHook(ctx context.Context, command string, body []byte, ev Event) error {
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.Stdin = bytes.NewReader(body)
	// The daemon's own PGWARD_* settings (a passphrase among them) are not the hook's.
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "PGWARD_") {
			env = append(env, e)
		}
	}
	cmd.Env = append(env, "PGWARD_EVENT="+ev.Event, "PGWARD_CLUSTER="+ev.Cluster, "PGWARD_BACKUP="+ev.Backup,
		"PGWARD_ERROR="+ev.Error, "PGWARD_OBJECTIVE="+ev.Objective, fmt.Sprintf("PGWARD_OK=%t", ev.OK))
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func postHook(ctx context.Context, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s answered %s", url, resp.Status)
	}
	return nil
}
