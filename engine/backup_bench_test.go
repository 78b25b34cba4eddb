package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/pgward/pgward/compress"
	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/local"
	"github.com/pgward/pgward/test/pgtest"
)

// BenchmarkBackup measures the whole backup pipeline against a real PostgreSQL
// 15 cluster (pgbench at PGWARD_BENCH_SCALE, default 20 ≈ 300 MB) into a fresh
// local repository per iteration, for each codec and --jobs 1 and 2. MB/s is
// over the bytes received from the server; every iteration is a full first
// backup (nothing to deduplicate against).
func BenchmarkBackup(b *testing.B) {
	scale := 20
	if s, err := strconv.Atoi(os.Getenv("PGWARD_BENCH_SCALE")); err == nil && s > 0 {
		scale = s
	}
	c := pgtest.Start(b, 15, pgtest.Options{})
	c.Pgbench(b, "postgres", "-i", "-q", "-s", strconv.Itoa(scale))
	c.Exec(b, "postgres", "CHECKPOINT")
	work := pgtest.TempDir(b)
	for _, codec := range []string{"none", "lz4", "zstd:1", "zstd:3"} {
		for _, jobs := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/jobs=%d", codec, jobs), func(b *testing.B) {
				cd, err := compress.Parse(codec)
				if err != nil {
					b.Fatal(err)
				}
				var received int64
				for i := 0; b.Loop(); i++ {
					dir := filepath.Join(work, fmt.Sprintf("repo-%s-%d-%d", codec, jobs, i))
					st, err := local.Create(dir)
					if err != nil {
						b.Fatal(err)
					}
					r, err := repo.Init(context.Background(), st, repo.InitOptions{})
					if err != nil {
						b.Fatal(err)
					}
					res, err := Backup(context.Background(), []*repo.Repo{r}, BackupOptions{Cluster: "main", Conn: c.ConnString("postgres"), Codec: cd, Jobs: jobs, FastCheckpoint: true})
					if err != nil {
						b.Fatal(err)
					}
					received = res.Received
					b.StopTimer()
					os.RemoveAll(dir)
					b.StartTimer()
				}
				b.SetBytes(received)
			})
		}
	}
}
