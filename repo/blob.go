package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/pgward/pgward/compress"
)

// maxMetaSize bounds metadata objects (manifests, identities) read into memory: a
// manifest of a 100 TB cluster in 4 MiB chunks is well under this.
const maxMetaSize = 1 << 30

// metaCodec compresses metadata objects (manifests, indexes): zstd:1 makes a
// 2.3 MB manifest of 13,000 files smaller than zstd:3 does (534 kB against
// 571 kB: its hex hashes defeat the slower match finder) in 8.5 ms instead of
// 12 ms, and the commit waits for it.
var metaCodec, _ = compress.Parse("zstd:1")

// MetaCodec is the codec of metadata objects; a backup stores the server's
// backup_manifest, JSON of the same kind, with it too.
func MetaCodec() compress.Codec { return metaCodec }

// tinyMeta: metadata objects below this size (locks, identities, pins) are
// stored uncompressed: they shrink by a few dozen bytes, and the first
// compression in a process builds an encoder (~5 ms) on the way to the lock.
const tinyMeta = 1 << 10

// metaCodecFor is the codec of a metadata object of n bytes.
func metaCodecFor(n int) compress.Codec {
	if n < tinyMeta {
		return nil
	}
	return metaCodec
}

// putJSON seals v as a metadata object under name (create-only).
func (r *Repo) putJSON(ctx context.Context, name string, v any) (int64, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	return r.putMeta(ctx, name, plain)
}

// putMeta stores an encoded metadata object.
func (r *Repo) putMeta(ctx context.Context, name string, plain []byte) (int64, error) {
	obj, err := r.sealMeta(plain)
	if err != nil {
		return 0, err
	}
	if err := r.st.Put(ctx, name, bytes.NewReader(obj), int64(len(obj))); err != nil {
		return 0, err
	}
	return int64(len(obj)), nil
}

// sealMeta builds a metadata object from its encoding.
func (r *Repo) sealMeta(plain []byte) ([]byte, error) {
	codec := metaCodecFor(len(plain))
	if codec == nil || len(plain) < sideBySide {
		obj, _, err := r.Seal(nil, plain, r.ContentHash(plain), codec, nil)
		return obj, err
	}
	// The manifest or index of a backup of thousands of files takes milliseconds
	// to hash and as many to compress, at the end of the backup, which waits for
	// both: they run side by side.
	hashed := make(chan Hash, 1)
	go func() { hashed <- r.ContentHash(plain) }()
	compressed, err := codec.Compress(nil, plain)
	h := <-hashed
	if err != nil {
		return nil, fmt.Errorf("compress: %w", err)
	}
	return r.sealCompressed(plain, compressed, h, codec)
}

// sideBySide is the size from which sealMeta hashes and compresses on two
// goroutines: 64 KiB take ~40 µs to hash, a hundred times a goroutine's start.
const sideBySide = 64 << 10

// getJSON reads, verifies and decodes a metadata object.
func (r *Repo) getJSON(ctx context.Context, name string, v any) error {
	return r.getMeta(ctx, name, func(plain []byte) error { return json.Unmarshal(plain, v) })
}

// getMeta reads and verifies a metadata object, and decodes it with decode; a
// decoding error is corruption.
func (r *Repo) getMeta(ctx context.Context, name string, decode func([]byte) error) error {
	obj, err := r.getRaw(ctx, name, maxMetaSize)
	if err != nil {
		return err
	}
	plain, _, _, err := r.Open(nil, obj, maxMetaSize, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := decode(plain); err != nil {
		return fmt.Errorf("%s: %w: %v", name, ErrCorrupt, err)
	}
	return nil
}

// getRaw reads a whole object, refusing objects larger than limit.
func (r *Repo) getRaw(ctx context.Context, name string, limit int64) ([]byte, error) {
	rc, err := r.st.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	// A local object knows its size: read exactly that (a growing buffer
	// would copy a 16 MiB WAL segment twice) and confirm the end.
	if st, ok := rc.(interface{ Stat() (os.FileInfo, error) }); ok {
		if fi, err := st.Stat(); err == nil && fi.Size() <= limit {
			b := make([]byte, fi.Size())
			if _, err := io.ReadFull(rc, b); err != nil {
				return nil, fmt.Errorf("reading %s: %w", name, err)
			}
			var one [1]byte
			if n, _ := rc.Read(one[:]); n == 0 {
				return b, nil
			}
			return nil, fmt.Errorf("reading %s: it grew while being read", name)
		}
	}
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: %w: larger than %d bytes", name, ErrCorrupt, limit)
	}
	return b, nil
}

// readInto reads a whole object into buf (grown as needed, up to limit).
func (r *Repo) readInto(ctx context.Context, name string, buf []byte, limit int64) ([]byte, error) {
	rc, err := r.st.Get(ctx, name)
	if err != nil {
		return buf, err
	}
	defer rc.Close()
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) > limit {
				return buf, fmt.Errorf("%s: %w: larger than %d bytes", name, ErrCorrupt, limit)
			}
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := rc.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			if int64(len(buf)) > limit {
				return buf, fmt.Errorf("%s: %w: larger than %d bytes", name, ErrCorrupt, limit)
			}
			return buf, nil
		}
		if err != nil {
			return buf, fmt.Errorf("reading %s: %w", name, err)
		}
	}
}
