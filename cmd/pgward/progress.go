package main

import (
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// progress draws a one-line progress display on stderr when it is a terminal,
// and otherwise logs a structured progress line every logEvery. A nil *progress
// is valid and does nothing.
type progress struct {
	what  string
	tty   bool
	total int64
	cur   atomic.Int64
	start time.Time
	stop  chan struct{}
	wg    sync.WaitGroup
}

const logEvery = 10 * time.Second

func newProgress(what string, total int64) *progress {
	p := &progress{what: what, total: total, start: time.Now(), stop: make(chan struct{}), tty: stderrIsTerminal()}
	every := 200 * time.Millisecond
	if !p.tty {
		every = logEvery
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.draw()
			}
		}
	}()
	return p
}

func (p *progress) set(n int64) {
	if p != nil {
		p.cur.Store(n)
	}
}

func (p *progress) draw() {
	n := p.cur.Load()
	rate := float64(n) / max(time.Since(p.start).Seconds(), 0.001)
	if !p.tty {
		slog.Info(p.what+" progress", "bytes", n, "total_bytes", p.total, "bytes_per_second", int64(rate))
		return
	}
	if p.total > 0 {
		frac := min(float64(n)/float64(p.total), 1)
		const width = 30
		filled := int(frac * width)
		bar := make([]byte, width)
		for i := range bar {
			if i < filled {
				bar[i] = '='
			} else {
				bar[i] = ' '
			}
		}
		fmt.Fprintf(os.Stderr, "\r%s [%s] %5.1f%% %s / %s  %s/s   ", p.what, bar, frac*100, humanBytes(n), humanBytes(p.total), humanBytes(int64(rate)))
		return
	}
	fmt.Fprintf(os.Stderr, "\r%s: %s  %s/s   ", p.what, humanBytes(n), humanBytes(int64(rate)))
}

func (p *progress) finish() {
	if p == nil {
		return
	}
	close(p.stop)
	p.wg.Wait()
	if p.tty {
		p.draw()
		fmt.Fprintln(os.Stderr)
	}
}
