package restore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/pgward/pgward/compress"
	"github.com/pgward/pgward/engine"
	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/local"
	"github.com/pgward/pgward/restore"
	"github.com/pgward/pgward/test/pgtest"
)

// BenchmarkRestore measures restoring one backup of a pgbench cluster
// (PGWARD_BENCH_SCALE, default 20 ≈ 300 MB) from a local repository into a new
// directory, for zstd:3 and lz4 backups at --jobs 1 and 2. MB/s is over the
// bytes written.
func BenchmarkRestore(b *testing.B) {
	scale := 20
	if s, err := strconv.Atoi(os.Getenv("PGWARD_BENCH_SCALE")); err == nil && s > 0 {
		scale = s
	}
	c := pgtest.Start(b, 15, pgtest.Options{})
	c.Pgbench(b, "postgres", "-i", "-q", "-s", strconv.Itoa(scale))
	work := pgtest.TempDir(b)
	ctx := context.Background()
	for _, codec := range []string{"zstd:3", "lz4"} {
		dir := filepath.Join(work, "repo-"+codec)
		st, err := local.Create(dir)
		if err != nil {
			b.Fatal(err)
		}
		r, err := repo.Init(ctx, st, repo.InitOptions{})
		if err != nil {
			b.Fatal(err)
		}
		cd, _ := compress.Parse(codec)
		if _, err := engine.Backup(ctx, []*repo.Repo{r}, engine.BackupOptions{Cluster: "main", Conn: c.ConnString("postgres"), Codec: cd, FastCheckpoint: true}); err != nil {
			b.Fatal(err)
		}
		for _, jobs := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/jobs=%d", codec, jobs), func(b *testing.B) {
				var written int64
				for i := 0; b.Loop(); i++ {
					target := filepath.Join(work, fmt.Sprintf("restored-%d", i))
					res, err := restore.Run(ctx, []*repo.Repo{r}, restore.Options{Cluster: "main", PGData: target, Jobs: jobs, UID: -1, GID: -1})
					if err != nil {
						b.Fatal(err)
					}
					written = res.Written
					b.StopTimer()
					os.RemoveAll(target)
					b.StartTimer()
				}
				b.SetBytes(written)
			})
		}
	}
}
