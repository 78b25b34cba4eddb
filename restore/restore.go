package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pgward/pgward/internal/durable"
	"github.com/pgward/pgward/repo"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// Options configure a restore.
type Options struct {
	Cluster string
	// BackupID is the backup to restore; "" or "latest" is the newest.
	BackupID string
	// PGData is the target data directory; it must be empty or absent.
	PGData string
	// TablespaceMap moves tablespaces: OID -> new directory.
	TablespaceMap map[uint32]string
	Jobs          int
	// UID and GID, when >= 0, own every restored file (used when running as root).
	UID, GID int
	// Recovery holds the settings appended to postgresql.auto.conf (e.g.
	// restore_command); when non-nil, recovery.signal is written too, or
	// standby.signal when Standby is set.
	Recovery []Setting
	Standby  bool
	// Delta rewrites a data directory that holds the backup's cluster,
	// writing only what differs (delta.go); an empty or absent one is restored
	// as usual.
	Delta bool
	// DeltaCheck is how a delta restore finds the files that differ:
	// DeltaHash (the default) or DeltaSizeTime.
	DeltaCheck string
	// DBInclude restores only these databases (names, or OIDs) besides the
	// system ones; the relation files of the others are written empty
	// (selective.go).
	DBInclude []string
	Log       *slog.Logger
	Progress  func(written int64)
	// BeforeWrite, when set, runs after every check of the targets and before
	// the first write; its error refuses the restore with nothing written.
	BeforeWrite func(context.Context) error
}

// Setting is one postgresql.conf parameter.
type Setting struct{ Name, Value string }

// Result summarises a finished restore.
type Result struct {
	Manifest *repo.Manifest
	// Written is the bytes of file data written (WALWritten of them in
	// pg_wal/, the WAL the backup carries); Kept the bytes a delta restore
	// found equal and left; Zeroed the bytes of the excluded databases'
	// files, written empty.
	Written, WALWritten, Kept, Zeroed int64
	// Delta is set when an existing data directory was rewritten; Removed
	// counts the entries it had that the backup does not.
	Delta    bool
	Removed  int64
	Duration time.Duration
}

// ErrNotEmpty is wrapped when a target directory holds files.
var ErrNotEmpty = errors.New("is not empty")

const pgControl = "global/pg_control"

// Run restores a backup into o.PGData. The backup is read from the first of
// repos that has it; a chunk that is missing, unreadable or corrupt there is read
// from the same backup in the next repositories (a backup written to several
// repositories has the same ID and file list in each).
func Run(ctx context.Context, repos []*repo.Repo, o Options) (*Result, error) {
	if len(repos) == 0 {
		return nil, errors.New("restore: no repository given")
	}
	r := repos[0]
	began := time.Now()
	if o.Jobs <= 0 {
		o.Jobs = runtime.NumCPU()
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.PGData == "" {
		return nil, errors.New("restore: no target data directory given (--pgdata)")
	}
	pgdata, err := filepath.Abs(o.PGData)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	var m *repo.Manifest
	var firstErr error
	for i, cand := range repos {
		mm, err := cand.Manifest(ctx, o.Cluster, o.BackupID)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		m, r = mm, cand
		repos = repos[i:]
		break
	}
	if m == nil {
		return nil, fmt.Errorf("restore: %w", firstErr)
	}
	if m.ChunkSize != r.Config().ChunkSize {
		return nil, fmt.Errorf("restore: backup %s has chunk size %d but the repository %d", m.ID, m.ChunkSize, r.Config().ChunkSize)
	}
	// The same backup in the other repositories, for chunk fallback.
	var alts []alternate
	for _, other := range repos[1:] {
		if am, err := other.Manifest(ctx, o.Cluster, m.ID); err == nil && sameFiles(m, am) {
			alts = append(alts, alternate{r: other, m: am})
		}
	}

	// Where every tablespace goes, and the check that all targets are empty,
	// before anything is written.
	tsDir := map[uint32]string{}
	for _, t := range m.Tablespaces {
		dir := t.Location
		if d, ok := o.TablespaceMap[t.OID]; ok {
			if dir, err = filepath.Abs(d); err != nil {
				return nil, fmt.Errorf("restore: %w", err)
			}
		}
		tsDir[t.OID] = dir
	}
	for oid := range o.TablespaceMap {
		if _, ok := tsDir[oid]; !ok {
			return nil, fmt.Errorf("restore: --tablespace-map names tablespace %d, but backup %s has no such tablespace (it has %s)", oid, m.ID, tablespaceList(m))
		}
	}
	delta := false
	if o.Delta {
		if delta, err = deltaTarget(pgdata, m); err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
	} else if err := checkEmpty(pgdata, "the data directory", ""); err != nil {
		if errors.Is(err, ErrNotEmpty) {
			return nil, fmt.Errorf("restore: %w, or give --delta to rewrite it if it holds the backup's own cluster", err)
		}
		return nil, fmt.Errorf("restore: %w", err)
	}
	switch o.DeltaCheck {
	case "", DeltaHash, DeltaSizeTime:
	default:
		return nil, fmt.Errorf("restore: --delta-check %q: use %s or %s", o.DeltaCheck, DeltaHash, DeltaSizeTime)
	}
	excluded, err := selectDatabases(m, o.DBInclude)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	seen := map[string]uint32{}
	for _, t := range m.Tablespaces {
		dir := tsDir[t.OID]
		if other, dup := seen[dir]; dup {
			return nil, fmt.Errorf("restore: tablespaces %d and %d would both go to %s; give each its own --tablespace-map", other, t.OID, dir)
		}
		seen[dir] = t.OID
		if dir == pgdata || strings.HasPrefix(dir, pgdata+"/") {
			return nil, fmt.Errorf("restore: tablespace %d would go to %s, inside the data directory; map it elsewhere with --tablespace-map %d=DIR", t.OID, dir, t.OID)
		}
		hint := ""
		if _, mapped := o.TablespaceMap[t.OID]; !mapped {
			hint = fmt.Sprintf("; it is the original location of tablespace %d, probably still used by the source cluster: restore it elsewhere with --tablespace-map %d=NEWDIR", t.OID, t.OID)
		}
		check := checkEmpty(dir, fmt.Sprintf("the directory of tablespace %d", t.OID), hint)
		if delta {
			check = checkDeltaTablespace(pgdata, t.OID, dir, hint)
		}
		if check != nil {
			return nil, fmt.Errorf("restore: %w", check)
		}
	}

	if o.BeforeWrite != nil {
		if err := o.BeforeWrite(ctx); err != nil {
			return nil, err
		}
	}
	w := &writer{o: o, r: r, m: m, pgdata: pgdata, tsDir: tsDir, alts: alts, umask: currentUmask(), delta: delta, excluded: excluded,
		creating: make(chan struct{}, o.Jobs)}
	w.direct.Store(true)
	if err := w.run(ctx); err != nil {
		if delta {
			return nil, fmt.Errorf("delta restore of backup %s: %w; the data directory is partly rewritten and cannot be started: run the same restore --delta again", m.ID, err)
		}
		w.undo()
		return nil, fmt.Errorf("restore of backup %s: %w", m.ID, err)
	}
	return &Result{Manifest: m, Written: w.written.Load(), WALWritten: w.walWritten.Load(), Kept: w.kept.Load(), Zeroed: w.zeroed.Load(),
		Delta: delta, Removed: w.removed.Load(), Duration: time.Since(began)}, nil
}

func tablespaceList(m *repo.Manifest) string {
	if len(m.Tablespaces) == 0 {
		return "none"
	}
	var s []string
	for _, t := range m.Tablespaces {
		s = append(s, fmt.Sprintf("%d (%s)", t.OID, t.Location))
	}
	return strings.Join(s, ", ")
}

// checkEmpty accepts a missing or empty directory.
func checkEmpty(dir, what, hint string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, dir, err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("%s %s %w (it has %d entries)%s; restore only writes into empty directories, so choose another or empty it first", what, dir, ErrNotEmpty, len(entries), hint)
	}
	return nil
}

// writer does the writing and remembers what it created so a failure can undo it.
type writer struct {
	o       Options
	r       *repo.Repo
	m       *repo.Manifest
	pgdata  string
	tsDir   map[uint32]string
	written atomic.Int64
	alts    []alternate
	// created holds the top-level directories this restore created (removed
	// whole on failure) and emptied holds the ones that existed empty (their
	// contents are removed on failure).
	created, existed []string
	// umask is the process's file mode creation mask, which decides whether
	// a created file needs a chmod.
	umask os.FileMode
	// direct is cleared when the file system refuses O_DIRECT (direct.go).
	direct atomic.Bool
	// delta is set when an existing data directory is rewritten (delta.go):
	// kept counts the bytes found equal, removed the entries deleted.
	delta      bool
	kept       atomic.Int64
	removed    atomic.Int64
	walWritten atomic.Int64
	// excluded are the databases whose relation files are written empty
	// (selective.go); zeroed counts their bytes.
	excluded map[uint32]bool
	zeroed   atomic.Int64
	// creating bounds the files being created at once to --jobs.
	creating chan struct{}
}

// currentUmask reads the umask (setting it is the only way, so it is set
// back at once; nothing else creates files while a restore starts).
func currentUmask() os.FileMode {
	m := unix.Umask(0)
	unix.Umask(m)
	return os.FileMode(m)
}

func (w *writer) prepareTop(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		w.existed = append(w.existed, dir)
		return os.Chmod(dir, 0o700)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	w.created = append(w.created, dir)
	return w.chown(dir)
}

func (w *writer) undo() {
	for _, d := range w.created {
		_ = os.RemoveAll(d)
	}
	for _, d := range w.existed {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			_ = os.RemoveAll(filepath.Join(d, e.Name()))
		}
	}
}

func (w *writer) chown(p string) error {
	if w.o.UID < 0 {
		return nil
	}
	if err := os.Lchown(p, w.o.UID, w.o.GID); err != nil {
		return fmt.Errorf("chown %s: %w", p, err)
	}
	return nil
}

// local maps a manifest path to the place it is written. Files of a tablespace
// are written through its pg_tblspc symlink, which points at the (possibly
// remapped) tablespace directory.
func (w *writer) local(p string) string { return filepath.Join(w.pgdata, filepath.FromSlash(p)) }

func (w *writer) run(ctx context.Context) error {
	if err := w.prepareTop(w.pgdata); err != nil {
		return err
	}
	if w.delta {
		if err := w.hideControl(); err != nil {
			return err
		}
		if err := w.clean(); err != nil {
			return err
		}
	}
	oids := make([]uint32, 0, len(w.tsDir))
	for oid := range w.tsDir {
		oids = append(oids, oid)
	}
	sort.Slice(oids, func(i, j int) bool { return oids[i] < oids[j] })
	for _, oid := range oids {
		if err := w.prepareTop(w.tsDir[oid]); err != nil {
			return err
		}
	}
	// Symlinks first: tablespace archives precede the main one in the stream, so
	// their directories (pg_tblspc/<oid>/PG_...) must land behind the link, in the
	// tablespace directory, not in a real directory of that name.
	var control *repo.File
	for i := range w.m.Files {
		f := &w.m.Files[i]
		if err := safePath(f.Path); err != nil {
			return err
		}
		switch f.Type {
		case repo.TypeSymlink:
			target := w.linkTarget(f)
			p := w.local(f.Path)
			if w.delta {
				if cur, err := os.Readlink(p); err == nil && cur == target {
					continue // clean kept it: it points there already
				}
			}
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				return err
			}
			if err := os.Symlink(target, p); err != nil {
				return err
			}
			if err := w.chown(p); err != nil {
				return err
			}
		case repo.TypeFile:
			if f.Path == pgControl {
				control = f
			}
		case repo.TypeDir:
		default:
			return fmt.Errorf("%s: unknown entry type %q in the manifest", f.Path, f.Type)
		}
	}
	// Then directories, parents before children as in the tar stream.
	for i := range w.m.Files {
		f := &w.m.Files[i]
		if f.Type != repo.TypeDir {
			continue
		}
		p := w.local(f.Path)
		if err := os.MkdirAll(p, 0o700); err != nil {
			return err
		}
		if err := os.Chmod(p, f.Mode|0o700); err != nil {
			return err
		}
		if err := w.chown(p); err != nil {
			return err
		}
	}
	if control == nil {
		return fmt.Errorf("the backup has no %s; it cannot be started", pgControl)
	}
	if err := w.writeFiles(ctx, func(f *repo.File) bool { return f.Path != pgControl }); err != nil {
		return err
	}
	if err := w.writeRecovery(); err != nil {
		return err
	}
	// Everything but pg_control durable, on every file system written to:
	// syncfs flushes file data and directory entries alike, and reports
	// writeback errors (Linux 5.8+).
	for _, d := range append(append([]string{}, w.created...), w.existed...) {
		if err := syncFS(d); err != nil {
			return err
		}
	}
	// pg_control last: until it exists the directory cannot be started, so a
	// restore that dies before this point never looks complete.
	if err := w.writeFiles(ctx, func(f *repo.File) bool { return f.Path == pgControl }); err != nil {
		return err
	}
	if err := syncFS(w.pgdata); err != nil {
		return err
	}
	if w.delta {
		return w.dropMarker()
	}
	return durable.SyncDir(filepath.Dir(w.local(pgControl)))
}

func syncFS(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return fmt.Errorf("syncfs %s: %w", dir, err)
	}
	return nil
}

func tablespaceLink(p string) (uint32, bool) {
	rest, ok := strings.CutPrefix(p, "pg_tblspc/")
	if !ok || strings.Contains(rest, "/") {
		return 0, false
	}
	oid, err := strconv.ParseUint(rest, 10, 32)
	return uint32(oid), err == nil
}

// safePath refuses manifest paths that would escape the data directory.
func safePath(p string) error {
	if p == "" || strings.HasPrefix(p, "/") || filepath.Clean(p) != p || p == ".." || strings.HasPrefix(p, "../") {
		return fmt.Errorf("the manifest holds an unsafe path %q", p)
	}
	return nil
}

// openFile is a file being written by several workers.
type openFile struct {
	// f is nil for a file of one chunk until the worker writing that chunk
	// creates it.
	f *os.File
	// direct is set when f was switched to O_DIRECT (direct.go).
	direct bool
	// existing is set in a delta restore when the file is there already: its
	// chunks are compared before any is written.
	existing bool
	entry    *repo.File
	pending  atomic.Int32
}

type job struct {
	of  *openFile
	fi  int // index of the file in the manifest
	idx int
}

// alternate is the same backup in another repository.
type alternate struct {
	r *repo.Repo
	m *repo.Manifest
}

// sameFiles checks that two manifests of one backup list the same files in the
// same order, so a chunk can be looked up by (file index, chunk index).
func sameFiles(a, b *repo.Manifest) bool {
	if len(a.Files) != len(b.Files) || a.ChunkSize != b.ChunkSize {
		return false
	}
	for i := range a.Files {
		if a.Files[i].Path != b.Files[i].Path || a.Files[i].Size != b.Files[i].Size || len(a.Files[i].Chunks) != len(b.Files[i].Chunks) {
			return false
		}
	}
	return true
}

// chunk reads a chunk from the first repository, falling back to the others.
func (w *writer) chunk(ctx context.Context, j job, bufs *repo.ChunkBuffers) ([]byte, error) {
	data, err := w.r.GetChunk(ctx, j.of.entry.Chunks[j.idx], bufs)
	if err == nil || ctx.Err() != nil {
		return data, err
	}
	for _, a := range w.alts {
		d, aerr := a.r.GetChunk(ctx, a.m.Files[j.fi].Chunks[j.idx], bufs)
		if aerr == nil {
			w.o.Log.Warn("chunk read from another repository", "file", j.of.entry.Path, "error", err, "repo", a.r.String())
			return d, nil
		}
		err = errors.Join(err, aerr)
	}
	return nil, err
}

// writeFiles writes the regular files that pick selects, in two pools of workers.
// Chunks of large files go to o.Jobs workers, which hold chunk-sized buffers and are
// bounded by the CPUs that decompress. Files of one small chunk (most files of a
// database with many tables) go to smallWorkers workers: each costs a round trip to
// the repository, a file creation and little CPU, so more of them in flight hide an
// object store's latency per request (restoring 1000 small files from S3 with two
// workers was a chain of 500 round trips each), while their buffers stay small
// (smallFile bytes each).
func (w *writer) writeFiles(ctx context.Context, pick func(*repo.File) bool) error {
	g, gctx := errgroup.WithContext(ctx)
	jobs := make(chan job, w.o.Jobs)
	small := make(chan job, smallWorkers)
	work := func(jobs <-chan job, s *scratch) func() error {
		return func() error {
			for j := range jobs {
				if err := w.writeJob(gctx, j, s); err != nil {
					return err
				}
			}
			return nil
		}
	}
	// Small files are packed: their workers read packs a window at a time.
	windows := repo.NewPackWindows(packWindows)
	for range w.o.Jobs {
		var s scratch
		s.bufs.UsePlain(pageAligned(w.m.ChunkSize))
		s.bufs.UseWindows(windows)
		g.Go(work(jobs, &s))
	}
	for range smallWorkers {
		s := new(scratch)
		s.bufs.UseWindows(windows)
		g.Go(work(small, s))
	}
	g.Go(func() error {
		defer close(jobs)
		defer close(small)
		for i := range w.m.Files {
			e := &w.m.Files[i]
			if e.Type != repo.TypeFile || !pick(e) {
				continue
			}
			q := jobs
			if e.Size <= smallFile && e.Size < int64(w.m.ChunkSize) {
				q = small
			}
			if err := w.queueFile(gctx, i, q); err != nil {
				return err
			}
		}
		return nil
	})
	return g.Wait()
}

const (
	// smallFile is the largest file the small-file workers take: a relation file of a
	// few pages, a table's free space and visibility maps, a config file.
	smallFile = 128 << 10
	// packWindows is how many pack windows (repo.WindowSize each) a restore holds:
	// one per small-file worker and --jobs worker reading nearby entries.
	packWindows = 24
	// smallWorkers is how many small files are in flight at once, whatever --jobs
	// is: enough to hide a remote repository's latency, and little memory.
	smallWorkers = 16
)

// scratch is a worker's buffers: chunk decoding, page-aligned copies for
// O_DIRECT, and what a delta restore reads of an existing file.
type scratch struct {
	bufs       repo.ChunkBuffers
	spare, old []byte
}

// queueFile opens file i of the manifest (or leaves that to the worker of its
// only chunk) and queues its chunks.
func (w *writer) queueFile(ctx context.Context, i int, jobs chan<- job) error {
	e := &w.m.Files[i]
	chunkSize := int64(w.m.ChunkSize)
	want := int((e.Size + chunkSize - 1) / chunkSize)
	if len(e.Chunks) != want {
		return fmt.Errorf("%s: the manifest lists %d chunks for %d bytes", e.Path, len(e.Chunks), e.Size)
	}
	if w.excluded != nil && excludedFile(e.Path, w.excluded) {
		return w.writeEmpty(e)
	}
	of := &openFile{entry: e}
	if w.delta {
		fi, err := os.Lstat(w.local(e.Path))
		if err == nil {
			of.existing = true
			// Whole seconds: the tar stream the backup came in carries no more.
			if w.o.DeltaCheck == DeltaSizeTime && fi.Size() == e.Size && fi.ModTime().Unix() == e.MTime.Unix() {
				return w.keepFile(of)
			}
		}
	}
	of.pending.Store(int32(want))
	// A file of one chunk (most files of a database with many tables)
	// is created by the worker that writes it: creating a file costs
	// the file system more than writing a small one, and done here it
	// would run on one core, one file after the other.
	if want == 1 {
		select {
		case jobs <- job{of: of, fi: i}:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f, err := w.openTarget(of)
	if err != nil {
		return err
	}
	of.f = f
	if want == 0 {
		return w.finish(of)
	}
	if w.direct.Load() && e.Size%pageSize == 0 && chunkSize%pageSize == 0 {
		if of.direct = setDirect(f, true); !of.direct {
			w.direct.Store(false) // the file system does not do O_DIRECT
		}
	}
	for idx := range want {
		select {
		case jobs <- job{of: of, fi: i, idx: idx}:
		case <-ctx.Done():
			// Workers stop; the undo removes the file.
			if idx == 0 {
				f.Close()
			}
			return ctx.Err()
		}
	}
	return nil
}

// openTarget creates a file of the restore, or opens the existing one in a delta
// restore, sized to the backup's (the chunks may land out of order).
func (w *writer) openTarget(of *openFile) (*os.File, error) {
	p := w.local(of.entry.Path)
	var f *os.File
	var err error
	if of.existing {
		f, err = os.OpenFile(p, os.O_RDWR, 0)
	} else {
		// Creations in one directory serialize on its lock, and waiters spin on
		// it: more creators than CPUs only burn them (measured: a tenth of a
		// restore's CPU with the 16 small-file workers all creating).
		w.creating <- struct{}{}
		f, err = createFile(p, of.entry)
		<-w.creating
	}
	if err != nil {
		return nil, err
	}
	size := int64(-1)
	if of.existing {
		if fi, err := f.Stat(); err == nil {
			size = fi.Size()
		}
	}
	if size != of.entry.Size && (of.existing || of.entry.Size > int64(w.m.ChunkSize)) {
		if err := f.Truncate(of.entry.Size); err != nil {
			f.Close()
			return nil, fmt.Errorf("sizing %s: %w", p, err)
		}
	}
	return f, nil
}

// writeJob writes one chunk, unless a delta restore finds the file already
// holds it.
func (w *writer) writeJob(ctx context.Context, j job, s *scratch) error {
	chunkSize := int64(w.m.ChunkSize)
	want := min(chunkSize, j.of.entry.Size-int64(j.idx)*chunkSize)
	off := int64(j.idx) * chunkSize
	if j.of.f == nil && j.of.existing {
		f, err := w.openTarget(j.of)
		if err != nil {
			return err
		}
		j.of.f = f
	}
	same := false
	if j.of.existing {
		var err error
		if same, err = w.sameChunk(j, off, want, s); err != nil {
			return err
		}
	}
	if same {
		w.kept.Add(want)
	} else {
		data, err := w.chunk(ctx, j, &s.bufs)
		if err != nil {
			return fmt.Errorf("%s: %w", j.of.entry.Path, err)
		}
		if int64(len(data)) != want {
			return fmt.Errorf("%s: chunk %d is %d bytes, expected %d", j.of.entry.Path, j.idx, len(data), want)
		}
		if j.of.f == nil {
			if j.of.f, err = w.openTarget(j.of); err != nil {
				return err
			}
		}
		if err := w.writeChunk(j.of, data, off, &s.spare); err != nil {
			return fmt.Errorf("writing %s: %w", j.of.entry.Path, err)
		}
		// Start writeback of whole buffered chunks now without waiting
		// for it, so the disk works while the CPUs decode the next ones;
		// the syncfs at the end then finds little left to do. Small files
		// are left to it: one more system call each is not worth it.
		if int64(len(data)) == chunkSize && !j.of.direct {
			_ = unix.SyncFileRange(int(j.of.f.Fd()), off, int64(len(data)), unix.SYNC_FILE_RANGE_WRITE)
		}
		n := w.written.Add(int64(len(data)))
		if strings.HasPrefix(j.of.entry.Path, "pg_wal/") {
			w.walWritten.Add(int64(len(data)))
		}
		if w.o.Progress != nil {
			w.o.Progress(n)
		}
	}
	if j.of.pending.Add(-1) == 0 {
		return w.finish(j.of)
	}
	return nil
}

// sameChunk reads the range of an existing file that chunk j covers and
// reports whether it hashes to the chunk's ID (the keyed hash the backup named
// it by). A file in direct mode is read into a page-aligned buffer.
func (w *writer) sameChunk(j job, off, want int64, s *scratch) (bool, error) {
	if int64(cap(s.old)) < want {
		// Sized to need: a small-file worker never holds a whole chunk's buffer.
		s.old = pageAligned(int(max(want, pageSize)))
	}
	buf := s.old[:want]
	n, err := j.of.f.ReadAt(buf, off)
	if errors.Is(err, unix.EINVAL) && j.of.direct {
		setDirect(j.of.f, false)
		j.of.direct = false
		n, err = j.of.f.ReadAt(buf, off)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("reading %s: %w", j.of.entry.Path, err)
	}
	return int64(n) == want && w.r.ContentHash(buf) == j.of.entry.Chunks[j.idx], nil
}

// keepFile gives a file a delta restore keeps as it is the backup's metadata.
func (w *writer) keepFile(of *openFile) error {
	f, err := os.OpenFile(w.local(of.entry.Path), os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	of.f = f
	w.kept.Add(of.entry.Size)
	return w.finish(of)
}

// createFile creates a file of the restore; it must not exist.
func createFile(p string, e *repo.File) (*os.File, error) {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, e.Mode.Perm()|0o600)
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", p, err)
	}
	return f, nil
}

// finish closes a completely written file and gives it its metadata. It is
// made durable by the syncfs of its file system before pg_control is written
// (durable writes file by file would make every worker wait for the disk).
//
// Mode and owner are set through the open descriptor, and the mode only when
// creating the file under the umask did not already give the right one (it
// does for PostgreSQL's usual 0600): thousands of small files make every
// system call per file count.
func (w *writer) finish(of *openFile) error {
	p := of.f.Name()
	if perm := of.entry.Mode.Perm(); of.existing || (perm|0o600)&^w.umask != perm {
		if err := of.f.Chmod(perm); err != nil {
			of.f.Close()
			return fmt.Errorf("chmod %s: %w", p, err)
		}
	}
	if w.o.UID >= 0 {
		if err := of.f.Chown(w.o.UID, w.o.GID); err != nil {
			of.f.Close()
			return fmt.Errorf("chown %s: %w", p, err)
		}
	}
	if err := of.f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", p, err)
	}
	if !of.entry.MTime.IsZero() {
		_ = os.Chtimes(p, of.entry.MTime, of.entry.MTime)
	}
	return nil
}

// writeRecovery writes recovery.signal (standby.signal for a standby) and
// appends the recovery settings to postgresql.auto.conf (the later of repeated
// settings wins in PostgreSQL, so appending overrides whatever the source had).
// The other signal file goes: a backup taken from a standby may carry
// standby.signal, which would keep a restore meant to promote in standby mode
// for ever.
func (w *writer) writeRecovery() error {
	if w.o.Recovery == nil {
		return nil
	}
	name, other := "recovery.signal", "standby.signal"
	if w.o.Standby {
		name, other = other, name
	}
	if err := os.Remove(w.local(other)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	sig := w.local(name)
	if err := os.WriteFile(sig, nil, 0o600); err != nil {
		return err
	}
	if err := w.chown(sig); err != nil {
		return err
	}
	auto := w.local("postgresql.auto.conf")
	f, err := os.OpenFile(auto, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n# Recovery settings added by pgward restore of backup %s at %s\n", w.m.ID, time.Now().UTC().Format(time.RFC3339))
	for _, s := range w.o.Recovery {
		fmt.Fprintf(&b, "%s = %s\n", s.Name, QuoteConf(s.Value))
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return w.chown(auto)
}

// QuoteConf quotes a value for postgresql.conf.
func QuoteConf(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }

// OwnerOf returns the uid and gid owning path.
func OwnerOf(path string) (int, int, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return -1, -1, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return -1, -1, fmt.Errorf("cannot read the owner of %s", path)
	}
	return int(st.Uid), int(st.Gid), nil
}
