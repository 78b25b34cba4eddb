package engine

import (
	"context"
	"sync"
)

// bufferPool is the backup's fixed set of chunk buffers, which bounds its memory:
// the source takes one per chunk and the chunk store gives it back. It hands out
// the buffer given back last. A buffer becomes the process's memory only as its
// pages are first written, and a first write costs a page fault (~2 µs per 4 KiB
// on the 2-core VMs measured; the kernel frees them again at exit): taken in turn,
// as a channel would hand them out, every buffer ends up written through, while the
// last given back, which a small file touches only at its start and the WAL's
// chunks of zeros give back at once, are mostly already warm.
type bufferPool struct {
	mu     sync.Mutex
	free   []*[]byte
	tokens chan struct{} // one per free buffer
}

func newBufferPool(n, size int) *bufferPool {
	p := &bufferPool{tokens: make(chan struct{}, n)}
	for range n {
		b := make([]byte, 0, size)
		p.free = append(p.free, &b)
		p.tokens <- struct{}{}
	}
	return p
}

// tryGet takes a free buffer if there is one.
func (p *bufferPool) tryGet() (*[]byte, bool) {
	select {
	case <-p.tokens:
		return p.pop(), true
	default:
		return nil, false
	}
}

// get waits for a free buffer.
func (p *bufferPool) get(ctx context.Context) (*[]byte, error) {
	select {
	case <-p.tokens:
		return p.pop(), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *bufferPool) pop() *[]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	return b
}

// put gives a buffer back.
func (p *bufferPool) put(b *[]byte) {
	p.mu.Lock()
	p.free = append(p.free, b)
	p.mu.Unlock()
	p.tokens <- struct{}{}
}
