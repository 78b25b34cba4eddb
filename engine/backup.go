package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"path"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/pgward/pgward/compress"
	"github.com/pgward/pgward/internal/pgserver"
	"github.com/pgward/pgward/internal/pgserver/basebackup"
	"github.com/pgward/pgward/repo"
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
	Label   string
	Log     *slog.Logger
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
}

// maxServerManifest bounds the server's backup_manifest held in memory.
const maxServerManifest = 1 << 30

// fileState is one entry being received; ids[r] are its chunk IDs in repository r.
type fileState struct {
	entry repo.File
	ids   [][]repo.Hash
}

type chunkJob struct {
	f    *fileState
	idx  int
	buf  *[]byte
	size int
}

// Backup takes a base backup of the server at o.Conn and stores it in every
// repository in repos. It returns only after each repository has committed the
// backup's manifest; on any error nothing is committed in any of them.
func Backup(ctx context.Context, repos []*repo.Repo, o BackupOptions) (*BackupResult, error) {
	if len(repos) == 0 {
		return nil, errors.New("backup: no repository given")
	}
	if err := repo.ValidClusterName(o.Cluster); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
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
			return nil, fmt.Errorf("backup: repositories %s and %s use different chunk sizes (%d and %d); they cannot be written in one backup", repos[0], r, chunkSize, r.Config().ChunkSize)
		}
	}
	began := time.Now()

	conn, err := pgserver.ConnectReplication(ctx, o.Conn, "pgward")
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	facts, err := pgserver.Identify(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if facts.WALLevel == "minimal" {
		return nil, fmt.Errorf("backup: the server runs with wal_level = minimal, which cannot make an online backup; set wal_level = replica and restart it")
	}
	pgVersion := facts.Version.Num
	ident := repo.Identity{Cluster: o.Cluster, SystemIdentifier: facts.SystemIDString, PGMajor: facts.Version.Major, WALSegSize: facts.SegSize}
	for _, r := range repos {
		if err := r.EnsureIdentity(ctx, ident); err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
	}

	// One backup per cluster at a time, in every repository.
	var locks []*repo.Lock
	defer func() {
		for _, l := range locks {
			_ = l.Unlock(context.WithoutCancel(ctx))
		}
	}()
	for _, r := range repos {
		l, err := r.Lock(ctx, o.Cluster, "backup")
		if err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
		locks = append(locks, l)
	}

	// Seed each repository's known-chunk set from its newest backup of this
	// cluster: those chunks are stored (a manifest is written only after its
	// chunks), so an unchanged file costs a hash and nothing else.
	known := make([]*sync.Map, len(repos))
	var prevIDs []string
	for i, r := range repos {
		known[i] = new(sync.Map)
		ids, err := r.BackupIDs(ctx, o.Cluster)
		if err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
		if len(ids) > 0 {
			prev, err := r.Manifest(ctx, o.Cluster, ids[len(ids)-1])
			if err != nil {
				return nil, fmt.Errorf("backup: reading the previous backup: %w", err)
			}
			for _, f := range prev.Files {
				for _, c := range f.Chunks {
					known[i].Store(c, struct{}{})
				}
			}
		}
		prevIDs = append(prevIDs, ids...)
	}
	id := newBackupID(began, prevIDs)
	label := o.Label
	if label == "" {
		label = "pgward " + id
	}

	o.Log.Info("backup starting", "cluster", o.Cluster, "backup", id, "system_identifier", facts.SystemIDString, "pg_version", pgVersion, "jobs", o.Jobs, "compress", o.Codec.String())
	stream, err := basebackup.Start(ctx, conn, facts.Version.Major, basebackup.Options{Label: label, Fast: o.FastCheckpoint, MaxRate: o.MaxRate})
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	startTime := time.Now().UTC()

	g, gctx := errgroup.WithContext(ctx)
	jobs := make(chan chunkJob, o.Jobs)
	pool := make(chan *[]byte, 2*o.Jobs+2)
	for range cap(pool) {
		b := make([]byte, 0, chunkSize)
		pool <- &b
	}
	stored := make([]atomic.Int64, len(repos))
	// Storing is I/O: local Puts wait on fsync, S3 Puts on the network. It runs
	// in its own goroutines, more of them than CPU workers, so the CPUs keep
	// sealing while writes wait, and concurrent fsyncs share journal commits.
	// Each sealed object travels in a buffer from a fixed pool, so memory stays
	// bounded: (jobs + writers) sealed objects at most.
	writers := max(4, 2*o.Jobs)
	type storeJob struct {
		ri  int
		id  repo.Hash
		buf *repo.ChunkBuffers
	}
	stores := make(chan storeJob, writers)
	sealPool := make(chan *repo.ChunkBuffers, o.Jobs+writers)
	for range cap(sealPool) {
		sealPool <- new(repo.ChunkBuffers)
	}
	for range writers {
		g.Go(func() error {
			for s := range stores {
				n, err := repos[s.ri].StoreChunk(gctx, s.id, s.buf.Sealed())
				sealPool <- s.buf
				if err != nil {
					return err
				}
				stored[s.ri].Add(n)
			}
			return nil
		})
	}
	var workerWG sync.WaitGroup
	for range o.Jobs {
		workerWG.Add(1)
		g.Go(func() error {
			defer workerWG.Done()
			for j := range jobs {
				data := (*j.buf)[:j.size]
				for ri, r := range repos {
					h := r.ContentHash(data)
					j.f.ids[ri][j.idx] = h
					if _, seen := known[ri].LoadOrStore(h, struct{}{}); seen {
						continue
					}
					has, err := r.HasChunk(gctx, h)
					if err != nil {
						return err
					}
					if has {
						continue
					}
					var sb *repo.ChunkBuffers
					select {
					case sb = <-sealPool:
					case <-gctx.Done():
						return gctx.Err()
					}
					if _, err := r.SealChunk(h, data, o.Codec, sb); err != nil {
						return err
					}
					select {
					case stores <- storeJob{ri: ri, id: h, buf: sb}:
					case <-gctx.Done():
						return gctx.Err()
					}
				}
				pool <- j.buf
			}
			return nil
		})
	}
	// The writers stop when every worker is done.
	go func() {
		workerWG.Wait()
		close(stores)
	}()

	var (
		files     []*fileState
		received  = map[string]receivedFile{}
		total     int64
		walFiles  int
		serverMan []byte
		stopLSN   pglogrepl.LSN
		stopTLI   int32
		tbs       []repo.Tablespace
	)
	g.Go(func() error {
		defer close(jobs)
		// send cuts one file's data into chunks and hands them to the workers.
		send := func(f *fileState, r io.Reader, size int64) (uint32, error) {
			n := int((size + int64(chunkSize) - 1) / int64(chunkSize))
			for ri := range repos {
				f.ids[ri] = make([]repo.Hash, n)
			}
			crc := crc32.New(castagnoli)
			for i := range n {
				var buf *[]byte
				select {
				case buf = <-pool:
				case <-gctx.Done():
					return 0, gctx.Err()
				}
				want := int(min(int64(chunkSize), size-int64(i)*int64(chunkSize)))
				b := (*buf)[:want]
				if _, err := io.ReadFull(r, b); err != nil {
					pool <- buf
					return 0, fmt.Errorf("reading %s from the server: %w", f.entry.Path, err)
				}
				crc.Write(b)
				total += int64(want)
				select {
				case jobs <- chunkJob{f: f, idx: i, buf: buf, size: want}:
				case <-gctx.Done():
					return 0, gctx.Err()
				}
				if o.Progress != nil {
					o.Progress(total)
				}
			}
			return crc.Sum32(), nil
		}
		for {
			a, err := stream.Next(gctx)
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			prefix := ""
			if a.Tablespace.OID != 0 {
				prefix = "pg_tblspc/" + strconv.FormatUint(uint64(a.Tablespace.OID), 10) + "/"
				tbs = append(tbs, repo.Tablespace{OID: a.Tablespace.OID, Location: a.Tablespace.Location})
			}
			tr := tar.NewReader(a.R)
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					return fmt.Errorf("reading the tar stream of %s: %w", archiveName(a.Tablespace), err)
				}
				name := strings.TrimSuffix(path.Clean(strings.TrimPrefix(h.Name, "./")), "/")
				if name == "." {
					continue
				}
				f := &fileState{entry: repo.File{Path: prefix + name, Mode: h.FileInfo().Mode().Perm(), MTime: h.ModTime.UTC()}, ids: make([][]repo.Hash, len(repos))}
				switch h.Typeflag {
				case tar.TypeDir:
					f.entry.Type = repo.TypeDir
				case tar.TypeSymlink:
					f.entry.Type = repo.TypeSymlink
					f.entry.Target = h.Linkname
				case tar.TypeReg, tar.TypeRegA:
					f.entry.Type = repo.TypeFile
					f.entry.Size = h.Size
					crc, err := send(f, tr, h.Size)
					if err != nil {
						return err
					}
					received[f.entry.Path] = receivedFile{size: h.Size, crc32: crc}
					if strings.HasPrefix(f.entry.Path, "pg_wal/") {
						walFiles++
					}
				default:
					return fmt.Errorf("%s: unexpected tar entry type %q in the server's stream", f.entry.Path, h.Typeflag)
				}
				files = append(files, f)
			}
		}
		serverMan, err = stream.Manifest(gctx, maxServerManifest)
		if err != nil {
			return err
		}
		stopLSN, stopTLI, err = stream.Finish(gctx)
		if err != nil {
			return err
		}
		if err := verifyAgainstServerManifest(serverMan, received); err != nil {
			return err
		}
		// Keep the server's manifest with the backup: restore writes it back so
		// pg_verifybackup can check the restored directory.
		mf := &fileState{entry: repo.File{Path: "backup_manifest", Type: repo.TypeFile, Mode: 0o600, MTime: time.Now().UTC(), Size: int64(len(serverMan))}, ids: make([][]repo.Hash, len(repos))}
		if _, err := send(mf, bytes.NewReader(serverMan), int64(len(serverMan))); err != nil {
			return err
		}
		files = append(files, mf)
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("backup %s: %w", id, err)
	}
	stopTime := time.Now().UTC()

	res := &BackupResult{Received: total, Stored: stored[0].Load(), Duration: time.Since(began)}
	for ri, r := range repos {
		m := &repo.Manifest{
			ID: id, Cluster: o.Cluster, SystemIdentifier: facts.SystemIDString, PGVersion: pgVersion,
			Timeline: uint32(stream.Timeline), StartLSN: stream.StartLSN.String(), StopLSN: stopLSN.String(),
			StartTime: startTime, StopTime: stopTime, Label: label, Compress: o.Codec.String(), ChunkSize: chunkSize,
			DBBytes: total, StoredBytes: stored[ri].Load(), WALFiles: walFiles, Tablespaces: tbs,
		}
		if stopTLI != 0 && uint32(stopTLI) != m.Timeline {
			o.Log.Warn("timeline changed during the backup", "start_timeline", m.Timeline, "stop_timeline", stopTLI)
		}
		m.Files = make([]repo.File, len(files))
		for i, f := range files {
			m.Files[i] = f.entry
			m.Files[i].Chunks = f.ids[ri]
		}
		// Commit: everything the manifest names is durable by now.
		if err := r.PutManifest(ctx, m); err != nil {
			return nil, fmt.Errorf("backup %s: %w", id, err)
		}
		res.Manifests = append(res.Manifests, m)
	}
	for _, n := range stream.Notices() {
		o.Log.Debug("server notice", "message", n)
	}
	o.Log.Info("backup committed", "backup", id, "received_bytes", total, "stored_bytes", res.Stored, "duration", res.Duration.Round(time.Millisecond))
	return res, nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func archiveName(t basebackup.Tablespace) string {
	if t.OID == 0 {
		return "the main data directory"
	}
	return fmt.Sprintf("tablespace %d (%s)", t.OID, t.Location)
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
