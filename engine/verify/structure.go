package verify

import (
	"context"
	"errors"
	"fmt"
	"path"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/contents"
	"github.com/pgward/pgward/wal"
)

// structure checks every backup in scope: its manifest, where each chunk it needs is kept,
// and its WAL to consistency.
func (v *run) structure(ctx context.Context) error {
	seen := map[repo.Hash]bool{}
	for _, c := range v.clusters {
		if err := v.listCluster(ctx, c); err != nil {
			return err
		}
		v.identity(ctx, c)
		if !v.o.All && c.ident == nil && len(c.ids) == 0 && len(c.wal) == 0 {
			return absent(fmt.Sprintf("cluster %q has nothing in %s ('pgward list' shows the clusters)", c.name, v.r))
		}
		for _, id := range c.ids {
			m, err := v.r.Manifest(ctx, c.name, id)
			if errors.Is(err, repo.ErrNoBackup) {
				continue // expired since it was listed
			}
			if err != nil {
				v.probs.add(repo.VerifyProblem{Object: repo.ManifestObjectName(c.name, id), Kind: KindManifest,
					Backups: []string{backupName(c.name, id)}, Error: err.Error()})
				continue
			}
			v.backups = append(v.backups, backupRef{c.name, id})
			if err := v.chunks(ctx, m, seen); err != nil {
				return err
			}
			v.backupWAL(c, m)
		}
	}
	v.res.Counts.Backups = len(v.backups)
	v.res.Counts.Chunks = len(seen)
	return nil
}

// chunks follows every chunk of a backup to where it is kept, adding the pieces to those the
// run needs; seen is shared by every backup, so each chunk is followed once.
func (v *run) chunks(ctx context.Context, m *repo.Manifest, seen map[repo.Hash]bool) error {
	return v.store.Walk(ctx, v.r, contents.Chunks(m), seen, contents.Visitor{
		Piece:       func(k contents.Key) { v.pieces[k] = true },
		Missing:     v.missingChunk,
		BaseUnknown: v.baseUnknown,
	})
}

// missingChunk reports a chunk kept nowhere, naming the pack the index places it in when
// that pack is gone or too short.
func (v *run) missingChunk(id repo.Hash) {
	vp := repo.VerifyProblem{Object: repo.ChunkObjectName(id), Kind: KindMissingChunk, Chunk: id.String(),
		Error: fmt.Sprintf("chunk %s is kept nowhere: no chunk object, no pack entry, no page delta", id)}
	for _, kind := range []uint8{repo.KindChunk, repo.KindDelta} {
		if e, ok := v.store.Unplaced[contents.Key{ID: id, Kind: kind}]; ok {
			vp.Object = e.Pack
			vp.Error = fmt.Sprintf("chunk %s is kept nowhere: the index places it in pack %s, which is missing or shorter than the entry (at %d, %d bytes)", id, e.Pack, e.Offset, e.Length)
			break
		}
	}
	v.probs.addMissing(id, vp)
}

// baseUnknown reports a page delta whose base cannot be learned (its entry cannot be read).
func (v *run) baseUnknown(id repo.Hash, err error) error {
	k := contents.Key{ID: id, Kind: repo.KindDelta}
	v.probs.addPieces([]contents.Key{k}, repo.VerifyProblem{Object: v.store.Object(k), Kind: KindPackEntry, Chunk: id.String(), Error: err.Error()})
	return nil
}

// backupWAL checks that every segment from a backup's start to its consistency point is in
// the backup (pg_wal) or archived, and remembers the archived ones as needed by it.
func (v *run) backupWAL(c *clusterScope, m *repo.Manifest) {
	if c.ident == nil {
		return // reported: without the segment size the segments cannot be named
	}
	seg := c.ident.WALSegSize
	name := backupName(c.name, m.ID)
	start, err1 := wal.ParseLSN(m.StartLSN)
	stop, err2 := wal.ParseLSN(m.StopLSN)
	if err := errors.Join(err1, err2); err != nil || stop < start || !wal.ValidSegSize(seg) {
		v.probs.add(repo.VerifyProblem{Object: repo.ManifestObjectName(c.name, m.ID), Kind: KindManifest, Backups: []string{name},
			Error: fmt.Sprintf("backup %s: start %q and stop %q are not a range of WAL (or the identity's segment size %d is invalid): %v", m.ID, m.StartLSN, m.StopLSN, seg, err)})
		return
	}
	inBackup := map[string]bool{}
	for _, f := range m.Files {
		if dir, file := path.Split(f.Path); dir == "pg_wal/" && f.Type == repo.TypeFile && uint64(f.Size) == seg {
			inBackup[file] = true
		}
	}
	// WAL up to stop: when stop is a segment boundary the segment it starts is not needed.
	last := max(start, stop-1) / seg
	if stop == start {
		last = start / seg
	}
	for s := start / seg; s <= last; s++ {
		file := wal.SegmentName(m.Timeline, s, seg)
		obj := repo.WALObjectName(c.name, file)
		v.res.Counts.WALSegments++
		if _, ok := c.wal[obj]; ok {
			c.walNeeds[obj] = append(c.walNeeds[obj], name)
			continue
		}
		if !inBackup[file] {
			v.probs.add(repo.VerifyProblem{Object: obj, Kind: KindMissingWAL, Backups: []string{name},
				Error: fmt.Sprintf("WAL segment %s, which backup %s needs to reach consistency, is neither in the backup nor archived", file, m.ID)})
		}
	}
}
