package repo

import (
	"bytes"
	"encoding/json"
	"strconv"
	"testing"
	"time"
)

// The hand-written manifest encoding must be encoding/json's, byte for byte: old
// readers and tools that read a repository without our code parse it as JSON.
func TestEncodeManifestIsJSONMarshal(t *testing.T) {
	mtime := time.Date(2026, 12, 2, 20, 38, 1, 123456789, time.UTC)
	var h1, h2 Hash
	for i := range h1 {
		h1[i], h2[i] = byte(i), byte(255-i)
	}
	odd := []string{
		"base/5/16384", "", `quote"back\slash`, "<html>&amp;", "tab\there\nnewline\x01",
		"ünïcödé/文件", "invalid\xff\xfeutf8", "sep\u2028\u2029", "pg_tblspc/16390/PG_15_202209061/5/16391",
	}
	cases := map[string]*Manifest{
		"empty file list": {ID: "20261202T000000Z", Cluster: "main", Files: []File{}},
		"nil file list":   {ID: "20261202T000000Z", Cluster: "main"},
	}
	full := &Manifest{
		Format: ManifestFormat, ID: "20261202T203801Z", Cluster: "main", SystemIdentifier: "7714807025204700297",
		PGVersion: 150018, Timeline: 1, StartLSN: "0/87000028", StopLSN: "0/87000138",
		StartTime: mtime, StopTime: mtime.Add(time.Second), Label: "pgward <label> & \"quotes\"", Compress: "zstd:3",
		ChunkSize: 4 << 20, DBBytes: 188546472, StoredBytes: 6447904, WALFiles: 1,
		Tablespaces: []Tablespace{{OID: 16390, Location: "/srv/ts"}}, Databases: []Database{{OID: 5, Name: "postgres"}},
		FromStandby: true,
	}
	for i, p := range odd {
		full.Files = append(full.Files,
			File{Path: p, Type: TypeFile, Mode: 0o600, MTime: mtime, Size: int64(i) * 8192, Chunks: []Hash{h1, h2}},
			File{Path: p + "/dir", Type: TypeDir, Mode: 0o700, MTime: mtime.In(time.FixedZone("x", 3600))},
			File{Path: p + "/link", Type: TypeSymlink, Mode: 0o777, MTime: time.Time{}, Target: p},
			File{Path: p + "/empty", Type: TypeFile, Mode: 0o644, MTime: mtime, Chunks: []Hash{}})
	}
	cases["every kind of entry"] = full
	for name, m := range cases {
		want, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := encodeManifest(m)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(got, want) {
			i := 0
			for i < len(got) && i < len(want) && got[i] == want[i] {
				i++
			}
			t.Errorf("%s: differs from json.Marshal at byte %d:\n got  %.120q\n want %.120q", name, i, got[i:], want[i:])
		}
	}
}

func BenchmarkEncodeManifest(b *testing.B) {
	m := &Manifest{ID: "20261202T203801Z", Cluster: "main"}
	var h Hash
	for i := range 13000 {
		h[0], h[1] = byte(i), byte(i>>8)
		m.Files = append(m.Files, File{Path: "base/5/" + strconv.Itoa(16384+i), Type: TypeFile, Mode: 0o600, MTime: time.Now().UTC(), Size: 8192, Chunks: []Hash{h}})
	}
	b.Run("encodeManifest", func(b *testing.B) {
		for b.Loop() {
			if _, err := encodeManifest(m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		for b.Loop() {
			if _, err := json.Marshal(m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
