package engine

import (
	"bytes"
	"context"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/pgward/pgward/compress"
	"github.com/pgward/pgward/internal/pgserver/basebackup"
	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/wal"
)

// The source stage of a backup: it reads the server's BASE_BACKUP answer (one tar
// stream per tablespace, then the server's backup_manifest and the stop position),
// turns every tar entry into a manifest entry, and cuts regular files into chunks
// for the chunk store. It owns the connection, so it runs on one goroutine; it
// keeps its work cheap (a copy and a CRC) so the cores go to the chunk store and
// the walsender.

// backupStream is what the source reads: basebackup.Stream, or a test's tar archives.
type backupStream interface {
	Next(ctx context.Context) (basebackup.Archive, error)
	Manifest(ctx context.Context, limit int64, sizeHint int) ([]byte, error)
	Finish(ctx context.Context) (pglogrepl.LSN, int32, error)
}

// fileState is one entry being received; ids[r] are its chunk IDs in repository r.
type fileState struct {
	entry repo.File
	ids   [][]repo.Hash
	// codec, when set, compresses the file's chunks instead of the backup's.
	codec compress.Codec
}

// chunkJob is one chunk of a file for the chunk store, in a buffer of the pool.
type chunkJob struct {
	f    *fileState
	idx  int
	buf  *[]byte
	size int
	// fill, when set, completes the chunk of an incremental file from the
	// previous version before anything else (incremental.go).
	fill *baseFill
}

// received is what the source found in the stream.
type received struct {
	files    []*fileState
	total    int64 // bytes of file data
	walFiles int
	tbs      []repo.Tablespace
	stopLSN  pglogrepl.LSN
	stopTLI  int32
	// checked yields the result of the check of what arrived against the
	// server's backup_manifest (verifyAgainstServerManifest), which runs beside
	// the rest of the pipeline from the moment the manifest has arrived.
	checked <-chan error
	// readTime is the read stage's busy time: receiving and cutting the stream,
	// without the waits for the chunk store.
	readTime time.Duration
}

// source cuts the stream into chunk jobs. Buffers come from pool and go back to it
// from the chunk store, which bounds memory: the source blocks when all are in use.
type source struct {
	stream    backupStream
	chunkSize int
	repos     int
	pool      *bufferPool
	jobs      chan<- chunkJob
	progress  func(received int64)
	// rebuild turns INCREMENTAL.<name> files back into whole files (nil: the
	// backup is not incremental).
	rebuild *rebuilder
	// ended, when set, is called once the last file has arrived, before the
	// server's manifest and stop position.
	ended func()
	// walStarts, when set, is called once, when the first file of pg_wal starts to
	// arrive: the server sends the WAL (segments, then timeline history files)
	// after every data file of every tablespace.
	walStarts func()

	got   received
	files map[string]receivedFile
	// waited is the time run spent waiting for the chunk store (a free buffer, room
	// in the jobs channel): the rest of its time is the read stage's.
	waited time.Duration
}

// run reads the whole stream and keeps the server's backup_manifest as a file of
// the backup (restore writes it back, so pg_verifybackup can check the result).
// What it received is checked against that manifest (size and CRC32C of every
// file) on a goroutine of its own (received.checked), while the chunk store
// finishes: tens of ms for thousands of files that the commit need not wait for
// in series.
func (s *source) run(ctx context.Context) (*received, error) {
	defer close(s.jobs)
	began := time.Now()
	s.files = map[string]receivedFile{}
	for {
		a, err := s.stream.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if err := s.archive(ctx, a); err != nil {
			return nil, err
		}
	}
	if s.ended != nil {
		s.ended()
	}
	serverMan, err := s.stream.Manifest(ctx, maxServerManifest, serverManifestSize(len(s.files)))
	if err != nil {
		return nil, err
	}
	checked := make(chan error, 1)
	go func() { checked <- verifyAgainstServerManifest(serverMan, s.files) }()
	s.got.checked = checked
	if s.got.stopLSN, s.got.stopTLI, err = s.stream.Finish(ctx); err != nil {
		return nil, err
	}
	mf := s.newFile(repo.File{Path: "backup_manifest", Type: repo.TypeFile, Mode: 0o600, MTime: time.Now().UTC(), Size: int64(len(serverMan))})
	// The last chunk of the backup, which the commit waits for: JSON that the
	// metadata codec compresses as well as zstd:3 in half the time.
	mf.codec = repo.MetaCodec()
	if _, err := s.send(ctx, mf, bytes.NewReader(serverMan), int64(len(serverMan))); err != nil {
		return nil, err
	}
	s.got.files = append(s.got.files, mf)
	s.got.readTime = time.Since(began) - s.waited
	return &s.got, nil
}

// serverManifestSize is about the size of the server's backup_manifest for n
// files: ~145 bytes a file (path, size, time, CRC32C) and a kB of the rest.
func serverManifestSize(n int) int { return 160*n + 1024 }

func (s *source) newFile(e repo.File) *fileState {
	return &fileState{entry: e, ids: make([][]repo.Hash, s.repos)}
}

// archive reads one tablespace's tar stream.
func (s *source) archive(ctx context.Context, a basebackup.Archive) error {
	prefix := ""
	if a.Tablespace.OID != 0 {
		prefix = "pg_tblspc/" + strconv.FormatUint(uint64(a.Tablespace.OID), 10) + "/"
		s.got.tbs = append(s.got.tbs, repo.Tablespace{OID: a.Tablespace.OID, Location: a.Tablespace.Location})
	}
	tr := basebackup.NewTarReader(a.R)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the tar stream of %s: %w", archiveName(a.Tablespace), err)
		}
		name := strings.TrimSuffix(path.Clean(strings.TrimPrefix(h.Name, "./")), "/")
		if name == "." {
			continue
		}
		f := s.newFile(repo.File{Path: prefix + name, Mode: os.FileMode(h.Mode).Perm(), MTime: h.ModTime.UTC()})
		switch h.Typeflag {
		case basebackup.TarDir:
			f.entry.Type = repo.TypeDir
		case basebackup.TarSymlink:
			f.entry.Type = repo.TypeSymlink
			f.entry.Target = h.Linkname
		case basebackup.TarFile, basebackup.TarOldFile:
			f.entry.Type = repo.TypeFile
			f.entry.Size = h.Size
			if s.walStarts != nil && strings.HasPrefix(f.entry.Path, "pg_wal/") {
				s.walStarts()
				s.walStarts = nil
			}
			sent := f.entry.Path // the name the server's manifest lists
			var crc uint32
			if _, inc := basebackup.IsIncremental(sent); inc && s.rebuild != nil {
				crc, err = s.incremental(ctx, f, tr, h.Size)
			} else if sent == "backup_label" && s.rebuild != nil {
				crc, err = s.fullBackupLabel(ctx, f, tr, h.Size)
			} else {
				crc, err = s.send(ctx, f, tr, h.Size)
			}
			if err != nil {
				return err
			}
			s.files[sent] = receivedFile{size: h.Size, crc32: crc}
			if strings.HasPrefix(f.entry.Path, "pg_wal/") {
				s.got.walFiles++
			}
		default:
			return fmt.Errorf("%s: unexpected tar entry type %q in the server's stream", f.entry.Path, h.Typeflag)
		}
		s.got.files = append(s.got.files, f)
	}
}

// send cuts one file's data into chunks and hands them to the chunk store. It
// returns the data's CRC32C, for the check against the server's manifest, unless
// the file is a WAL segment: the manifest leaves segments out (their records carry
// CRCs of their own; it lists timeline history files), and one is 16 MiB at the
// end of every backup.
func (s *source) send(ctx context.Context, f *fileState, r io.Reader, size int64) (uint32, error) {
	chunkSize := int64(s.chunkSize)
	n := int((size + chunkSize - 1) / chunkSize)
	for ri := range f.ids {
		f.ids[ri] = make([]repo.Hash, n)
	}
	var crc hash.Hash32
	if !isWALSegment(f.entry.Path) {
		crc = crc32.New(castagnoli)
	}
	for i := range n {
		buf, err := s.takeBuffer(ctx)
		if err != nil {
			return 0, err
		}
		want := int(min(chunkSize, size-int64(i)*chunkSize))
		b := (*buf)[:want]
		if _, err := io.ReadFull(r, b); err != nil {
			s.pool.put(buf)
			return 0, fmt.Errorf("reading %s from the server: %w", f.entry.Path, err)
		}
		if crc != nil {
			crc.Write(b)
		}
		if err := s.emit(ctx, f, i, buf, want); err != nil {
			return 0, err
		}
	}
	if crc == nil {
		return 0, nil
	}
	return crc.Sum32(), nil
}

// isWALSegment reports whether p is a WAL segment of the backup.
func isWALSegment(p string) bool {
	dir, base := path.Split(p)
	n, err := wal.ParseName(base)
	return dir == "pg_wal/" && err == nil && n.Kind == wal.Segment
}

// takeBuffer waits for a chunk buffer of the pool.
func (s *source) takeBuffer(ctx context.Context) (*[]byte, error) {
	if buf, ok := s.pool.tryGet(); ok {
		return buf, nil
	}
	began := time.Now()
	defer func() { s.waited += time.Since(began) }()
	return s.pool.get(ctx)
}

// emit hands chunk idx of f (size bytes in buf) to the chunk store.
func (s *source) emit(ctx context.Context, f *fileState, idx int, buf *[]byte, size int) error {
	return s.emitFill(ctx, f, idx, buf, size, nil)
}

// emitFill is emit for a chunk that a worker completes from the previous version
// first (fill; nil: complete as it is).
func (s *source) emitFill(ctx context.Context, f *fileState, idx int, buf *[]byte, size int, fill *baseFill) error {
	s.got.total += int64(size)
	j := chunkJob{f: f, idx: idx, buf: buf, size: size, fill: fill}
	select {
	case s.jobs <- j:
	default:
		began := time.Now()
		select {
		case s.jobs <- j:
		case <-ctx.Done():
			return ctx.Err()
		}
		s.waited += time.Since(began)
	}
	if s.progress != nil {
		s.progress(s.got.total)
	}
	return nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func archiveName(t basebackup.Tablespace) string {
	if t.OID == 0 {
		return "the main data directory"
	}
	return fmt.Sprintf("tablespace %d (%s)", t.OID, t.Location)
}
