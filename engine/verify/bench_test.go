package verify_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pgward/pgward/compress"
	"github.com/pgward/pgward/engine/verify"
	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/contents"
	"github.com/pgward/pgward/repo/local"
	"github.com/pgward/pgward/repo/repotest"
)

// The benchmark repository: 50 backups of a cluster of 8 relation files of 8 MiB (two 4 MiB
// chunks each) and 400 small files of 8 KiB, on local storage with the default format-2
// settings (packs below 1 MiB, page deltas 8 deep). Between two backups 3 pages of every
// relation chunk and 10 small files change: the chunks are stored as page deltas, whole
// again every ninth backup, and the small files in packs. Chunks are compressed with zstd:3
// (the default), small objects with lz4, as backup does.
const (
	benchBackups   = 50
	benchRelations = 8
	benchRelSize   = 8 << 20
	benchSmall     = 400
)

// benchCluster makes the files of version v, changing buf in place (version 0 fills it).
type benchCluster struct {
	rng   *rand.Rand
	files map[string][]byte
}

func newBenchCluster() *benchCluster {
	c := &benchCluster{rng: rand.New(rand.NewPCG(7, 7)), files: map[string][]byte{}}
	row := func(b []byte) {
		// Rows of a table: a counter, a few random bytes, padding: compresses about 3:1.
		for i := 0; i+64 <= len(b); i += 64 {
			copy(b[i:], fmt.Sprintf("%08d", c.rng.IntN(1e8)))
			for j := 8; j < 24; j++ {
				b[i+j] = byte(c.rng.IntN(256))
			}
		}
	}
	for i := range benchRelations {
		c.files[fmt.Sprintf("base/5/%d", 16384+i)] = make([]byte, benchRelSize)
		row(c.files[fmt.Sprintf("base/5/%d", 16384+i)])
	}
	for i := range benchSmall {
		c.files[fmt.Sprintf("base/5/%d", 20000+i)] = make([]byte, repo.PageSize)
		row(c.files[fmt.Sprintf("base/5/%d", 20000+i)])
	}
	return c
}

// next changes 3 pages of every relation chunk and 10 small files.
func (c *benchCluster) next() map[string][]byte {
	for i := range benchRelations {
		f := c.files[fmt.Sprintf("base/5/%d", 16384+i)]
		for range 3 * benchRelSize / repo.DefaultChunkSize {
			p := c.rng.IntN(len(f) / repo.PageSize)
			f[p*repo.PageSize+100] ^= byte(1 + c.rng.IntN(255))
		}
	}
	for range 10 {
		f := c.files[fmt.Sprintf("base/5/%d", 20000+c.rng.IntN(benchSmall))]
		f[200] ^= byte(1 + c.rng.IntN(255))
	}
	return c.files
}

func benchRepo(b *testing.B) (*repo.Repo, *repotest.Writer, *benchCluster) {
	b.Helper()
	st, err := local.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	r, err := repo.Init(b.Context(), st, repo.InitOptions{})
	if err != nil {
		b.Fatal(err)
	}
	zstd, _ := compress.Parse("zstd:3")
	w := &repotest.Writer{T: b, R: r, Codec: zstd}
	c := newBenchCluster()
	start := time.Now()
	for range benchBackups {
		w.Backup(c.next())
	}
	s, err := contents.Load(b.Context(), r, func(string, error) error { return nil })
	if err != nil {
		b.Fatal(err)
	}
	deltas, stored := 0, int64(0)
	for k := range s.Chosen {
		if k.Kind == repo.KindDelta {
			deltas++
		}
	}
	for _, size := range s.Packs {
		stored += size
	}
	for _, size := range s.Whole {
		stored += size
	}
	b.Logf("wrote %d backups in %s: %d chunk objects, %d packs, %d page deltas, %d MiB stored",
		benchBackups, time.Since(start).Round(time.Millisecond), len(s.Whole), len(s.Packs), deltas, stored>>20)
	return r, w, c
}

// BenchmarkVerify50: verify of 50 backups, structure only, reading everything, a second
// --read-data-subset 0% run (everything verified: reads nothing but metadata), and a
// --read-data-subset 0% run after one more backup (reads what it added).
func BenchmarkVerify50(b *testing.B) {
	r, w, c := benchRepo(b)
	run := func(b *testing.B, o verify.Options) *verify.Result {
		o.Cluster = "main"
		res, err := verify.Run(b.Context(), r, o)
		if err != nil || !res.OK {
			b.Fatalf("verify: %v %+v", err, res)
		}
		return res
	}
	report := func(b *testing.B, res *verify.Result) {
		b.ReportMetric(float64(res.Counts.ObjectsRead), "objects/op")
		b.ReportMetric(float64(res.BytesRead)/(1<<20), "MiB-read/op")
		b.Logf("%d backups, %d chunks, %d objects, read %d (%d MiB)", res.Counts.Backups, res.Counts.Chunks, res.Counts.Objects, res.Counts.ObjectsRead, res.BytesRead>>20)
	}
	b.Run("structure", func(b *testing.B) {
		var res *verify.Result
		for b.Loop() {
			res = run(b, verify.Options{})
		}
		report(b, res)
	})
	b.Run("read-data", func(b *testing.B) {
		var res *verify.Result
		for b.Loop() {
			res = run(b, verify.Options{Mode: verify.ReadData})
		}
		report(b, res)
	})
	b.Run("read-data-subset-0-second-run", func(b *testing.B) {
		run(b, verify.Options{Mode: verify.ReadData}) // every object in the ledger
		var res *verify.Result
		for b.Loop() {
			res = run(b, verify.Options{Mode: verify.ReadSubset, Subset: 0})
		}
		report(b, res)
	})
	b.Run("read-data-subset-0-after-a-backup", func(b *testing.B) {
		run(b, verify.Options{Mode: verify.ReadData})
		var res *verify.Result
		for b.Loop() {
			b.StopTimer()
			w.Backup(c.next())
			b.StartTimer()
			res = run(b, verify.Options{Mode: verify.ReadSubset, Subset: 0})
		}
		report(b, res)
	})
}
