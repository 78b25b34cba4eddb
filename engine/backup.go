package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgward/pgward/compress"
	"github.com/pgward/pgward/internal/pgserver"
	"github.com/pgward/pgward/internal/pgserver/basebackup"
	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/restore"
	"golang.org/x/sync/errgroup"
)

// BackupOptions configure one backup.
type BackupOptions struct {
	Cluster string
	// Conn is a libpq connection string or URI (replication is added).
	Conn  string
	Codec compress.Codec
	// Jobs is the number of chunk workers (default: number of CPUs).
	Jobs int
	// FastCheckpoint asks the server for an immediate checkpoint.
	FastCheckpoint bool
	// MaxRate limits the server's send rate in kB/s (0 = unlimited).
	MaxRate int
	// NoIncremental takes a full backup even where an INCREMENTAL one is
	// possible (PostgreSQL 17+ with summarize_wal = on and a previous backup).
	NoIncremental bool
	// Standby is StandbyOff (back up Conn, whatever it is), StandbyOn (Conn
	// must be a standby of the primary at PrimaryConn) or StandbyPrefer (as
	// on, falling back to the primary); see standby.go.
	Standby     string
	PrimaryConn string
	Label       string
	Log         *slog.Logger
	// Total, when set, is told the backup's expected size once the data starts: the
	// server's estimate, or without one the size of the previous backup (0 for the
	// first).
	Total func(bytes int64)
	// NoEstimate skips the server's size estimate (BASE_BACKUP PROGRESS, a pass over
	// every file's size before the data: tens of ms for thousands of files, which a
	// backup nobody watches need not wait for).
	NoEstimate bool
	// Progress, when set, is called from the reader goroutine after each chunk
	// with the total bytes received so far. It must be cheap.
	Progress func(received int64)
}

// BackupResult summarises a committed backup.
type BackupResult struct {
	// Manifests has one entry per repository, in the order given.
	Manifests []*repo.Manifest
	// Received is the number of bytes of file data received from the server.
	Received int64
	// Stored is the number of bytes newly written to the first repository.
	Stored   int64
	Duration time.Duration
	// Stages says where the time went.
	Stages StageTimes
}

// maxServerManifest bounds the server's backup_manifest held in memory.
const maxServerManifest = 1 << 30

// Backup takes a base backup of the server at o.Conn and stores it in every
// repository in repos. It returns only after each repository has committed the
// backup's manifest; on any error nothing is committed in any of them.
func Backup(ctx context.Context, repos []*repo.Repo, o BackupOptions) (*BackupResult, error) {
	chunkSize, err := o.check(repos)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	began := time.Now()
	src, err := connectSource(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	defer src.close(ctx)
	conn, facts := src.conn, src.facts
	if err := identifyServer(ctx, facts, repos, o.Cluster); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	locks, err := lockRepos(ctx, repos, o.Cluster, o.Log)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	defer locks.unlock(ctx)
	store, prev, id, err := prepareStore(ctx, repos, o, began)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	label := o.Label
	if label == "" {
		label = "pgward " + id
	}

	o.Log.Info("backup starting", "cluster", o.Cluster, "backup", id, "system_identifier", facts.SystemIDString, "pg_version", facts.Version.Num, "jobs", o.Jobs, "compress", o.Codec.String())
	cat := openCatalog(ctx, src.connStr)
	defer cat.close(ctx)
	bo := basebackup.Options{Label: label, Fast: o.FastCheckpoint, MaxRate: o.MaxRate, Progress: !o.NoEstimate}
	bo.Incremental = !o.NoIncremental && prepareIncremental(ctx, conn, facts, repos, prev, o.Log)
	stream, err := startStream(ctx, conn, facts.Version.Major, bo, o.Log)
	if err != nil && bo.Incremental {
		o.Log.Warn("the server cannot take an incremental backup against the previous one: taking a full backup", "error", err)
		bo.Incremental = false
		stream, err = startStream(ctx, conn, facts.Version.Major, bo, o.Log)
	}
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if o.Total != nil {
		o.Total(expectedSize(stream, prev[0]))
	}
	startTime := time.Now().UTC()
	var rb *rebuilder
	if bo.Incremental {
		rb = &rebuilder{store: store}
		o.Log.Info("incremental backup: the server sends only the blocks that changed since backup " + prev[0].ID)
	}
	// The databases are listed once the last file has arrived (a database
	// created during the backup is named too), while the pipeline finishes.
	dbs := make(chan []pgserver.Database, 1)
	listDatabases := func() { go func() { dbs <- cat.databases(o.Log) }() }
	got, err := pipeline(ctx, stream, store, chunkSize, rb, o, listDatabases)
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", id, err)
	}
	for _, n := range stream.Notices() {
		o.Log.Debug("server notice", "message", n)
	}
	meta := repo.Manifest{
		ID: id, Cluster: o.Cluster, SystemIdentifier: facts.SystemIDString, PGVersion: facts.Version.Num,
		Timeline: uint32(stream.Timeline), StartLSN: stream.StartLSN.String(), StopLSN: got.stopLSN.String(),
		StartTime: startTime, StopTime: time.Now().UTC(), Label: label, Compress: o.Codec.String(), ChunkSize: chunkSize,
		DBBytes: got.total, WALFiles: got.walFiles, Tablespaces: got.tbs, FromStandby: facts.InRecovery,
	}
	for _, d := range <-dbs {
		meta.Databases = append(meta.Databases, repo.Database{OID: d.OID, Name: d.Name})
	}
	if got.stopTLI != 0 && uint32(got.stopTLI) != meta.Timeline {
		o.Log.Warn("timeline changed during the backup", "start_timeline", meta.Timeline, "stop_timeline", got.stopTLI)
	}
	manifests, err := commit(ctx, repos, meta, got.files, store, locks)
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", id, err)
	}
	res := &BackupResult{Manifests: manifests, Received: got.total, Stored: store.stored[0].Load(), Duration: time.Since(began), Stages: store.times(got.readTime)}
	o.Log.Info("backup committed", "backup", id, "received_bytes", got.total, "stored_bytes", res.Stored, "duration", res.Duration.Round(time.Millisecond),
		"read_seconds", res.Stages.Read.Seconds(), "seal_seconds", res.Stages.Seal.Seconds(), "store_seconds", res.Stages.Store.Seconds())
	return res, nil
}

// expectedSize is the backup's size for progress: the server's estimate when it
// was asked for, else the size of the previous backup's files (nil: none, 0).
func expectedSize(stream *basebackup.Stream, prev *repo.Manifest) int64 {
	if n := stream.EstimatedSize(); n > 0 || prev == nil {
		return n
	}
	return prev.DBBytes
}

// spreadNotice is how long a backup may wait for its start before it says it waits for a
// spread checkpoint.
const spreadNotice = 3 * time.Second

// startStream sends BASE_BACKUP; when the server has not started sending within
// spreadNotice (a spread checkpoint takes up to checkpoint_timeout ×
// checkpoint_completion_target), it says what it waits for and how not to.
func startStream(ctx context.Context, conn *pgconn.PgConn, major int, bo basebackup.Options, log *slog.Logger) (*basebackup.Stream, error) {
	if !bo.Fast {
		t := time.AfterFunc(spreadNotice, func() {
			log.Info("waiting for the server's spread checkpoint before the backup starts (it paces itself over checkpoint_completion_target of checkpoint_timeout); --checkpoint fast starts at once, at the cost of an I/O burst")
		})
		defer t.Stop()
	}
	return basebackup.Start(ctx, conn, major, bo)
}

// check fills in defaults and returns the repositories' common chunk size.
func (o *BackupOptions) check(repos []*repo.Repo) (int, error) {
	if len(repos) == 0 {
		return 0, errors.New("no repository given")
	}
	if err := repo.ValidClusterName(o.Cluster); err != nil {
		return 0, err
	}
	if o.Jobs <= 0 {
		o.Jobs = runtime.NumCPU()
	}
	if o.Codec == nil {
		o.Codec, _ = compress.Parse("zstd:3")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	chunkSize := repos[0].Config().ChunkSize
	for _, r := range repos[1:] {
		if r.Config().ChunkSize != chunkSize {
			return 0, fmt.Errorf("repositories %s and %s use different chunk sizes (%d and %d); they cannot be written in one backup", repos[0], r, chunkSize, r.Config().ChunkSize)
		}
	}
	return chunkSize, nil
}

// identifyServer checks the server's facts against (or records them as) each
// repository's record of the cluster.
func identifyServer(ctx context.Context, facts pgserver.Facts, repos []*repo.Repo, cluster string) error {
	if facts.WALLevel == "minimal" {
		return fmt.Errorf("the server runs with wal_level = minimal, which cannot make an online backup; set wal_level = replica and restart it")
	}
	ident := repo.Identity{Cluster: cluster, SystemIdentifier: facts.SystemIDString, PGMajor: facts.Version.Major, WALSegSize: facts.SegSize}
	for _, r := range repos {
		if err := r.EnsureIdentity(ctx, ident); err != nil {
			return err
		}
	}
	return nil
}

// backupLocks are what a backup holds in each repository: the cluster's lock (one
// backup per cluster at a time) and a shared repository lock, which keeps garbage
// collection from taking the chunks it writes, or dedups against, for garbage before its
// manifest names them (docs/repository-format.md, "Garbage collection").
type backupLocks struct {
	held []*repo.Lock
	// shared[r] is repository r's shared lock.
	shared []*repo.Lock
}

// lockRepos takes the locks of a backup in every repository. A repository's index is
// loaded afresh after its shared lock is held, so that what the backup believes stored is
// what a sweep before it left.
func lockRepos(ctx context.Context, repos []*repo.Repo, cluster string, log *slog.Logger) (*backupLocks, error) {
	bl := &backupLocks{}
	for _, r := range repos {
		l, err := r.Lock(ctx, cluster, "backup")
		if err != nil {
			bl.unlock(ctx)
			return nil, err
		}
		bl.held = append(bl.held, l)
		s, err := r.TakeLock(ctx, repo.LockRequest{Mode: repo.ModeShared, Purpose: "backup of " + cluster, OnWait: func(h repo.LockInfo) {
			log.Info("waiting for the repository lock: a garbage collection sweep holds it", "repo", r.String(), "holder", h.Purpose, "host", h.Host, "pid", h.PID, "since", h.Time)
		}})
		if err != nil {
			bl.unlock(ctx)
			return nil, err
		}
		bl.held = append(bl.held, s)
		bl.shared = append(bl.shared, s)
		r.InvalidateIndex(r.IndexGeneration())
	}
	return bl, nil
}

// unlock releases the locks side by side: each is a durable delete (a directory
// fsync on local storage) that the end of every backup waits for.
func (bl *backupLocks) unlock(ctx context.Context) {
	var wg sync.WaitGroup
	for _, l := range bl.held {
		wg.Go(func() { _ = l.Unlock(context.WithoutCancel(ctx)) })
	}
	wg.Wait()
}

// check fails when repository ri's shared lock was lost: committing then could name
// chunks a garbage collector already took for garbage.
func (bl *backupLocks) check(ctx context.Context, ri int) error {
	if bl == nil {
		return nil
	}
	return bl.shared[ri].Check(ctx)
}

// prepareStore makes the chunk store, seeded with each repository's newest backup
// of the cluster (an unchanged file then costs a hash and nothing else), and picks
// the new backup's ID. prev[r] is repository r's newest backup (nil: none).
func prepareStore(ctx context.Context, repos []*repo.Repo, o BackupOptions, began time.Time) (*chunkStore, []*repo.Manifest, string, error) {
	store := newChunkStore(repos, o.Codec, o.Jobs)
	prev := make([]*repo.Manifest, len(repos))
	var prevIDs []string
	for i, r := range repos {
		ids, err := r.BackupIDs(ctx, o.Cluster)
		if err != nil {
			return nil, nil, "", err
		}
		if len(ids) > 0 {
			m, err := r.Manifest(ctx, o.Cluster, ids[len(ids)-1])
			if err != nil {
				return nil, nil, "", fmt.Errorf("reading the previous backup: %w", err)
			}
			store.seed(i, m)
			prev[i] = m
		}
		prevIDs = append(prevIDs, ids...)
	}
	return store, prev, newBackupID(began, prevIDs), nil
}

// prepareIncremental decides whether this backup can be INCREMENTAL (PostgreSQL
// 17+, summarize_wal on, the same previous backup in every repository, on the
// server's timeline) and, if so, uploads that backup's backup_manifest. It says
// once why a backup is full when an incremental one was possible in principle.
func prepareIncremental(ctx context.Context, conn *pgconn.PgConn, facts pgserver.Facts, repos []*repo.Repo, prev []*repo.Manifest, log *slog.Logger) bool {
	if facts.Version.Major < 17 || prev[0] == nil {
		return false
	}
	for _, m := range prev {
		if m == nil || m.ID != prev[0].ID {
			log.Info("full backup: the repositories' newest backups differ, so no incremental backup can be taken against them")
			return false
		}
	}
	if v, err := pgserver.Show(ctx, conn, "summarize_wal"); err != nil || v != "on" {
		log.Info("full backup: summarize_wal is off on the server; turn it on for incremental backups that read only changed blocks")
		return false
	}
	man, err := restore.ReadFile(ctx, repos[0], prev[0], "backup_manifest")
	if err != nil {
		log.Warn("full backup: the previous backup's backup_manifest cannot be read", "backup", prev[0].ID, "error", err)
		return false
	}
	if err := basebackup.UploadManifest(ctx, conn, man); err != nil {
		log.Warn("full backup: the server did not take the previous backup's manifest", "backup", prev[0].ID, "error", err)
		return false
	}
	return true
}

// pipeline runs the source and the chunk store, joined by a bounded channel (any
// error cancels both), then writes what the packers hold and their index.
func pipeline(ctx context.Context, stream backupStream, store *chunkStore, chunkSize int, rb *rebuilder, o BackupOptions, ended func()) (*received, error) {
	g, gctx := errgroup.WithContext(ctx)
	jobs := make(chan chunkJob, o.Jobs)
	pool := newBufferPool(2*o.Jobs+2, chunkSize)
	store.start(gctx, g, jobs, pool)
	src := &source{stream: stream, chunkSize: chunkSize, repos: len(store.repos), pool: pool, jobs: jobs, progress: o.Progress, rebuild: rb, ended: ended,
		walStarts: func() { g.Go(func() error { return store.checkpoint(gctx) }) }}
	var got *received
	g.Go(func() (err error) {
		got, err = src.run(gctx)
		return err
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	// The check against the server's backup_manifest, begun by the source when
	// the manifest arrived, ran beside the chunk store's last chunks.
	if err := <-got.checked; err != nil {
		return nil, err
	}
	return got, nil
}

// commit ends a backup: the chunk store writes its last pack and the index
// objects while each repository's manifest is encoded and sealed (CPU work of tens
// of ms for many files, which need not wait for those writes); then each manifest
// is stored, the last step, after every object it names is durable, so a crash
// before it leaves garbage and never a listed-but-broken backup.
func commit(ctx context.Context, repos []*repo.Repo, meta repo.Manifest, files []*fileState, store *chunkStore, locks *backupLocks) ([]*repo.Manifest, error) {
	// What each repository gained, the pack still to write included (finish
	// adds exactly that), fixed before finish runs.
	stored := make([]int64, len(repos))
	for ri := range repos {
		stored[ri] = store.stored[ri].Load()
		if p := store.packers[ri]; p != nil {
			stored[ri] += p.Pending()
		}
	}
	sealed := make([]*repo.SealedManifest, len(repos))
	out := make([]*repo.Manifest, len(repos))
	var end errgroup.Group
	end.Go(func() error { return store.finish(ctx) })
	end.Go(func() error {
		for ri, r := range repos {
			m := meta
			m.StoredBytes = stored[ri]
			m.Files = make([]repo.File, len(files))
			for i, f := range files {
				m.Files[i] = f.entry
				m.Files[i].Chunks = f.ids[ri]
			}
			s, err := r.SealManifest(&m)
			if err != nil {
				return err
			}
			sealed[ri], out[ri] = s, &m
		}
		return nil
	})
	if err := end.Wait(); err != nil {
		return nil, err
	}
	for ri, r := range repos {
		if err := locks.check(ctx, ri); err != nil {
			return nil, err
		}
		if err := r.CommitManifest(ctx, sealed[ri]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// newBackupID names a backup by its start time in UTC; IDs sort by time, which
// is what "latest" and retention rely on. A clash within one second gets a
// suffix that still sorts after the earlier ID.
func newBackupID(t time.Time, existing []string) string {
	base := t.UTC().Format("20060102T150405Z")
	id := base
	taken := map[string]bool{}
	for _, e := range existing {
		taken[e] = true
	}
	for n := 2; taken[id]; n++ {
		id = fmt.Sprintf("%s-%02d", base, n)
	}
	return id
}
