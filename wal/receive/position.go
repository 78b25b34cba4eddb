package receive

import "sync/atomic"

// Position is how far a running receiver has come, for monitoring (the daemon's
// receiver lag): the end of the WAL fsynced in its spool and the end of the WAL
// the server last said it has written. A caller passes one in Options and reads it
// from any goroutine while Run runs; it survives a Run, so a supervisor that
// restarts the receiver keeps its last values. The zero value knows nothing.
type Position struct {
	flushed, serverEnd atomic.Uint64
}

// Flushed is the LSN up to which the receiver holds the server's WAL durably (0: none yet).
func (p *Position) Flushed() uint64 { return p.flushed.Load() }

// ServerEnd is the end of the server's WAL as the server last reported it, in a WAL
// message or a keepalive (0: not yet known).
func (p *Position) ServerEnd() uint64 { return p.serverEnd.Load() }

// Lag is the bytes of WAL the server has written that the receiver does not yet hold
// durably; -1 when either end is not yet known.
func (p *Position) Lag() int64 {
	f, e := p.Flushed(), p.ServerEnd()
	if f == 0 || e == 0 {
		return -1
	}
	if e <= f {
		return 0
	}
	return int64(e - f)
}

func (p *Position) setFlushed(lsn uint64) {
	if p != nil && lsn > 0 {
		p.flushed.Store(lsn)
	}
}

func (p *Position) setServerEnd(lsn uint64) {
	if p != nil && lsn > 0 {
		p.serverEnd.Store(lsn)
	}
}
