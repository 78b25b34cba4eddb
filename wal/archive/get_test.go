package archive

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pgward/pgward/compress"
	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/storagetest"
	"github.com/pgward/pgward/wal"
	"github.com/pgward/pgward/wal/waltest"
)

const getSegSize = 1 << 20

// faultyRepo returns a repository in memory behind a Faulty, with no faults yet.
func faultyRepo(t *testing.T) (*repo.Repo, *storagetest.Faulty) {
	t.Helper()
	f := storagetest.NewFaulty(storagetest.NewMemory())
	r, err := repo.Init(t.Context(), f, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r, f
}

// archived archives a synthetic segment segNo of timeline 1 into repos.
func archived(t *testing.T, segNo uint64, repos ...*repo.Repo) (string, []byte) {
	t.Helper()
	s := waltest.NewSegment(1, segNo, getSegSize, 15, 7)
	s.Filler(3000)
	s.Commit(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	name, data := wal.SegmentName(1, segNo, getSegSize), s.Bytes()
	codec, _ := compress.Parse("zstd:1")
	for _, r := range repos {
		if _, err := r.PutWAL(t.Context(), "main", name, data, codec); err != nil {
			t.Fatal(err)
		}
	}
	return name, data
}

// archive-get serves a good copy from any repository; it says "not archived" (found=false,
// no error: PostgreSQL ends recovery) only when every repository answered that it does not
// have the file, and fails when a copy is bad everywhere or a repository could not answer.
func TestGetOverFaultyRepositories(t *testing.T) {
	r1, f1 := faultyRepo(t)
	r2, f2 := faultyRepo(t)
	repos := []*repo.Repo{r1, r2}
	both, data := archived(t, 3, r1, r2)
	onlyFirst, _ := archived(t, 4, r1)
	ctx := context.Background()
	o := GetOptions{Cluster: "main"}
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")

	t.Run("CorruptedFirstFallsBack", func(t *testing.T) {
		f1.Set(storagetest.Fault{Op: storagetest.OpGet, Corrupt: true})
		defer f1.Set()
		before := f2.Calls(storagetest.OpGet)
		if _, found, err := Get(ctx, repos, both, dest, o); err != nil || !found {
			t.Fatalf("Get = found %v, %v; want the second repository's copy", found, err)
		}
		if got, _ := os.ReadFile(dest); !bytes.Equal(got, data) {
			t.Fatal("Get delivered other bytes than were archived")
		}
		if f2.Calls(storagetest.OpGet) == before {
			t.Fatal("the second repository was not asked")
		}
	})

	t.Run("CorruptedEverywhere", func(t *testing.T) {
		for _, f := range []*storagetest.Faulty{f1, f2} {
			f.Set(storagetest.Fault{Op: storagetest.OpGet, Corrupt: true})
			defer f.Set()
		}
		os.Remove(dest)
		_, found, err := Get(ctx, repos, both, dest, o)
		if !errors.Is(err, repo.ErrCorrupt) || found {
			t.Fatalf("Get = found %v, %v; want an error wrapping ErrCorrupt", found, err)
		}
		if _, serr := os.Stat(dest); serr == nil {
			t.Fatal("a corrupted copy was written to the destination")
		}
	})

	t.Run("Missing", func(t *testing.T) {
		missing := wal.SegmentName(1, 9, getSegSize)
		if _, found, err := Get(ctx, repos, missing, dest, o); err != nil || found {
			t.Fatalf("Get of a file no repository has = found %v, %v; want not found and no error", found, err)
		}
	})

	t.Run("UnreachableAndMissingElsewhere", func(t *testing.T) {
		f1.Set(storagetest.Fault{Op: storagetest.OpGet, Err: storagetest.ErrInjected})
		defer f1.Set()
		_, found, err := Get(ctx, repos, onlyFirst, dest, o)
		if !errors.Is(err, storagetest.ErrInjected) || found {
			t.Fatalf("Get = found %v, %v; want the first repository's error, not \"not archived\"", found, err)
		}
	})
}

// A streamed partial that claims no WAL (its end is its segment's start) is not served:
// the segment is not archived.
func TestEmptyPartialNotServed(t *testing.T) {
	r, _ := faultyRepo(t)
	name := wal.SegmentName(1, 5, getSegSize)
	codec, _ := compress.Parse("zstd:1")
	if err := r.PutWALPartial(t.Context(), "main", name, 5*getSegSize, make([]byte, getSegSize), codec); err != nil {
		t.Fatal(err)
	}
	if _, found, err := fetchPartial(t.Context(), []*repo.Repo{r}, "main", name); found || err != nil {
		t.Errorf("an empty partial: found %v, %v", found, err)
	}
}
