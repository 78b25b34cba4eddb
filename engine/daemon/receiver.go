package daemon

import (
	"context"
	"errors"
	"time"

	"github.com/pgward/pgward/wal/receive"
)

// superviseReceiver runs the cluster's wal-receive (receive.Run, as the CLI's wal-receive
// does) and restarts it when it stops: after an ordinary failure with backoff from 1 s to
// one minute (reset after an hour of streaming), after a fatal one (WAL removed on the
// server, a missing slot, refused access) every ten minutes, since only an operator can fix
// those and the objectives say so meanwhile.
func (c *cluster) superviseReceiver(ctx context.Context) {
	wait := time.Second
	for ctx.Err() == nil {
		ro, err := receive.FromConfig(c.cfg.Options, c.cfg.Name)
		if err != nil {
			c.receiverStopped(err, true)
			c.sleep(ctx, 10*time.Minute)
			continue
		}
		ro.Log, ro.Position = c.log.With("job", "wal-receive"), c.pos
		started := time.Now()
		c.status.update(func(s *ClusterStatus) {
			if s.Receiver == nil {
				s.Receiver = &ReceiverStatus{}
			}
			s.Receiver.Running, s.Receiver.Since, s.Receiver.Fatal = true, started.UTC(), false
		})
		c.d.metrics.receiverUp(c.cfg.Name, true)
		err = receive.Run(ctx, ro)
		c.d.metrics.receiverUp(c.cfg.Name, false)
		if ctx.Err() != nil {
			c.status.update(func(s *ClusterStatus) { s.Receiver.Running = false })
			return
		}
		var fe *receive.FatalError
		fatal := errors.As(err, &fe)
		c.receiverStopped(err, fatal)
		if time.Since(started) > time.Hour {
			wait = time.Second
		}
		if fatal {
			c.sleep(ctx, 10*time.Minute)
			continue
		}
		c.sleep(ctx, wait)
		wait = min(2*wait, time.Minute)
	}
}

func (c *cluster) receiverStopped(err error, fatal bool) {
	msg := "stopped"
	if err != nil {
		msg = err.Error()
	}
	c.log.Error("wal-receive stopped; restarting it", "error", msg, "fatal", fatal)
	c.status.update(func(s *ClusterStatus) {
		if s.Receiver == nil {
			s.Receiver = &ReceiverStatus{}
		}
		s.Receiver.Running, s.Receiver.LastError, s.Receiver.Fatal = false, msg, fatal
		s.Receiver.Restarts++
	})
	c.event("wal-receive", false, msg, "", nil)
}

func (c *cluster) sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
