package archive

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/pgward/pgward/compress"
	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/local"
	"github.com/pgward/pgward/wal"
)

const benchSegSize = 16 << 20

// fakeSegment builds a 16 MiB segment with a valid long page header and
// WAL-like content (half compressible), so Push's validation accepts it.
func fakeSegment(b testing.TB, segNo uint64, sysid uint64) (string, []byte) {
	data := make([]byte, benchSegSize)
	for off := 0; off < len(data); off += 8192 {
		binary.LittleEndian.PutUint16(data[off:], 0xD110) // PostgreSQL 15 page magic
		info := uint16(0)
		if off == 0 {
			info = 0x0002 // XLP_LONG_HEADER
		}
		binary.LittleEndian.PutUint16(data[off+2:], info)
		binary.LittleEndian.PutUint32(data[off+4:], 1)
		binary.LittleEndian.PutUint64(data[off+8:], segNo*benchSegSize+uint64(off))
		rand.Read(data[off+64 : off+64+2048])
	}
	binary.LittleEndian.PutUint64(data[24:], sysid)
	binary.LittleEndian.PutUint32(data[32:], benchSegSize)
	binary.LittleEndian.PutUint32(data[36:], 8192)
	return wal.SegmentName(1, segNo, benchSegSize), data
}

// BenchmarkPush measures archiving one 16 MiB segment in-process (validation,
// compression, durable write), the cost archive-push pays per call besides
// process start-up; segments/s = 1e9 / ns/op.
func BenchmarkPush(b *testing.B) {
	for _, codec := range []string{"none", "lz4", "zstd:1", "zstd:3"} {
		b.Run(codec, func(b *testing.B) {
			ctx := context.Background()
			dir := b.TempDir()
			st, _ := local.Create(filepath.Join(dir, "repo"))
			r, err := repo.Init(ctx, st, repo.InitOptions{})
			if err != nil {
				b.Fatal(err)
			}
			cd, _ := compress.Parse(codec)
			const sysid = 7312345678901234567
			if err := r.EnsureIdentity(ctx, repo.Identity{Cluster: "main", SystemIdentifier: strconv.FormatUint(sysid, 10), PGMajor: 15, WALSegSize: benchSegSize}); err != nil {
				b.Fatal(err)
			}
			walDir := filepath.Join(dir, "pg_wal")
			os.Mkdir(walDir, 0o700)
			b.SetBytes(benchSegSize)
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				name, data := fakeSegment(b, uint64(i+1), sysid)
				p := filepath.Join(walDir, name)
				os.WriteFile(p, data, 0o600)
				b.StartTimer()
				if err := Push(ctx, []*repo.Repo{r}, p, PushOptions{Cluster: "main", Codec: cd}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkGet measures fetching, verifying and writing one archived segment.
func BenchmarkGet(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	st, _ := local.Create(filepath.Join(dir, "repo"))
	r, _ := repo.Init(ctx, st, repo.InitOptions{})
	const sysid = 7312345678901234567
	r.EnsureIdentity(ctx, repo.Identity{Cluster: "main", SystemIdentifier: strconv.FormatUint(sysid, 10), PGMajor: 15, WALSegSize: benchSegSize})
	cd, _ := compress.Parse("zstd:1")
	name, data := fakeSegment(b, 1, sysid)
	p := filepath.Join(dir, name)
	os.WriteFile(p, data, 0o600)
	if err := Push(ctx, []*repo.Repo{r}, p, PushOptions{Cluster: "main", Codec: cd}); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchSegSize)
	for b.Loop() {
		if _, found, err := Get(ctx, []*repo.Repo{r}, name, filepath.Join(dir, "out"), GetOptions{Cluster: "main"}); err != nil || !found {
			b.Fatal(err, found)
		}
	}
}
