package expire_test

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/pgward/pgward/engine/expire"
	"github.com/pgward/pgward/engine/retention"
	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/local"
	"github.com/pgward/pgward/repo/repotest"
)

// BenchmarkExpire50: a local repository of 50 backups of a 32 MiB cluster (64 relation
// files of 512 KiB, one row's page changed on ~5% of the pages between backups, so most
// chunks are page deltas, plus small files), then expire --keep-last 10: the dry run, the
// real run (removes 40 manifests, repacks, reindexes, deletes), and a second run that finds
// nothing. Run with: go test -run '^$' -bench Expire50 -benchtime 1x ./engine/expire/
func BenchmarkExpire50(b *testing.B) {
	for range b.N {
		b.StopTimer()
		r := build50(b)
		ctx := b.Context()
		o := expire.Options{Cluster: "main", Policy: retention.Policy{Last: 10}}
		b.StartTimer()
		start := time.Now()
		o.DryRun = true
		if _, err := expire.Run(ctx, r, o); err != nil {
			b.Fatal(err)
		}
		dry := time.Since(start)
		start = time.Now()
		o.DryRun = false
		res, err := expire.Run(ctx, r, o)
		if err != nil {
			b.Fatal(err)
		}
		real := time.Since(start)
		start = time.Now()
		if _, err := expire.Run(ctx, r, o); err != nil {
			b.Fatal(err)
		}
		again := time.Since(start)
		b.ReportMetric(dry.Seconds(), "dry-run-s")
		b.ReportMetric(real.Seconds(), "expire-s")
		b.ReportMetric(again.Seconds(), "noop-s")
		b.ReportMetric(float64(res.FreedBytes)/(1<<20), "freed-MiB")
		b.Logf("expired %d backups, freed %d bytes; sweep %+v", len(res.Expired), res.FreedBytes, res.Sweep.Stats)
	}
}

// build50 writes the 50 backups into a new local repository.
func build50(b *testing.B) *repo.Repo {
	b.Helper()
	st, err := local.Create(filepath.Join(b.TempDir(), "repo"))
	if err != nil {
		b.Fatal(err)
	}
	r, err := repo.Init(b.Context(), st, repo.InitOptions{ChunkSize: 64 << 10, PackThreshold: 32 << 10, PackSize: 1 << 20, MaxDeltaDepth: 8})
	if err != nil {
		b.Fatal(err)
	}
	w := &repotest.Writer{T: b, R: r}
	rng := rand.New(rand.NewPCG(3, 4))
	files := map[string][]byte{}
	for i := range 64 {
		data := make([]byte, 512<<10)
		for j := range data {
			data[j] = byte(rng.IntN(13))
		}
		files[fmt.Sprintf("base/1/%d", 1000+i)] = data
	}
	for i := range 200 {
		files[fmt.Sprintf("base/1/%d_vm", 1000+i)] = []byte(fmt.Sprintf("small %d", i))
	}
	for v := range 50 {
		for name, data := range files {
			if len(data) < repo.PageSize {
				continue
			}
			next := append([]byte(nil), data...)
			for p := 0; p < len(next)/repo.PageSize; p++ {
				if rng.IntN(20) == 0 {
					next[p*repo.PageSize+rng.IntN(repo.PageSize)] = byte(v)
				}
			}
			files[name] = next
		}
		files["global/pg_control"] = []byte(fmt.Sprintf("control %d", v))
		w.Backup(files)
	}
	return r
}
