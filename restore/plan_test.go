package restore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/compress"
	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/storagetest"
	"github.com/pgward/pgward/restore"
	"github.com/pgward/pgward/wal"
	"github.com/pgward/pgward/wal/waltest"
)

const segSize = 1 << 20

// backedUp returns a repository in memory, behind a Faulty, holding a backup of cluster
// "main" consistent in segment 3 of timeline 1 and the WAL after it up to segment 5.
func backedUp(t *testing.T) (*repo.Repo, *storagetest.Faulty, *repo.Manifest) {
	t.Helper()
	ctx := t.Context()
	f := storagetest.NewFaulty(storagetest.NewMemory())
	r, err := repo.Init(ctx, f, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.EnsureIdentity(ctx, repo.Identity{Cluster: "main", SystemIdentifier: "7", PGMajor: 15, WALSegSize: segSize}); err != nil {
		t.Fatal(err)
	}
	codec, _ := compress.Parse("zstd:1")
	base := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for segNo := uint64(3); segNo <= 5; segNo++ {
		s := waltest.NewSegment(1, segNo, segSize, 15, 7)
		s.Filler(3000)
		s.Commit(base.Add(time.Duration(segNo) * time.Minute))
		if _, err := r.PutWAL(ctx, "main", wal.SegmentName(1, segNo, segSize), s.Bytes(), codec); err != nil {
			t.Fatal(err)
		}
	}
	m := &repo.Manifest{ID: "20261201T100000Z", Cluster: "main", SystemIdentifier: "7", PGVersion: 150010,
		Timeline: 1, StartLSN: wal.FormatLSN(3*segSize + 40), StopLSN: wal.FormatLSN(3*segSize + 100),
		StartTime: base, StopTime: base.Add(time.Second), ChunkSize: repo.DefaultChunkSize}
	if err := r.PutManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	return r, f, m
}

// A repository that cannot be reached at all does not stop a restore the others can
// serve: the plan comes from the second one and names the first in its warnings.
func TestPrepareWithUnreachableRepository(t *testing.T) {
	r1, f1, _ := backedUp(t)
	r2, f2, m := backedUp(t)
	f1.Set(storagetest.Fault{Err: storagetest.ErrInjected})
	repos := []*repo.Repo{r1, r2}

	p, err := restore.Prepare(context.Background(), repos, restore.Request{Cluster: "main"})
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if p.Source != r2 || p.Backup.ID != m.ID {
		t.Fatalf("plan restores backup %s from %s, want %s from %s", p.Backup.ID, p.Source, m.ID, r2)
	}
	if want := wal.FormatLSN(6 * segSize); wal.FormatLSN(p.Reach.End) != want {
		t.Errorf("plan reaches %s, want the end of the second repository's WAL, %s", wal.FormatLSN(p.Reach.End), want)
	}
	warned := false
	for _, w := range p.Warnings {
		warned = warned || (strings.Contains(w, r1.String()) && strings.Contains(w, storagetest.ErrInjected.Error()))
	}
	if !warned {
		t.Errorf("warnings %q do not name %s and why it was not used", p.Warnings, r1)
	}
	if f1.Calls("") == 0 {
		t.Error("the unreachable repository was never asked")
	}

	// With no repository answering there is nothing to plan from, and the error says why.
	f2.Set(storagetest.Fault{Err: storagetest.ErrInjected})
	if _, err := restore.Prepare(context.Background(), repos, restore.Request{Cluster: "main"}); !errors.Is(err, storagetest.ErrInjected) {
		t.Fatalf("Prepare with every repository unreachable = %v, want the injected error", err)
	}
}
