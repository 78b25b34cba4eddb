package engine

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// parseServerManifest reads the parts of a backup_manifest that serverManifest
// holds, as json.Unmarshal would, in a tenth of its time: ~30 ms for the 13,000
// files of a cluster of many small tables, between the last byte of the backup
// and its commit. It is a strict JSON reader for objects, arrays, strings, numbers
// and literals; values it does not keep are checked and skipped. Strings with
// escapes go through encoding/json, so their decoding is its own. Keys match
// exactly, in PostgreSQL's spelling (encoding/json would also take "path").
// servermanifestparse_test.go holds it equal to json.Unmarshal.
func parseServerManifest(raw []byte) (serverManifest, error) {
	p := &jsonReader{b: raw}
	var m serverManifest
	err := p.object(func(key []byte) error {
		switch string(key) {
		case "PostgreSQL-Backup-Manifest-Version":
			n, err := p.integer()
			m.Version = int(n)
			return err
		case "Files":
			m.Files = make([]serverFile, 0, 1024)
			return p.array(func() error {
				var f serverFile
				err := p.object(func(key []byte) (err error) {
					switch string(key) {
					case "Path":
						f.Path, err = p.string()
					case "Encoded-Path":
						f.EncodedPath, err = p.string()
					case "Size":
						f.Size, err = p.integer()
					case "Checksum-Algorithm":
						f.Algorithm, err = p.string()
					case "Checksum":
						f.Checksum, err = p.string()
					default:
						err = p.skip()
					}
					return err
				})
				m.Files = append(m.Files, f)
				return err
			})
		}
		return p.skip()
	})
	if err == nil {
		p.space()
		if p.i != len(p.b) {
			err = p.fail("data after the top-level object")
		}
	}
	if err != nil {
		return serverManifest{}, fmt.Errorf("the server's backup_manifest is not valid JSON: %w", err)
	}
	return m, nil
}

// jsonReader reads JSON values from b at i.
type jsonReader struct {
	b []byte
	i int
}

func (p *jsonReader) fail(what string) error { return fmt.Errorf("%s at byte %d", what, p.i) }

func (p *jsonReader) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// peek skips white space and returns the next byte (0 at the end).
func (p *jsonReader) peek() byte {
	p.space()
	if p.i == len(p.b) {
		return 0
	}
	return p.b[p.i]
}

func (p *jsonReader) expect(c byte) error {
	if p.peek() != c {
		return p.fail(fmt.Sprintf("expected %q", c))
	}
	p.i++
	return nil
}

// object reads an object, calling member for each key with the reader at its value.
func (p *jsonReader) object(member func(key []byte) error) error {
	if err := p.expect('{'); err != nil {
		return err
	}
	if p.peek() == '}' {
		p.i++
		return nil
	}
	for {
		key, err := p.key()
		if err != nil {
			return err
		}
		if err := p.expect(':'); err != nil {
			return err
		}
		if err := member(key); err != nil {
			return err
		}
		switch p.peek() {
		case ',':
			p.i++
		case '}':
			p.i++
			return nil
		default:
			return p.fail("expected ',' or '}'")
		}
	}
}

// array reads an array, calling elem with the reader at each element.
func (p *jsonReader) array(elem func() error) error {
	if err := p.expect('['); err != nil {
		return err
	}
	if p.peek() == ']' {
		p.i++
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		switch p.peek() {
		case ',':
			p.i++
		case ']':
			p.i++
			return nil
		default:
			return p.fail("expected ',' or ']'")
		}
	}
}

// string reads a string; one with escapes or non-ASCII bytes is decoded by
// encoding/json.
func (p *jsonReader) string() (string, error) {
	raw, plain, err := p.rawString()
	if err != nil || plain {
		return string(raw), err
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("string at byte %d: %w", p.i-len(raw), err)
	}
	return s, nil
}

// key reads an object's key as bytes (no allocation for a plain one, the
// common case, since the callers switch on it).
func (p *jsonReader) key() ([]byte, error) {
	raw, plain, err := p.rawString()
	if err != nil || plain {
		return raw, err
	}
	s, err := p.string()
	return []byte(s), err
}

// rawString reads a string: its contents when plain (printable ASCII, no
// escapes), else its quoted text for encoding/json to decode.
func (p *jsonReader) rawString() (raw []byte, plain bool, err error) {
	if err := p.expect('"'); err != nil {
		return nil, false, err
	}
	start, plain := p.i, true
	for ; p.i < len(p.b); p.i++ {
		switch c := p.b[p.i]; {
		case c == '\\':
			plain = false
			p.i++
		case c >= utf8.RuneSelf:
			plain = false // encoding/json replaces invalid UTF-8
		case c == '"':
			p.i++
			if plain {
				return p.b[start : p.i-1], true, nil
			}
			return p.b[start-1 : p.i], false, nil
		case c < 0x20:
			return nil, false, p.fail("control character in a string")
		}
	}
	return nil, false, p.fail("unterminated string")
}

// integer reads a number that must be an integer (sizes, versions).
func (p *jsonReader) integer() (int64, error) {
	tok, err := p.number()
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(tok, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("number %q at byte %d: not an integer", tok, p.i-len(tok))
	}
	return n, nil
}

// number reads a JSON number's text, checked against the JSON grammar.
func (p *jsonReader) number() (string, error) {
	p.space()
	start := p.i
	digits := func() int {
		n := 0
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.i < len(p.b) && p.b[p.i] == '-' {
		p.i++
	}
	if n := digits(); n == 0 || n > 1 && p.b[p.i-n] == '0' {
		return "", p.fail("malformed number")
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return "", p.fail("malformed number")
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return "", p.fail("malformed number")
		}
	}
	return string(p.b[start:p.i]), nil
}

// skip reads and discards one value of any kind.
func (p *jsonReader) skip() error {
	switch c := p.peek(); {
	case c == '{':
		return p.object(func([]byte) error { return p.skip() })
	case c == '[':
		return p.array(p.skip)
	case c == '"':
		raw, plain, err := p.rawString()
		if err == nil && !plain {
			var s string
			err = json.Unmarshal(raw, &s) // checks the escapes
		}
		return err
	case c == '-' || c >= '0' && c <= '9':
		_, err := p.number()
		return err
	}
	for _, lit := range []string{"true", "false", "null"} {
		if len(p.b)-p.i >= len(lit) && string(p.b[p.i:p.i+len(lit)]) == lit {
			p.i += len(lit)
			return nil
		}
	}
	return p.fail("expected a value")
}
