package repo

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pgward/pgward/internal/jsonread"
)

// encodeManifest is json.Marshal(m), byte for byte, written by hand for the file
// list: encoding/json takes ~15 ms for the 13,000 files of a cluster of many small
// tables (reflection, a TextMarshaler call per hash, then a validating pass over
// its output), and the commit waits for it. manifestjson_test.go holds the two
// encodings equal.
func encodeManifest(m *Manifest) ([]byte, error) {
	head := *m
	head.Files = nil
	b, err := json.Marshal(&head)
	if err != nil {
		return nil, err
	}
	// Files is the last field and has no omitempty: the head ends with it.
	const nullFiles = `"files":null}`
	if !bytes.HasSuffix(b, []byte(nullFiles)) {
		return nil, fmt.Errorf("manifest encoding: the file list is not the last field")
	}
	b = append(b[:len(b)-len(nullFiles)], `"files":`...)
	if m.Files == nil {
		return append(b, "null}"...), nil
	}
	// Sized once: growing a 2 MB slice by appends copies it over and over.
	b = slices.Grow(b, filesSize(m.Files))
	b = append(b, '[')
	for i := range m.Files {
		if i > 0 {
			b = append(b, ',')
		}
		if b, err = appendFile(b, &m.Files[i]); err != nil {
			return nil, err
		}
	}
	return append(b, "]}"...), nil
}

// filesSize is about the length of the files' encoding (a little more unless
// names need escaping).
func filesSize(files []File) int {
	n := 2
	for i := range files {
		f := &files[i]
		n += len(`{"path":"","type":"","mode":4294967295,"mtime":"2006-01-02T15:04:05.999999999+07:00","size":9223372036854775807,"target":"","chunks":[]},`)
		n += len(f.Path) + len(f.Type) + len(f.Target) + len(f.Chunks)*(2*len(Hash{})+3)
	}
	return n
}

// appendFile appends f as encoding/json writes a File.
func appendFile(b []byte, f *File) ([]byte, error) {
	b = append(b, `{"path":`...)
	b = appendString(b, f.Path)
	b = append(b, `,"type":`...)
	b = appendString(b, f.Type)
	b = append(b, `,"mode":`...)
	b = strconv.AppendUint(b, uint64(f.Mode), 10)
	b = append(b, `,"mtime":"`...)
	b, err := f.MTime.AppendText(b)
	if err != nil {
		return nil, fmt.Errorf("manifest encoding: %s: %w", f.Path, err)
	}
	b = append(b, '"')
	if f.Size != 0 {
		b = append(b, `,"size":`...)
		b = strconv.AppendInt(b, f.Size, 10)
	}
	if f.Target != "" {
		b = append(b, `,"target":`...)
		b = appendString(b, f.Target)
	}
	if len(f.Chunks) > 0 {
		b = append(b, `,"chunks":[`...)
		for i, h := range f.Chunks {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = hex.AppendEncode(b, h[:])
			b = append(b, '"')
		}
		b = append(b, ']')
	}
	return append(b, '}'), nil
}

// appendString appends s as a JSON string the way encoding/json does. Paths are
// printable ASCII but for rare exceptions, which take encoding/json's own escaping
// (HTML characters, control characters, invalid UTF-8, U+2028 and U+2029).
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// errNotCanonical makes decodeManifest leave a document to encoding/json.
var errNotCanonical = errors.New("not in the form encodeManifest writes")

// decodeManifest is json.Unmarshal(b, m) for a manifest, with the file list read
// by internal/jsonread: json.Unmarshal takes ~30 ms for the 13,000 files of a
// cluster of many small tables, which every backup (its previous manifest),
// restore, list and verify paid. Anything it does not expect of the file list (a
// member it does not know, a key spelled another way, a value of another type)
// leaves the whole document to json.Unmarshal, so the result, and any error, are
// encoding/json's; the other members always go through it.
// manifestjson_test.go holds the two equal.
func decodeManifest(b []byte, m *Manifest) error {
	if out, err := decodeManifestFast(b); err == nil {
		*m = *out
		return nil
	}
	*m = Manifest{}
	return json.Unmarshal(b, m)
}

func decodeManifestFast(b []byte) (*Manifest, error) {
	p := jsonread.New(b)
	head := []byte{'{'}
	var files []File
	seen := false
	err := p.Object(func(key []byte) error {
		if string(key) == "files" {
			if seen {
				return errNotCanonical
			}
			seen = true
			if p.Null() {
				return nil
			}
			var err error
			files, err = decodeFiles(p)
			return err
		}
		if strings.EqualFold(string(key), "files") {
			return errNotCanonical
		}
		v, err := p.Value()
		if err != nil {
			return err
		}
		if len(head) > 1 {
			head = append(head, ',')
		}
		head = appendString(head, string(key))
		head = append(head, ':')
		head = append(head, v...)
		return nil
	})
	if err == nil {
		err = p.End()
	}
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(append(head, '}'), &m); err != nil {
		return nil, err
	}
	m.Files = files
	return &m, nil
}

// decodeFiles reads a manifest's file list as encodeManifest writes it.
func decodeFiles(p *jsonread.Reader) ([]File, error) {
	files := make([]File, 0, 1024)
	err := p.Array(func() error {
		var f File
		err := p.Object(func(key []byte) (err error) {
			switch string(key) {
			case "path":
				f.Path, err = p.String()
			case "type":
				f.Type, err = p.String()
			case "mode":
				var n int64
				if n, err = p.Integer(); err == nil && (n < 0 || n > math.MaxUint32) {
					err = errNotCanonical
				}
				f.Mode = os.FileMode(n)
			case "mtime":
				var s string
				if s, err = p.String(); err == nil {
					err = f.MTime.UnmarshalText([]byte(s))
				}
			case "size":
				f.Size, err = p.Integer()
			case "target":
				f.Target, err = p.String()
			case "chunks":
				f.Chunks, err = decodeChunks(p)
			default:
				err = errNotCanonical
			}
			return err
		})
		files = append(files, f)
		return err
	})
	return files, err
}

// decodeChunks reads a file's list of chunk IDs (null: none).
func decodeChunks(p *jsonread.Reader) ([]Hash, error) {
	if p.Null() {
		return nil, nil
	}
	chunks := []Hash{}
	err := p.Array(func() error {
		s, err := p.String()
		if err != nil {
			return err
		}
		h, err := ParseHash(s)
		chunks = append(chunks, h)
		return err
	})
	return chunks, err
}
