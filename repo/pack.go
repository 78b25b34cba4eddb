package repo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
)

// Packer collects small sealed objects into packs (docs/repository-format.md, "Format 2",
// "Packs"): a first backup of thousands of small files writes tens of objects, not
// thousands. Add is safe for concurrent use; a full pack is written by the goroutine
// whose Add filled it, outside the lock, so at most one pack per writer is in
// flight and memory stays bounded by the writers and PackSize.
//
// What the packer wrote is referred to by nothing until Checkpoint or Finish has
// written the index object naming it; both run before the manifest commit, and their
// names are made durable by the SyncDeferred that PutManifest calls first.
type Packer struct {
	r *Repo

	mu      sync.Mutex
	cur     *bytes.Buffer
	curName string
	pending []IndexEntry // entries of the current, unwritten pack
	done    []IndexEntry // entries of written packs
	seen    map[indexKey]bool
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

// write stores a full pack and lists its entries for the next index.
func (p *Packer) write(ctx context.Context, name string, buf *bytes.Buffer, entries []IndexEntry) (int64, error) {
	n, err := p.writePack(ctx, name, buf)
	if err != nil {
		return 0, err
	}
	p.mu.Lock()
	p.done = append(p.done, entries...)
	p.mu.Unlock()
	return n, nil
}

func (p *Packer) writePack(ctx context.Context, name string, buf *bytes.Buffer) (int64, error) {
	n := int64(buf.Len())
	if n == 0 {
		return 0, nil
	}
	if err := p.r.st.PutDeferred(ctx, name, bytes.NewReader(buf.Bytes()), n); err != nil {
		return 0, fmt.Errorf("writing pack %s to %s: %w", name, p.r.st, err)
	}
	return n, nil
}

// take removes the pack being filled and the entries of the packs written since the
// last take, which are the entries of the next index: those of a full pack still being
// written when it runs are left to the index after.
func (p *Packer) take() (cur *bytes.Buffer, name string, entries []IndexEntry) {
	p.mu.Lock()
	defer p.mu.Unlock()
	cur, name, entries = p.cur, p.curName, append(p.done, p.pending...)
	p.cur, p.pending, p.done = nil, nil, nil
	return cur, name, entries
}

// Finish writes the last pack and the index object naming every entry this packer
// wrote since its last Checkpoint; nothing may be added while it runs. It returns the
// bytes of the last pack (the index is metadata, like the manifest, and not counted).
func (p *Packer) Finish(ctx context.Context) (int64, error) {
	n, err := p.Checkpoint(ctx)
	if err != nil {
		return 0, err
	}
	p.mu.Lock()
	added := len(p.pending) + len(p.done)
	p.mu.Unlock()
	if added > 0 {
		return 0, fmt.Errorf("packer: %d entries were added while it finished", added)
	}
	return n, nil
}

// Checkpoint writes the pack being filled and an index object naming its entries and
// those of every pack written since the last Checkpoint; the next index names only what
// comes after. A backup calls it once its relation data has arrived, so that the bulk of
// its packs and their index are written while the WAL streams rather than after it (the
// last steps a commit waits for); Adds may go on meanwhile. It returns the bytes of the
// pack it wrote.
//
// The index names the entries of the pack being filled too (an entry's place is fixed
// when it is added), so it is sealed while that pack is written. It is stored once the
// packs it names are durable, names included (SyncDeferred): an index that outlived a
// crash of the machine which lost a pack's name would let later backups dedup against
// entries that no longer exist.
func (p *Packer) Checkpoint(ctx context.Context) (int64, error) {
	cur, name, entries := p.take()
	type sealed struct {
		obj []byte
		err error
	}
	index := make(chan sealed, 1)
	go func() {
		obj, err := p.r.sealIndex(entries)
		index <- sealed{obj, err}
	}()
	var n int64
	var err error
	if cur != nil {
		n, err = p.writePack(ctx, name, cur)
	}
	idx := <-index
	if err != nil {
		return 0, err
	}
	if idx.err != nil {
		return 0, idx.err
	}
	if len(entries) == 0 {
		return n, nil
	}
	if err := p.r.st.SyncDeferred(ctx); err != nil {
		return 0, err
	}
	if err := p.r.putIndex(ctx, idx.obj, entries); err != nil {
		return 0, err
	}
	return n, nil
}

// Flush writes the pack being filled and returns the entries of every pack this packer
// wrote since its last Flush or Checkpoint, for a caller that writes the index itself
// (garbage collection writes one index for all live entries), and the bytes of that pack.
func (p *Packer) Flush(ctx context.Context) (int64, []IndexEntry, error) {
	cur, name, entries := p.take()
	if cur == nil {
		return 0, entries, nil
	}
	n, err := p.writePack(ctx, name, cur)
	if err != nil {
		return 0, nil, err
	}
	return n, entries, nil
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
