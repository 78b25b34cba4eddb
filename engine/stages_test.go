package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"hash/crc32"
	"io"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/pgward/pgward/compress"
	"github.com/pgward/pgward/internal/pgserver/basebackup"
	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/local"
)

// fakeStream is a BASE_BACKUP answer made of tar archives and a server manifest.
type fakeStream struct {
	archives []basebackup.Archive
	manifest []byte
}

func (f *fakeStream) Next(context.Context) (basebackup.Archive, error) {
	if len(f.archives) == 0 {
		return basebackup.Archive{}, io.EOF
	}
	a := f.archives[0]
	f.archives = f.archives[1:]
	return a, nil
}

func (f *fakeStream) Manifest(context.Context, int64, int) ([]byte, error) { return f.manifest, nil }
func (f *fakeStream) Finish(context.Context) (pglogrepl.LSN, int32, error) {
	return 0x3000100, 1, nil
}

// tarOf builds a tar archive of files (path → content) and the server
// manifest's entries for them.
func tarOf(t *testing.T, files map[string][]byte, dirs ...string) ([]byte, []map[string]any) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range dirs {
		tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o700, ModTime: time.Now()})
	}
	var entries []map[string]any
	for name, data := range files {
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o600, Size: int64(len(data)), ModTime: time.Now()})
		tw.Write(data)
		var crc [4]byte
		binary.LittleEndian.PutUint32(crc[:], crc32.Checksum(data, castagnoli))
		// The server lists no WAL segment (it lists timeline history files).
		if dir, base := path.Split(name); dir != "pg_wal/" || strings.HasSuffix(base, ".history") {
			entries = append(entries, map[string]any{"Path": name, "Size": len(data), "Checksum-Algorithm": "CRC32C", "Checksum": hex.EncodeToString(crc[:])})
		}
	}
	tw.Close()
	return buf.Bytes(), entries
}

func stageRepo(t *testing.T) *repo.Repo {
	t.Helper()
	st, err := local.Create(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(context.Background(), st, repo.InitOptions{ChunkSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The stages without a server: a stream of files goes through the source and the
// chunk store into a committed manifest whose chunks rebuild every file; a second
// run of the same content, seeded from the first manifest, stores nothing new; a
// file the server's manifest does not know stops the backup before the commit.
func TestBackupStages(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320 kB: five chunks
	files := map[string][]byte{"base/1/1259": big, "PG_VERSION": []byte("15\n"), "pg_wal/000000010000000000000003": make([]byte, 1000),
		"pg_wal/00000002.history": []byte("1\t0/3000000\tno recovery target specified\n"), "empty": nil}
	data, entries := tarOf(t, files, "base", "base/1", "pg_wal")
	man, _ := json.Marshal(map[string]any{"PostgreSQL-Backup-Manifest-Version": 1, "Files": entries})
	r := stageRepo(t)
	codec, _ := compress.Parse("zstd:1")
	o := BackupOptions{Cluster: "main", Jobs: 2, Codec: codec}
	ctx := context.Background()

	run := func(store *chunkStore, stream backupStream) (*received, error) {
		return pipeline(ctx, stream, store, r.Config().ChunkSize, nil, o, nil)
	}
	store := newChunkStore([]*repo.Repo{r}, codec, 2)
	got, err := run(store, &fakeStream{archives: []basebackup.Archive{{R: bytes.NewReader(data)}}, manifest: man})
	if err != nil {
		t.Fatal(err)
	}
	if got.total != int64(len(big)+3+1000+len(files["pg_wal/00000002.history"])+len(man)) || got.walFiles != 2 || got.stopLSN != 0x3000100 {
		t.Errorf("received %+v", got)
	}
	ms, err := commit(ctx, []*repo.Repo{r}, repo.Manifest{ID: "20261202T000000Z", Cluster: "main", ChunkSize: r.Config().ChunkSize}, got.files, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := r.Manifest(ctx, "main", ms[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	var bufs repo.ChunkBuffers
	for _, f := range m.Files {
		want, ok := files[f.Path]
		if f.Path == "backup_manifest" {
			want, ok = man, true
		}
		if f.Type != repo.TypeFile || !ok {
			continue
		}
		var rebuilt []byte
		for _, id := range f.Chunks {
			c, err := r.GetChunk(ctx, id, &bufs)
			if err != nil {
				t.Fatal(err)
			}
			rebuilt = append(rebuilt, c...)
		}
		if !bytes.Equal(rebuilt, want) {
			t.Errorf("%s: %d bytes rebuilt from %d chunks, want %d", f.Path, len(rebuilt), len(f.Chunks), len(want))
		}
	}
	if first := store.stored[0].Load(); first == 0 {
		t.Error("the first run stored nothing")
	}
	if st := store.times(got.readTime); st.Read <= 0 || st.Seal <= 0 || st.Store <= 0 {
		t.Errorf("stage times not accounted: %+v", st)
	}

	again := newChunkStore([]*repo.Repo{r}, codec, 2)
	again.seed(0, m)
	if _, err := run(again, &fakeStream{archives: []basebackup.Archive{{R: bytes.NewReader(data)}}, manifest: man}); err != nil {
		t.Fatal(err)
	}
	if n := again.stored[0].Load(); n != 0 {
		t.Errorf("unchanged content stored %d new bytes", n)
	}

	extra, _ := tarOf(t, map[string][]byte{"stray": []byte("x")})
	if _, err := run(newChunkStore([]*repo.Repo{r}, codec, 2), &fakeStream{archives: []basebackup.Archive{{R: bytes.NewReader(data)}, {Tablespace: basebackup.Tablespace{OID: 16400, Location: "/ts"}, R: bytes.NewReader(extra)}}, manifest: man}); err == nil || !strings.Contains(err.Error(), "pg_tblspc/16400/stray: received but not listed") {
		t.Errorf("a file the server did not list: %v", err)
	}
}
