package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/pgward/pgward/internal/pgserver/basebackup"
	"github.com/pgward/pgward/repo"
)

// rebuilder turns the INCREMENTAL.<name> files of a PostgreSQL 17+ incremental
// backup back into whole files, chunk by chunk, from the previous backup's chunks
// and the changed blocks, so that the repository's backup is logically full like
// any other (docs/repository-format.md, "INCREMENTAL"). The rules are the server's
// (pg_combinebackup): a block the incremental file holds comes from it; another
// block below the truncation length comes from the previous version; any other
// block is zero. A chunk none of whose blocks changed, and which the previous
// version holds whole, is the previous chunk: it is neither read nor hashed again.
//
// The source only puts the changed blocks in place; reading the previous chunk
// (decompressing 4 MiB, or rebuilding it from its page deltas) for the rest is a
// chunk store worker's job (baseFill), on the cores the stream does not need:
// done by the source, it was most of an incremental backup's time.
type rebuilder struct {
	store *chunkStore
	// from is the repository the previous chunks are read from (the previous
	// backup is the same in every repository: Backup checks it).
	from int
}

// baseFill is what a worker adds to a chunk of an incremental file before hashing
// it: the previous version's bytes of the chunk below the truncation length (keep
// bytes of chunk prev), zeros elsewhere, except on the pages the server sent
// (changed, ascending page indexes within the chunk), already in place.
type baseFill struct {
	from    *repo.Repo // nil: there is no previous chunk to read, only zeros
	prev    repo.Hash
	keep    int64
	changed []uint32
}

// incremental reads one incremental file from r (size bytes, its tar entry) into
// f, which it renames to the file it stands for, and returns the CRC32C of the
// bytes received (the server's backup_manifest lists the incremental file).
func (s *source) incremental(ctx context.Context, f *fileState, r io.Reader, size int64) (uint32, error) {
	crc := crc32.New(castagnoli)
	r = io.TeeReader(r, crc)
	in, err := readIncrementalHeader(r, size)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", f.entry.Path, err)
	}
	for i := 1; i < len(in.Blocks); i++ {
		if in.Blocks[i] <= in.Blocks[i-1] {
			return 0, fmt.Errorf("%s: the incremental file's blocks are not in ascending order", f.entry.Path)
		}
	}
	real, _ := basebackup.IsIncremental(f.entry.Path)
	f.entry.Path = real
	length := int64(in.Length()) * repo.PageSize
	f.entry.Size = length
	chunkSize := int64(s.chunkSize)
	n := int((length + chunkSize - 1) / chunkSize)
	for ri := range f.ids {
		f.ids[ri] = make([]repo.Hash, n)
	}
	prev := make([]repo.File, len(f.ids))
	for ri := range f.ids {
		prev[ri] = s.rebuild.store.prev[ri][real]
	}
	blocksPerChunk := uint32(chunkSize / repo.PageSize)
	next := 0 // index into in.Blocks of the next changed block
	for i := range n {
		first, end := uint32(i)*blocksPerChunk, min(uint32(i+1)*blocksPerChunk, in.Length())
		changed := next < len(in.Blocks) && in.Blocks[next] < end
		if !changed && end <= in.TruncationBlocks && s.rebuild.reusable(prev, i, first, end) {
			for ri := range f.ids {
				f.ids[ri][i] = prev[ri].Chunks[i]
			}
			s.got.total += int64(end-first) * repo.PageSize
			continue
		}
		buf, err := s.takeBuffer(ctx)
		if err != nil {
			return 0, err
		}
		b := (*buf)[:int64(end-first)*repo.PageSize]
		fill := s.rebuild.fillOf(prev[s.rebuild.from], i, first, in.TruncationBlocks)
		for ; next < len(in.Blocks) && in.Blocks[next] < end; next++ {
			off := int64(in.Blocks[next]-first) * repo.PageSize
			if _, err := io.ReadFull(r, b[off:off+repo.PageSize]); err != nil {
				s.pool.put(buf)
				return 0, fmt.Errorf("reading %s from the server: %w", f.entry.Path, err)
			}
			fill.changed = append(fill.changed, in.Blocks[next]-first)
		}
		if err := s.emitFill(ctx, f, i, buf, len(b), fill); err != nil {
			return 0, err
		}
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		return 0, fmt.Errorf("reading %s from the server: %w", f.entry.Path, err)
	}
	return crc.Sum32(), nil
}

// readIncrementalHeader reads the header (and its padding) of an incremental file.
func readIncrementalHeader(r io.Reader, size int64) (basebackup.Incremental, error) {
	head := make([]byte, 12)
	if _, err := io.ReadFull(r, head); err != nil {
		return basebackup.Incremental{}, fmt.Errorf("reading the incremental header: %w", err)
	}
	n := int64(binary.LittleEndian.Uint32(head[4:]))
	if n > 131072 {
		n = 0 // ParseIncremental names the problem
	}
	head = append(head, make([]byte, 4*n)...)
	if _, err := io.ReadFull(r, head[12:]); err != nil {
		return basebackup.Incremental{}, fmt.Errorf("reading the incremental header: %w", err)
	}
	in, err := basebackup.ParseIncremental(head, size)
	if err != nil {
		return in, err
	}
	if pad := in.HeaderLength - int64(len(head)); pad > 0 {
		if _, err := io.CopyN(io.Discard, r, pad); err != nil {
			return in, fmt.Errorf("reading the incremental header: %w", err)
		}
	}
	return in, nil
}

// reusable reports whether chunk i of the previous version is exactly the range
// [first, end) of the new one in every repository, so that it can stand unread.
func (rb *rebuilder) reusable(prev []repo.File, i int, first, end uint32) bool {
	for _, p := range prev {
		if i >= len(p.Chunks) || p.Size < int64(end)*repo.PageSize {
			return false
		}
		chunkEnd := min(int64(i+1)*int64(rb.store.repos[0].Config().ChunkSize), p.Size)
		if chunkEnd != int64(end)*repo.PageSize || int64(first)*repo.PageSize != int64(i)*int64(rb.store.repos[0].Config().ChunkSize) {
			return false
		}
	}
	return true
}

// fillOf is the base of chunk i (blocks from first) of a file whose previous
// version is prev: what it supplies below the truncation length.
func (rb *rebuilder) fillOf(prev repo.File, i int, first, truncation uint32) *baseFill {
	if i >= len(prev.Chunks) || first >= truncation {
		return &baseFill{}
	}
	return &baseFill{from: rb.store.repos[rb.from], prev: prev.Chunks[i], keep: int64(truncation-first) * repo.PageSize}
}

// apply completes b (the chunk, with the changed pages in place) from the previous
// version, read into bufs.
func (fl *baseFill) apply(ctx context.Context, b []byte, bufs *repo.ChunkBuffers) error {
	var old []byte
	if fl.from != nil {
		var err error
		if old, err = fl.from.GetChunk(ctx, fl.prev, bufs); err != nil {
			return fmt.Errorf("reading the previous version: %w", err)
		}
	}
	fl.complete(b, old)
	return nil
}

// complete fills the pages of b the server did not send: from old (the previous
// version of the chunk) below keep, zeros elsewhere.
func (fl *baseFill) complete(b, old []byte) {
	keep := min(fl.keep, int64(len(old)), int64(len(b)))
	changed := fl.changed
	for p := int64(0); p*repo.PageSize < int64(len(b)); p++ {
		if len(changed) > 0 && int64(changed[0]) == p {
			changed = changed[1:]
			continue
		}
		start, end := p*repo.PageSize, min((p+1)*repo.PageSize, int64(len(b)))
		n := copy(b[start:min(end, max(keep, start))], old[min(start, keep):keep])
		clear(b[start+int64(n) : end])
	}
}

// fullBackupLabel stores the backup_label of an incremental backup without its
// INCREMENTAL FROM lines: rebuilt, the backup is a full one, and PostgreSQL refuses
// to start a directory whose label says it is incremental. It returns the CRC32C
// of the label as received.
func (s *source) fullBackupLabel(ctx context.Context, f *fileState, r io.Reader, size int64) (uint32, error) {
	if size > 1<<20 {
		return 0, fmt.Errorf("backup_label of %d bytes is not one PostgreSQL writes", size)
	}
	label := make([]byte, size)
	if _, err := io.ReadFull(r, label); err != nil {
		return 0, fmt.Errorf("reading backup_label from the server: %w", err)
	}
	var kept bytes.Buffer
	for _, line := range bytes.SplitAfter(label, []byte("\n")) {
		if !bytes.HasPrefix(line, []byte("INCREMENTAL FROM ")) {
			kept.Write(line)
		}
	}
	f.entry.Size = int64(kept.Len())
	if _, err := s.send(ctx, f, &kept, f.entry.Size); err != nil {
		return 0, err
	}
	return crc32.Checksum(label, castagnoli), nil
}
