package repo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
)

// Packer collects small sealed objects into packs (docs/repository-format.md, "Format 2",
// "Packs"): a first backup of thousands of small files writes tens of objects, not
// thousands. Add is safe for concurrent use; a full pack is written by the goroutine
// whose Add filled it, outside the lock, so at most one pack per writer is in
// flight and memory stays bounded by the writers and PackSize.
//
// What the packer wrote is referred to by nothing until Finish has written the
// index object naming it; Finish runs before the manifest commit, and its names are
// made durable by the SyncDeferred that PutManifest calls first.
type Packer struct {
	r *Repo

	mu      sync.Mutex
	cur     *bytes.Buffer
	curName string
	pending []IndexEntry // entries of the current, unwritten pack
	done    []IndexEntry // entries of written packs
	seen    map[indexKey]bool
	stored  int64
}

// NewPacker starts a packer; nil for a format-1 repository, which has no packs.
func (r *Repo) NewPacker() *Packer {
	if r.cfg.Format < 2 {
		return nil
	}
	return &Packer{r: r, seen: map[indexKey]bool{}}
}

// Add appends a sealed object as the entry e describes (ID, Kind, Depth and, for a page
// delta, Base; the packer fills in where). An entry already added by this packer is not
// added twice. It returns the bytes of packs it wrote.
func (p *Packer) Add(ctx context.Context, e IndexEntry, obj []byte) (int64, error) {
	p.mu.Lock()
	k := indexKey{e.ID, e.Kind}
	if p.seen[k] {
		p.mu.Unlock()
		return 0, nil
	}
	p.seen[k] = true
	var full *bytes.Buffer
	var fullName string
	var fullEntries []IndexEntry
	if p.cur != nil && p.cur.Len()+len(obj) > p.r.cfg.PackSize {
		full, fullName, fullEntries = p.cur, p.curName, p.pending
		p.cur, p.pending = nil, nil
	}
	if p.cur == nil {
		p.cur = bytes.NewBuffer(make([]byte, 0, p.r.cfg.PackSize))
		p.curName = packPrefix + randomName()
	}
	e.Pack, e.Offset, e.Length = p.curName, uint32(p.cur.Len()), uint32(len(obj))
	p.pending = append(p.pending, e)
	p.cur.Write(obj)
	p.mu.Unlock()
	if full == nil {
		return 0, nil
	}
	return p.write(ctx, fullName, full, fullEntries)
}

func (p *Packer) write(ctx context.Context, name string, buf *bytes.Buffer, entries []IndexEntry) (int64, error) {
	n := int64(buf.Len())
	if err := p.r.st.PutDeferred(ctx, name, bytes.NewReader(buf.Bytes()), n); err != nil {
		return 0, fmt.Errorf("writing pack %s to %s: %w", name, p.r.st, err)
	}
	p.mu.Lock()
	p.done = append(p.done, entries...)
	p.stored += n
	p.mu.Unlock()
	return n, nil
}

// Finish writes the last pack and the index object naming every entry this packer
// wrote. It returns the bytes of the last pack (the index is metadata, like the
// manifest, and not counted).
//
// The index names the entries of the last pack too (an entry's place is fixed
// when it is added), so it is sealed while that pack is written; it is stored
// after the pack, so that no index names a pack that was never written.
func (p *Packer) Finish(ctx context.Context) (int64, error) {
	p.mu.Lock()
	entries := append(slices.Clone(p.done), p.pending...)
	p.mu.Unlock()
	type sealed struct {
		obj []byte
		err error
	}
	index := make(chan sealed, 1)
	go func() {
		obj, err := p.r.sealIndex(entries)
		index <- sealed{obj, err}
	}()
	n, done, err := p.Flush(ctx)
	idx := <-index
	if err != nil {
		return 0, err
	}
	if idx.err != nil {
		return 0, idx.err
	}
	if len(done) != len(entries) {
		return 0, fmt.Errorf("packer: %d entries were added while it finished", len(done)-len(entries))
	}
	if err := p.r.putIndex(ctx, idx.obj, entries); err != nil {
		return 0, err
	}
	return n, nil
}

// Flush writes the last pack and returns the entries of every pack this packer wrote, for a
// caller that writes the index itself (garbage collection writes one index for all live
// entries), and the bytes of the last pack.
func (p *Packer) Flush(ctx context.Context) (int64, []IndexEntry, error) {
	p.mu.Lock()
	cur, name, entries := p.cur, p.curName, p.pending
	p.cur, p.pending = nil, nil
	p.mu.Unlock()
	var n int64
	if cur != nil && cur.Len() > 0 {
		var err error
		if n, err = p.write(ctx, name, cur, entries); err != nil {
			return 0, nil, err
		}
	}
	p.mu.Lock()
	done := p.done
	p.done = nil
	p.mu.Unlock()
	return n, done, nil
}

// Pending is the size of the pack not yet written: what Finish will write.
func (p *Packer) Pending() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == nil {
		return 0
	}
	return int64(p.cur.Len())
}

// readEntry reads and opens a packed entry, appending its plaintext to dst. The
// entry's own envelope is verified (tag, checksum or hash); what the plaintext
// means is the caller's to check.
func (r *Repo) readEntry(ctx context.Context, e IndexEntry, dst []byte, b *ChunkBuffers) ([]byte, Hash, error) {
	b.obj = growTo(b.obj, int(e.Length))
	if err := r.readRange(ctx, e, b.obj, b.windows); err != nil {
		return nil, Hash{}, err
	}
	plain, h, scratch, err := r.Open(dst, b.obj, r.cfg.ChunkSize+r.cfg.ChunkSize/8+1024, b.scratch)
	b.scratch = scratch
	if err != nil {
		return nil, h, fmt.Errorf("pack %s in %s, entry at %d: %w", e.Pack, r.st, e.Offset, err)
	}
	return plain, h, nil
}

// readRange reads entry e's bytes of its pack into dst (len(dst) == e.Length):
// through the pack windows w when the reader has them, else with a ranged read.
func (r *Repo) readRange(ctx context.Context, e IndexEntry, dst []byte, w *PackWindows) error {
	if w != nil && w.read(ctx, r, e, dst) {
		return nil
	}
	rc, err := r.st.GetRange(ctx, e.Pack, int64(e.Offset), int64(e.Length))
	if err != nil {
		return fmt.Errorf("pack %s in %s: %w", e.Pack, r.st, err)
	}
	_, err = io.ReadFull(rc, dst)
	rc.Close()
	if err != nil {
		return fmt.Errorf("pack %s in %s: reading %d bytes at %d: %w", e.Pack, r.st, e.Length, e.Offset, err)
	}
	return nil
}

func growTo(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}
