package repo

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
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
		checkDecode(t, name, m)
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
	m := manyFiles(13000)
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

// checkDecode: decodeManifest reads what encodeManifest wrote as json.Unmarshal does.
func checkDecode(t *testing.T, name string, m *Manifest) {
	t.Helper()
	b, err := encodeManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	var want, got Manifest
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if err := decodeManifest(b, &got); err != nil {
		t.Fatalf("%s: decodeManifest: %v", name, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: decodeManifest differs from json.Unmarshal:\n got  %+v\n want %+v", name, got, want)
	}
	if _, err := decodeManifestFast(b); err != nil {
		t.Errorf("%s: the fast path refused what encodeManifest wrote: %v", name, err)
	}
}

// What encodeManifest never writes goes to json.Unmarshal whole: same result,
// same errors.
func TestDecodeManifestLeavesTheUnexpectedToJSON(t *testing.T) {
	docs := []string{
		`{"id":"a","files":[{"path":"p","type":"file","mode":384,"mtime":"2026-12-02T20:38:01Z","size":1,"chunks":["` + strings.Repeat("ab", 32) + `"]}]}`,
		`{"id":"a","Files":[{"path":"p"}]}`,
		`{"files":[{"Path":"p","MODE":1}]}`,
		`{"files":[{"path":"p","extra":1}]}`,
		`{"files":[{"path":null,"mode":null,"chunks":null}]}`,
		`{"files":[{"mode":-1}]}`,
		`{"files":[{"mode":4294967296}]}`,
		`{"files":[{"size":1.5}]}`,
		`{"files":[{"mtime":"yesterday"}]}`,
		`{"files":[{"chunks":["00"]}]}`,
		`{"files":[{"chunks":[]}]}`,
		`{"files":null,"id":"b"}`,
		`{"files":[],"files":[{"path":"x"}]}`,
		`{"id":"a"}`,
		`{"files":[{"path":"a"}]} x`,
		`{"files":[{"path":"a\u00e9\"b"}]}`,
		`[]`,
		``,
	}
	for _, d := range docs {
		var want, got Manifest
		wantErr := json.Unmarshal([]byte(d), &want)
		gotErr := decodeManifest([]byte(d), &got)
		if (wantErr == nil) != (gotErr == nil) || wantErr != nil && wantErr.Error() != gotErr.Error() {
			t.Errorf("%s: error %v, json.Unmarshal's %v", d, gotErr, wantErr)
		}
		if wantErr == nil && !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got  %+v\n want %+v", d, got, want)
		}
	}
}

func BenchmarkDecodeManifest(b *testing.B) {
	m := manyFiles(13000)
	enc, _ := encodeManifest(m)
	b.Run("decodeManifest", func(b *testing.B) {
		for b.Loop() {
			var out Manifest
			if err := decodeManifest(enc, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Unmarshal", func(b *testing.B) {
		for b.Loop() {
			var out Manifest
			if err := json.Unmarshal(enc, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// manyFiles is the manifest of a cluster of n one-page files, the case of many
// small tables.
func manyFiles(n int) *Manifest {
	m := &Manifest{ID: "20261202T203801Z", Cluster: "main"}
	var h Hash
	for i := range n {
		h[0], h[1] = byte(i), byte(i>>8)
		m.Files = append(m.Files, File{Path: "base/5/" + strconv.Itoa(16384+i), Type: TypeFile, Mode: 0o600, MTime: time.Now().UTC(), Size: 8192, Chunks: []Hash{h}})
	}
	return m
}
