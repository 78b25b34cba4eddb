package basebackup

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// TarReader reads what archive/tar writes in the ustar format, entry for entry and
// byte for byte: sizes around the block size, empty files, directories, symbolic
// links, names at the 99-byte limit and longer ones split into a ustar prefix.
func TestTarReaderMatchesArchiveTar(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(1764633600, 0)
	type entry struct {
		h    tar.Header
		data []byte
	}
	var want []entry
	add := func(h tar.Header, data []byte) {
		h.Format, h.ModTime = tar.FormatUSTAR, mtime
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
		want = append(want, entry{h, data})
	}
	add(tar.Header{Name: "base", Typeflag: tar.TypeDir, Mode: 0o700}, nil)
	for _, n := range []int{0, 1, 511, 512, 513, 100000} {
		add(tar.Header{Name: "base/1/f" + strings.Repeat("x", n%50), Typeflag: tar.TypeReg, Mode: 0o600, Size: int64(n)}, bytes.Repeat([]byte{byte(n)}, n))
	}
	add(tar.Header{Name: strings.Repeat("n", 99), Typeflag: tar.TypeReg, Mode: 0o640, Size: 3}, []byte("abc"))
	add(tar.Header{Name: strings.Repeat("d", 60) + "/" + strings.Repeat("f", 60), Typeflag: tar.TypeReg, Mode: 0o600, Size: 2}, []byte("ok"))
	add(tar.Header{Name: "pg_tblspc/16384", Typeflag: tar.TypeSymlink, Linkname: "/srv/ts", Mode: 0o777}, nil)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}

	tr := NewTarReader(bytes.NewReader(buf.Bytes()))
	for i, w := range want {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if h.Name != w.h.Name || h.Typeflag != w.h.Typeflag || h.Linkname != w.h.Linkname || h.Mode != w.h.Mode || h.Size != w.h.Size || !h.ModTime.Equal(mtime) {
			t.Fatalf("entry %d: %+v, want %+v", i, h, w.h)
		}
		if i == 2 {
			continue // left unread: Next skips it
		}
		got, err := io.ReadAll(tr)
		if err != nil || !bytes.Equal(got, w.data) {
			t.Fatalf("entry %d (%s): %d bytes, %v", i, h.Name, len(got), err)
		}
	}
	if _, err := tr.Next(); err != io.EOF {
		t.Fatalf("after the last entry: %v, want io.EOF", err)
	}

	// A flipped byte in a header is refused; a stream cut inside an entry is an
	// unexpected end, not the end of the archive.
	bad := bytes.Clone(buf.Bytes())
	bad[512+10] ^= 1
	tr = NewTarReader(bytes.NewReader(bad))
	if _, err := tr.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Next(); !errors.Is(err, ErrTarHeader) {
		t.Fatalf("corrupt header: %v", err)
	}
	tr = NewTarReader(bytes.NewReader(buf.Bytes()[:512*3+100]))
	var err error
	for err == nil {
		if _, err = tr.Next(); err == nil {
			_, err = io.ReadAll(tr)
		}
	}
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("truncated archive: %v", err)
	}
}

// Sizes of 8 GiB and more are base-256 (PostgreSQL's print_tar_number).
func TestParseNumber(t *testing.T) {
	big := make([]byte, 12)
	big[0] = 0x80
	big[7], big[8] = 0x02, 0x01 // 0x0201 << 24
	for _, c := range []struct {
		field []byte
		want  int64
	}{
		{[]byte("00000001750\x00"), 0o1750},
		{[]byte("   644 \x00"), 0o644},
		{[]byte("\x00\x00\x00"), 0},
		{big, 0x0201 << 24},
	} {
		if got, err := parseNumber(c.field); err != nil || got != c.want {
			t.Errorf("parseNumber(%q) = %d, %v; want %d", c.field, got, err, c.want)
		}
	}
	if _, err := parseNumber([]byte("12x4")); err == nil {
		t.Error("a non-octal digit parsed")
	}
}
