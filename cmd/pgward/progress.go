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
	total atomic.Int64
	cur   atomic.Int64
	start time.Time
	stop  chan struct{}
	wg    sync.WaitGroup
}

const logEvery = 10 * time.Second

func newProgress(what string, total int64) *progress {
	p := &progress{what: what, start: time.Now(), stop: make(chan struct{}), tty: stderrIsTerminal()}
	p.total.Store(total)
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

// setTotal gives the total once it is known (a backup learns it from the server).
func (p *progress) setTotal(n int64) {
	if p != nil {
		p.total.Store(n)
	}
}

// eta is the time left at the rate so far; ok is false while it cannot be told.
func eta(done, total int64, rate float64) (time.Duration, bool) {
	if total <= 0 || rate <= 0 || done >= total {
		return 0, false
	}
	return time.Duration(float64(total-done) / rate * float64(time.Second)), true
}

func (p *progress) draw() {
	n, total := p.cur.Load(), p.total.Load()
	rate := float64(n) / max(time.Since(p.start).Seconds(), 0.001)
	left, known := eta(n, total, rate)
	if !p.tty {
		attrs := []any{"bytes", n, "total_bytes", total, "bytes_per_second", int64(rate)}
		if total > 0 {
			attrs = append(attrs, "percent", min(100, float64(int64(1000*float64(n)/float64(total)))/10))
		}
		if known {
			attrs = append(attrs, "eta_seconds", int64(left.Seconds()))
		}
		slog.Info(p.what+" progress", attrs...)
		return
	}
	if total > 0 {
		frac := min(float64(n)/float64(total), 1)
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
		etaText := ""
		if known {
			etaText = "  ETA " + left.Round(time.Second).String()
		}
		fmt.Fprintf(os.Stderr, "\r%s [%s] %5.1f%% %s / %s  %s/s%s   ", p.what, bar, frac*100, humanBytes(n), humanBytes(total), humanBytes(int64(rate)), etaText)
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
	p.draw() // the final figures, also in the log
	if p.tty {
		fmt.Fprintln(os.Stderr)
	}
}
