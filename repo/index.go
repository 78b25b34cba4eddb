package repo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// The index of a format-2 repository (docs/repository-format.md, "Index"): which pack
// holds which entry. Index objects are written once each, by the run that wrote the
// packs they describe, before anything that refers to those entries is committed.
// Readers load them all, lazily, once per open repository.

// Entry kinds.
const (
	KindChunk  = 1 // a whole chunk
	KindDelta  = 2 // a chunk stored as pages over a base chunk
	KindDigest = 3 // the page digests of a chunk
)

const indexPrefix = "index/"

var indexMagic = [4]byte{'P', 'G', 'W', 'I'}

// An entry is 46 bytes in index version 1; version 2 adds the base of a page delta (32 bytes,
// zero for other kinds), so that garbage collection and verify know a delta's base without
// reading the delta.
const (
	indexEntrySizeV1 = 32 + 1 + 1 + 4 + 4 + 4
	indexEntrySizeV2 = indexEntrySizeV1 + 32
	indexVersion     = 2
)

// IndexEntry locates one packed entry.
type IndexEntry struct {
	ID   Hash
	Kind uint8
	// Depth is a page delta's chain length to a whole chunk (1 for a delta over
	// a whole chunk); 0 for other kinds.
	Depth  uint8
	Pack   string // the pack object's name
	Offset uint32
	Length uint32
	// Base is a page delta's base chunk; zero for other kinds, and in index objects of
	// version 1, which do not record it (BaseOf reads it from the delta then).
	Base Hash
}

type indexKey struct {
	id   Hash
	kind uint8
}

// location is an IndexEntry in memory: the pack by number.
type location struct {
	pack           int32
	depth          uint8
	offset, length uint32
}

// index is a loaded index of a repository.
type index struct {
	mu      sync.RWMutex
	packs   []string
	packNum map[string]int32
	entries map[indexKey]location
	// ends[n] is where the last entry the index places in pack n ends: the pack
	// object is at least that long, so a read up to it never runs past its end
	// (packwindow.go).
	ends []uint32
}

func newIndex() *index {
	return &index{packNum: map[string]int32{}, entries: map[indexKey]location{}}
}

func (x *index) add(e IndexEntry) {
	n, ok := x.packNum[e.Pack]
	if !ok {
		n = int32(len(x.packs))
		x.packs = append(x.packs, e.Pack)
		x.ends = append(x.ends, 0)
		x.packNum[e.Pack] = n
	}
	x.ends[n] = max(x.ends[n], e.Offset+e.Length)
	x.entries[indexKey{e.ID, e.Kind}] = location{pack: n, depth: e.Depth, offset: e.Offset, length: e.Length}
}

// indexCache holds a repository's loaded index. A garbage collection sweep may
// move entries to new packs while a reader runs (docs/repository-format.md,
// "Garbage collection"): a reader whose pack is gone invalidates the index it
// used and looks again in a freshly loaded one. The generation makes many
// readers that failed on one index load the next one once.
type indexCache struct {
	mu  sync.Mutex
	cur *index
	gen uint64
}

// loaded returns the current index, loading it first if needed, and its
// generation. Format-1 repositories have an empty index.
func (r *Repo) loaded(ctx context.Context) (*index, uint64, error) {
	c := &r.index
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur != nil {
		return c.cur, c.gen, nil
	}
	x := newIndex()
	if r.cfg.Format >= 2 {
		if err := r.loadIndex(ctx, x); err != nil {
			return nil, 0, err
		}
	}
	c.cur = x
	return x, c.gen, nil
}

// invalidate drops the index of generation gen, if it is still the current one,
// so that the next lookup loads the index afresh.
func (r *Repo) invalidate(gen uint64) {
	c := &r.index
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen == gen {
		c.cur = nil
		c.gen++
	}
}

// IndexGeneration is the generation of the index lookups use now; pass it to
// InvalidateIndex after a read found a pack missing.
func (r *Repo) IndexGeneration() uint64 {
	r.index.mu.Lock()
	defer r.index.mu.Unlock()
	return r.index.gen
}

// InvalidateIndex makes the next lookup load the index afresh, unless that
// already happened since generation gen. A writer calls it after taking its
// repository lock, so that what it believes the repository has is what it has
// after any sweep before.
func (r *Repo) InvalidateIndex(gen uint64) { r.invalidate(gen) }

// loadIndex reads every index object into x.
func (r *Repo) loadIndex(ctx context.Context, x *index) error {
	names, err := r.IndexObjects(ctx)
	if err != nil {
		return err
	}
	for _, name := range names {
		entries, err := r.ReadIndex(ctx, name)
		if err != nil {
			return err
		}
		for _, e := range entries {
			x.add(e)
		}
	}
	return nil
}

// IndexObjects lists the names of the index objects, in name order.
func (r *Repo) IndexObjects(ctx context.Context) ([]string, error) {
	var names []string
	err := r.st.List(ctx, indexPrefix, func(o ObjectInfo) error {
		names = append(names, o.Name)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the index of %s: %w", r.st, err)
	}
	return names, nil
}

// lookup finds a packed entry.
func (r *Repo) lookup(ctx context.Context, id Hash, kind uint8) (IndexEntry, bool, error) {
	x, _, err := r.loaded(ctx)
	if err != nil {
		return IndexEntry{}, false, err
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	l, ok := x.entries[indexKey{id, kind}]
	if !ok {
		return IndexEntry{}, false, nil
	}
	return IndexEntry{ID: id, Kind: kind, Depth: l.depth, Pack: x.packs[l.pack], Offset: l.offset, Length: l.length}, true, nil
}

// packEnd is where the last entry the loaded index places in pack ends (0: none).
func (r *Repo) packEnd(pack string) uint32 {
	r.index.mu.Lock()
	x := r.index.cur
	r.index.mu.Unlock()
	if x == nil {
		return 0
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	n, ok := x.packNum[pack]
	if !ok {
		return 0
	}
	return x.ends[n]
}

// remember adds entries this process wrote to the loaded index.
func (r *Repo) remember(entries []IndexEntry) {
	r.index.mu.Lock()
	x := r.index.cur
	r.index.mu.Unlock()
	if x == nil {
		return // not loaded: the next load reads the index object
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, e := range entries {
		x.add(e)
	}
}

// encodeIndex builds the plaintext of an index object.
func encodeIndex(entries []IndexEntry) []byte {
	sort.Slice(entries, func(i, j int) bool {
		if c := bytes.Compare(entries[i].ID[:], entries[j].ID[:]); c != 0 {
			return c < 0
		}
		return entries[i].Kind < entries[j].Kind
	})
	var packs []string
	packNum := map[string]uint32{}
	for _, e := range entries {
		if _, ok := packNum[e.Pack]; !ok {
			packNum[e.Pack] = uint32(len(packs))
			packs = append(packs, e.Pack)
		}
	}
	b := make([]byte, 0, 16+len(packs)*32+len(entries)*indexEntrySizeV2)
	b = append(b, indexMagic[:]...)
	b = append(b, indexVersion, 0, 0, 0)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(packs)))
	for _, p := range packs {
		id, _ := hex.DecodeString(packID(p))
		b = append(b, id...)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(entries)))
	for _, e := range entries {
		b = append(b, e.ID[:]...)
		b = append(b, e.Kind, e.Depth)
		b = binary.LittleEndian.AppendUint32(b, packNum[e.Pack])
		b = binary.LittleEndian.AppendUint32(b, e.Offset)
		b = binary.LittleEndian.AppendUint32(b, e.Length)
		b = append(b, e.Base[:]...)
	}
	return b
}

// decodeIndex parses an index object's plaintext.
func decodeIndex(b []byte) ([]IndexEntry, error) {
	bad := func(why string) ([]IndexEntry, error) { return nil, fmt.Errorf("%w: index %s", ErrCorrupt, why) }
	if len(b) < 12 || !bytes.Equal(b[:4], indexMagic[:]) {
		return bad("has no index magic")
	}
	version := b[4]
	size := map[byte]int{1: indexEntrySizeV1, 2: indexEntrySizeV2}[version]
	if size == 0 {
		return bad(fmt.Sprintf("version %d is not supported by this pgward", version))
	}
	np := binary.LittleEndian.Uint32(b[8:])
	b = b[12:]
	if uint64(len(b)) < uint64(np)*32+4 {
		return bad("is truncated in its pack list")
	}
	packs := make([]string, np)
	for i := range packs {
		packs[i] = packName(hex.EncodeToString(b[:32]))
		b = b[32:]
	}
	ne := binary.LittleEndian.Uint32(b)
	b = b[4:]
	if uint64(len(b)) != uint64(ne)*uint64(size) {
		return bad("has a wrong size for its entries")
	}
	out := make([]IndexEntry, ne)
	for i := range out {
		e := &out[i]
		copy(e.ID[:], b)
		e.Kind, e.Depth = b[32], b[33]
		p := binary.LittleEndian.Uint32(b[34:])
		if p >= np || e.Kind < KindChunk || e.Kind > KindDigest {
			return bad("has an entry with a bad pack or kind")
		}
		e.Pack = packs[p]
		e.Offset = binary.LittleEndian.Uint32(b[38:])
		e.Length = binary.LittleEndian.Uint32(b[42:])
		if version >= 2 {
			copy(e.Base[:], b[46:78])
		}
		b = b[size:]
	}
	return out, nil
}

// ReadIndex reads and verifies one index object.
func (r *Repo) ReadIndex(ctx context.Context, name string) ([]IndexEntry, error) {
	obj, err := r.getRaw(ctx, name, maxMetaSize)
	if err != nil {
		return nil, fmt.Errorf("reading index %s in %s: %w", name, r.st, err)
	}
	plain, h, _, err := r.Open(nil, obj, maxMetaSize, nil)
	if err == nil && r.ContentHash(plain) != h {
		err = fmt.Errorf("%w: content hash mismatch", ErrCorrupt)
	}
	if err != nil {
		return nil, fmt.Errorf("index %s in %s: %w", name, r.st, err)
	}
	entries, err := decodeIndex(plain)
	if err != nil {
		return nil, fmt.Errorf("index %s in %s: %w", name, r.st, err)
	}
	return entries, nil
}

// writeIndex stores an index object for entries; its name is durable after the
// next SyncDeferred (PutManifest calls it before committing).
func (r *Repo) writeIndex(ctx context.Context, entries []IndexEntry) error {
	obj, err := r.sealIndex(entries)
	if err != nil {
		return err
	}
	return r.putIndex(ctx, obj, entries)
}

// sealIndex builds the index object for entries (nil for none).
func (r *Repo) sealIndex(entries []IndexEntry) ([]byte, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	return r.sealMeta(encodeIndex(entries))
}

// putIndex stores the index object sealIndex built for entries.
func (r *Repo) putIndex(ctx context.Context, obj []byte, entries []IndexEntry) error {
	if len(entries) == 0 {
		return nil
	}
	name := indexPrefix + randomName()
	if err := r.st.PutDeferred(ctx, name, bytes.NewReader(obj), int64(len(obj))); err != nil {
		return fmt.Errorf("writing index %s to %s: %w", name, r.st, err)
	}
	r.remember(entries)
	return nil
}

// randomName is <2 hex>/<64 hex>, the form of pack and index names.
func randomName() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	s := hex.EncodeToString(b[:])
	return s[:2] + "/" + s
}

const packPrefix = "packs/"

func packName(id string) string { return packPrefix + id[:2] + "/" + id }

func packID(name string) string { return name[strings.LastIndexByte(name, '/')+1:] }
