package basebackup

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// UploadManifest sends a previous backup's backup_manifest on conn (the replication
// command UPLOAD_MANIFEST, PostgreSQL 17+): the reference an INCREMENTAL base backup
// on the same connection is taken against.
func UploadManifest(ctx context.Context, conn *pgconn.PgConn, manifest []byte) error {
	conn.Frontend().SendQuery(&pgproto3.Query{String: "UPLOAD_MANIFEST"})
	if err := conn.Frontend().Flush(); err != nil {
		return fmt.Errorf("UPLOAD_MANIFEST: %w", err)
	}
	sent := false
	for {
		msg, err := conn.ReceiveMessage(ctx)
		if err != nil {
			return fmt.Errorf("UPLOAD_MANIFEST: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.CopyInResponse:
			const piece = 64 << 10
			for off := 0; off < len(manifest); off += piece {
				conn.Frontend().Send(&pgproto3.CopyData{Data: manifest[off:min(off+piece, len(manifest))]})
			}
			conn.Frontend().Send(&pgproto3.CopyDone{})
			if err := conn.Frontend().Flush(); err != nil {
				return fmt.Errorf("UPLOAD_MANIFEST: %w", err)
			}
			sent = true
		case *pgproto3.ErrorResponse:
			drainToReady(ctx, conn)
			return fmt.Errorf("UPLOAD_MANIFEST: %w", pgconn.ErrorResponseToPgError(m))
		case *pgproto3.ReadyForQuery:
			if !sent {
				return fmt.Errorf("UPLOAD_MANIFEST: the server did not ask for the manifest")
			}
			return nil
		}
	}
}

// drainToReady reads what the server still sends after an error, up to its
// ReadyForQuery, so that the connection takes the next command.
func drainToReady(ctx context.Context, conn *pgconn.PgConn) {
	for {
		msg, err := conn.ReceiveMessage(ctx)
		if err != nil {
			return
		}
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			return
		}
	}
}

// IncrementalPrefix names the files an incremental backup sends in place of a
// relation file: "INCREMENTAL." + the file's own name, in the same directory.
const IncrementalPrefix = "INCREMENTAL."

// incrementalMagic starts every incremental file (INCREMENTAL_MAGIC in
// src/include/backup/basebackup_incremental.h).
const incrementalMagic = 0xd3ae1f0d

// relsegBlocks is RELSEG_SIZE in blocks of 8 kB: a relation segment is at most 1 GB.
const relsegBlocks = 131072

// Incremental is the header of an incremental file: which blocks it holds, and
// how long the file is now.
type Incremental struct {
	// Blocks are the block numbers whose contents follow, in order.
	Blocks []uint32
	// TruncationBlocks is the file's length in blocks as far as older backups
	// supply blocks: blocks below it that Blocks lacks come from the previous
	// version; blocks at or past it that Blocks lacks are zero.
	TruncationBlocks uint32
	// HeaderLength is where the first block starts in the file.
	HeaderLength int64
}

// Length is the reconstructed file's length in blocks.
func (in Incremental) Length() uint32 {
	n := in.TruncationBlocks
	for _, b := range in.Blocks {
		n = max(n, b+1)
	}
	return n
}

// ParseIncremental reads an incremental file's header from its first bytes (at
// least 12 + 4 × the block count) and checks it against the file's size. The
// format is the server's (little-endian on every platform pgward runs on): magic,
// block count, truncation block length, the block numbers; the blocks follow,
// from a header padded to a multiple of the block size when the server pads it.
func ParseIncremental(head []byte, size int64) (Incremental, error) {
	var in Incremental
	if len(head) < 12 || binary.LittleEndian.Uint32(head) != incrementalMagic {
		return in, fmt.Errorf("not an incremental file (bad magic)")
	}
	n := binary.LittleEndian.Uint32(head[4:])
	in.TruncationBlocks = binary.LittleEndian.Uint32(head[8:])
	if n > relsegBlocks || in.TruncationBlocks > relsegBlocks {
		return in, fmt.Errorf("incremental file claims %d blocks and a length of %d, more than a relation segment holds", n, in.TruncationBlocks)
	}
	hdr := int64(12 + 4*n)
	if int64(len(head)) < hdr {
		return in, fmt.Errorf("incremental file header is cut short")
	}
	in.Blocks = make([]uint32, n)
	for i := range in.Blocks {
		in.Blocks[i] = binary.LittleEndian.Uint32(head[12+4*i:])
		if in.Blocks[i] >= relsegBlocks {
			return in, fmt.Errorf("incremental file names block %d, past a relation segment", in.Blocks[i])
		}
	}
	data := int64(n) * blockSize
	switch {
	case size == hdr+data:
		in.HeaderLength = hdr
	case n > 0 && size == (hdr+blockSize-1)/blockSize*blockSize+data:
		in.HeaderLength = (hdr + blockSize - 1) / blockSize * blockSize
	default:
		return in, fmt.Errorf("incremental file of %d bytes does not hold the %d blocks its header names", size, n)
	}
	return in, nil
}

const blockSize = 8192

// IsIncremental tells an incremental file's tar path apart, returning the path of
// the file it stands for.
func IsIncremental(path string) (string, bool) {
	dir, base := "", path
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		dir, base = path[:i+1], path[i+1:]
	}
	name, ok := strings.CutPrefix(base, IncrementalPrefix)
	if !ok || name == "" {
		return "", false
	}
	return dir + name, true
}
