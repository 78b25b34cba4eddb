package repo

import (
	"context"
	"io"
	"sync"
)

// Pack windows: a reader that goes through many entries of the same packs (a restore
// of thousands of small files) reads each aligned window of a pack once, instead of
// one request per entry. On an object store a request costs more than the bytes of a
// small entry (signing, a round trip, the server opening the object): restoring a
// cluster of 1000 small files from S3 made ~900 ranged GETs of a few KiB each.
//
// Invariants:
//   - A window never reaches past the end of the last entry the index places in its
//     pack, so it never asks for bytes the pack may not have (a pack has no trailer;
//     dead entries a repack left are inside that bound too).
//   - Bytes from a window are still only raw entry bytes: every entry is opened and
//     verified by its own envelope, as from a ranged read. A window of a pack that a
//     garbage collection deleted meanwhile still holds that pack's verified entries.
//   - Memory is bounded: at most n windows (NewPackWindows) of WindowSize bytes are held; a read
//     that fails, or an entry that straddles a window's edge, falls back to a ranged
//     read of the entry alone.

// WindowSize is the span of one pack window, and the alignment of windows in a pack.
const WindowSize = 1 << 20

type windowKey struct {
	repo  *Repo
	pack  string
	start int64
}

// window is one aligned span of a pack, read once; waiters block on ready.
type window struct {
	ready chan struct{}
	data  []byte
	ok    bool
}

// PackWindows is a bounded set of pack windows, shared by the readers of one job.
type PackWindows struct {
	max   int
	mu    sync.Mutex
	held  map[windowKey]*window
	order []windowKey // oldest first, for eviction
}

// NewPackWindows holds up to n windows of WindowSize bytes (n*WindowSize bytes of
// memory at most), for readers of many entries of the same packs; give it to their
// ChunkBuffers (UseWindows). Windows of several repositories may share it.
func NewPackWindows(n int) *PackWindows {
	return &PackWindows{max: max(n, 1), held: map[windowKey]*window{}}
}

// read copies entry e into dst from its window, reading the window first if no
// reader did; false when it could not (the caller reads the entry alone).
func (p *PackWindows) read(ctx context.Context, r *Repo, e IndexEntry, dst []byte) bool {
	start := int64(e.Offset) &^ (WindowSize - 1)
	end := min(start+WindowSize, int64(r.packEnd(e.Pack)))
	if int64(e.Offset)+int64(e.Length) > end {
		return false
	}
	w, first := p.get(windowKey{r, e.Pack, start})
	if first {
		w.data, w.ok = readWindow(ctx, r, e.Pack, start, end)
		close(w.ready)
	} else {
		select {
		case <-w.ready:
		case <-ctx.Done():
			return false
		}
	}
	if !w.ok || int64(e.Offset)+int64(e.Length) > start+int64(len(w.data)) {
		return false
	}
	copy(dst, w.data[int64(e.Offset)-start:])
	return true
}

// get returns the window of key, and whether the caller is the first to ask and must
// read it. A new window evicts the oldest beyond the bound.
func (p *PackWindows) get(key windowKey) (*window, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if w, ok := p.held[key]; ok {
		return w, false
	}
	w := &window{ready: make(chan struct{})}
	p.held[key] = w
	p.order = append(p.order, key)
	if len(p.order) > p.max {
		delete(p.held, p.order[0])
		p.order = p.order[1:]
	}
	return w, true
}

// readWindow reads [start, end) of a pack; on any failure the entries are read alone,
// so that their errors name them.
func readWindow(ctx context.Context, r *Repo, pack string, start, end int64) ([]byte, bool) {
	rc, err := r.st.GetRange(ctx, pack, start, end-start)
	if err != nil {
		return nil, false
	}
	defer rc.Close()
	data := make([]byte, end-start)
	n, err := io.ReadFull(rc, data)
	return data[:n], err == nil
}
