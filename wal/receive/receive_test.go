package receive

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgward/pgward/compress"
	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/local"
	"github.com/pgward/pgward/wal"
	"github.com/pgward/pgward/wal/waltest"
)

// Server errors are classified by SQLSTATE, whatever language the message is in.
func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		code  string
		fatal bool
	}{
		{"58P01", true}, {"42704", true}, {"28P01", true}, {"42501", true},
		{"57P03", false}, {"53300", false}, {"55000", false}, {"XX000", false},
	} {
		pe := &pgconn.PgError{Code: tc.code, Message: "das angeforderte WAL-Segment wurde schon entfernt"}
		err := classify(fmt.Errorf("START_REPLICATION: %w", pe))
		var fe *FatalError
		if got := errors.As(err, &fe); got != tc.fatal {
			t.Errorf("SQLSTATE %s: fatal=%v, want %v (%v)", tc.code, got, tc.fatal, err)
		}
	}
	if err := classify(errors.New("connection reset by peer")); errors.As(err, new(*FatalError)) {
		t.Error("a network error is fatal")
	}
}

// Backoff doubles to its maximum and starts over only after a healthy session.
func TestBackoff(t *testing.T) {
	b := newBackoff()
	var got []time.Duration
	for range 7 {
		got = append(got, b.next(5*time.Second))
	}
	want := []time.Duration{1, 2, 4, 8, 16, 30, 30}
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("waits %v, want %v seconds", got, want)
		}
	}
	if w := b.next(2 * time.Minute); w != time.Second {
		t.Errorf("after a healthy session: %s, want 1s", w)
	}
}

// One process per spool: the second is refused with the holder's pid.
func TestSpoolLock(t *testing.T) {
	dir := t.TempDir()
	a, err := lockSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = lockSpool(dir)
	if !errors.Is(err, ErrSpoolBusy) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("second lock: %v", err)
	}
	a.unlock()
	b, err := lockSpool(dir)
	if err != nil {
		t.Fatalf("after unlock: %v", err)
	}
	b.unlock()
}

const segSize = 1 << 20

func testRepo(t *testing.T) *repo.Repo {
	t.Helper()
	st, err := local.Create(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(context.Background(), st, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Flush uploads a spool left by a killed receiver: the completed segment whole,
// the partial one up to its last complete record; a second Flush has nothing to
// do. Until the repository answers, everything stays in the spool.
func TestFlushSpool(t *testing.T) {
	dir := t.TempDir()
	full := waltest.NewSegment(1, 4, segSize, 15, 77)
	full.Filler(1000)
	full.Commit(time.Now())
	partial := waltest.NewSegment(1, 5, segSize, 15, 77)
	partial.Filler(2000)
	_, end, _ := partial.Commit(time.Now())
	data := partial.Bytes()
	copy(data[end%segSize:], []byte("torn bytes of a record never completed"))
	os.WriteFile(filepath.Join(dir, wal.SegmentName(1, 4, segSize)), full.Bytes(), 0o600)
	os.WriteFile(filepath.Join(dir, wal.SegmentName(1, 5, segSize)+partialSuffix), data, 0o600)

	codec, _ := compress.Parse("zstd:1")
	down := errors.New("repository unreachable")
	o := Options{Cluster: "main", Dir: dir, Codec: codec, OpenRepos: func(context.Context) ([]*repo.Repo, error) { return nil, down }}
	if err := Flush(context.Background(), o, 300*time.Millisecond); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("flush with the repository down: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, wal.SegmentName(1, 4, segSize))); err != nil {
		t.Fatal("the spool lost a segment while the repository was down")
	}

	r := testRepo(t)
	o.OpenRepos = func(context.Context) ([]*repo.Repo, error) { return []*repo.Repo{r}, nil }
	if err := Flush(context.Background(), o, time.Minute); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if ok, _ := r.HasWAL(ctx, "main", wal.SegmentName(1, 4, segSize)); !ok {
		t.Error("the completed segment is not archived")
	}
	_, gotEnd, err := r.GetWALPartial(ctx, "main", wal.SegmentName(1, 5, segSize))
	if err != nil || gotEnd != end {
		t.Errorf("partial uploaded up to %s (%v), want the end of its last record %s", wal.FormatLSN(gotEnd), err, wal.FormatLSN(end))
	}
	if _, err := os.Stat(filepath.Join(dir, wal.SegmentName(1, 4, segSize))); !os.IsNotExist(err) {
		t.Error("the archived segment is still in the spool")
	}
	if err := Flush(ctx, o, time.Minute); err != nil {
		t.Fatalf("second flush: %v", err)
	}
}

// Position's lag is the server's end minus the flushed end, unknown until both are known,
// never negative; a nil Position takes updates and ignores them.
func TestPositionLag(t *testing.T) {
	var p Position
	if p.Lag() != -1 {
		t.Errorf("a new position's lag: %d", p.Lag())
	}
	p.setFlushed(0x1000)
	if p.Lag() != -1 {
		t.Errorf("lag without the server's end: %d", p.Lag())
	}
	p.setServerEnd(0x3000)
	if p.Lag() != 0x2000 {
		t.Errorf("lag %d, want %d", p.Lag(), 0x2000)
	}
	p.setFlushed(0x4000)
	if p.Lag() != 0 {
		t.Errorf("lag when the receiver is ahead of the last report: %d", p.Lag())
	}
	var none *Position
	none.setFlushed(1)
	none.setServerEnd(1)
}

// A session that ends on a segment boundary leaves an empty spool partial: it is not
// uploaded (a partial of zeros holds no WAL) and not counted as left behind.
func TestNoEmptyPartial(t *testing.T) {
	dir := t.TempDir()
	sp, err := lockSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.unlock()
	seg := wal.SegmentName(1, 5, segSize)
	os.WriteFile(filepath.Join(dir, seg+partialSuffix), make([]byte, segSize), 0o600)
	st := &shared{}
	st.setCurrent(seg, 5*segSize)
	r := testRepo(t)
	codec, _ := compress.Parse("zstd:1")
	o := Options{Cluster: "main", Dir: dir, Codec: codec, OpenRepos: func(context.Context) ([]*repo.Repo, error) { return []*repo.Repo{r}, nil }}
	o.defaults()
	u := newUploader(o, sp, st)
	ctx := context.Background()
	u.pass(ctx, true)
	if _, _, err := r.GetWALPartial(ctx, "main", seg); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("an empty partial was uploaded: %v", err)
	}
	if n, err := u.left(); n != 0 || err != nil {
		t.Errorf("left %d (%v), want 0", n, err)
	}
}
