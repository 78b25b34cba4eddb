package engine

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
)

// parseServerManifest must read what json.Unmarshal reads: a backup_manifest of
// PostgreSQL 15 (trimmed to a few files), and the corners of JSON a server never
// writes but a parser must not get wrong.
func TestParseServerManifestIsUnmarshal(t *testing.T) {
	real, err := os.ReadFile("testdata/backup_manifest.pg15")
	if err != nil {
		t.Fatal(err)
	}
	valid := map[string]string{
		"PostgreSQL 15": string(real),
		"escapes and unicode": `{"Files":[{"Path":"a\"b\\c\/d\u00e9\ud83d\ude00\t","Size":1},` +
			`{"Path":"ünï/文件","Encoded-Path":"6162","Size":0,"Checksum":""}]}`,
		"invalid UTF-8":   "{\"Files\":[{\"Path\":\"bad\xff\xfename\",\"Size\":7}]}",
		"unknown members": `{"X":{"a":[1,2.5e-3,-0,true,false,null,{"b":[]}]},"Files":[{"Extra":[[],{}],"Path":"p","Size":-3,"Y":null}],"Z":"s"}`,
		"white space":     " \t\r\n{ \"Files\" : [ ] , \"PostgreSQL-Backup-Manifest-Version\" : 2 } \n",
		"empty object":    `{}`,
		"repeated key":    `{"Files":[{"Path":"a","Path":"b","Size":1,"Size":2}]}`,
	}
	for name, in := range valid {
		var want serverManifest
		if err := json.Unmarshal([]byte(in), &want); err != nil {
			t.Fatalf("%s: json.Unmarshal: %v", name, err)
		}
		got, err := parseServerManifest([]byte(in))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got  %+v\n want %+v", name, got, want)
		}
	}
	invalid := map[string]string{
		"trailing comma":        `{"Files":[{"Path":"a"},]}`,
		"missing colon":         `{"Files" []}`,
		"single quotes":         `{'Files':[]}`,
		"control character":     "{\"Files\":[{\"Path\":\"a\nb\"}]}",
		"bad escape":            `{"Files":[{"Path":"a\qb"}]}`,
		"leading zero":          `{"Files":[{"Size":01}]}`,
		"fractional size":       `{"Files":[{"Size":1.5}]}`,
		"size as string":        `{"Files":[{"Size":"1"}]}`,
		"path as number":        `{"Files":[{"Path":1}]}`,
		"data after the object": `{"Files":[]} {}`,
		"bare literal":          `{"X":nul}`,
		"empty":                 ``,
	}
	for name, in := range invalid {
		if _, err := parseServerManifest([]byte(in)); err == nil {
			t.Errorf("%s: %q parsed without an error", name, in)
		}
	}
	// Every truncation of the real manifest is refused, by both.
	for n := range len(real) {
		cut := real[:n]
		if strings.TrimSpace(string(cut)) == strings.TrimSpace(string(real)) {
			continue
		}
		if _, err := parseServerManifest(cut); err == nil {
			t.Fatalf("the manifest cut at byte %d parsed without an error", n)
		}
	}
}

func BenchmarkParseServerManifest(b *testing.B) {
	real, err := os.ReadFile("testdata/backup_manifest.pg15")
	if err != nil {
		b.Fatal(err)
	}
	// 13,000 files, as the many-small-files cluster's manifest.
	s := string(real)
	head, rest, _ := strings.Cut(s, "\"Files\": [\n")
	line, _, _ := strings.Cut(rest, "\n")
	big := []byte(head + "\"Files\": [\n" + strings.Repeat(line+"\n", 13000) + rest)
	b.SetBytes(int64(len(big)))
	b.Run("parseServerManifest", func(b *testing.B) {
		for b.Loop() {
			if _, err := parseServerManifest(big); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Unmarshal", func(b *testing.B) {
		for b.Loop() {
			var m serverManifest
			if err := json.Unmarshal(big, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
