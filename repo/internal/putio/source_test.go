package putio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// TestReader: exactly size bytes pass; a short, long or failing source, or a canceled
// context, fail the read before the end is reported, with a permanent error for the source's
// faults.
func TestReader(t *testing.T) {
	boom := errors.New("boom")
	cases := []struct {
		name   string
		src    io.Reader
		size   int64
		ctx    func() context.Context
		want   string
		source bool
	}{
		{name: "exact", src: strings.NewReader("hello"), size: 5},
		{name: "empty", src: strings.NewReader(""), size: 0},
		{name: "short", src: strings.NewReader("hell"), size: 5, want: "reader ended 1 bytes before", source: true},
		{name: "long", src: strings.NewReader("hello!"), size: 5, want: "more than the 5 bytes", source: true},
		{name: "failing", src: io.MultiReader(strings.NewReader("he"), iotest.ErrReader(boom)), size: 5, want: "boom", source: true},
		{name: "one byte at a time", src: iotest.OneByteReader(strings.NewReader("hello")), size: 5},
		{name: "canceled", src: strings.NewReader("hello"), size: 5, want: "context canceled",
			ctx: func() context.Context { c, cancel := context.WithCancel(context.Background()); cancel(); return c }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.ctx != nil {
				ctx = tc.ctx()
			}
			got, err := io.ReadAll(Reader(ctx, tc.src, tc.size))
			if tc.want == "" {
				if err != nil || int64(len(got)) != tc.size {
					t.Fatalf("read %d bytes, %v; want %d and no error", len(got), err, tc.size)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			var se *SourceError
			if errors.As(err, &se) != tc.source {
				t.Fatalf("error %v: SourceError %v, want %v", err, !tc.source, tc.source)
			}
			if tc.source && se.Transient() {
				t.Fatal("a source error must be permanent")
			}
		})
	}
}

func TestReadFullEnd(t *testing.T) {
	buf := make([]byte, 4)
	r := bytes.NewReader([]byte("abcd"))
	if err := ReadFull(context.Background(), r, buf); err != nil || string(buf) != "abcd" {
		t.Fatalf("ReadFull: %q, %v", buf, err)
	}
	if err := End(r, 4); err != nil {
		t.Fatalf("End at the end: %v", err)
	}
	if err := End(strings.NewReader("x"), 4); err == nil {
		t.Fatal("End with a byte left succeeded")
	}
	if err := ReadFull(context.Background(), strings.NewReader("ab"), buf); err == nil {
		t.Fatal("ReadFull of a short source succeeded")
	}
}

func TestBuffers(t *testing.T) {
	for _, n := range []int64{0, 1, 64 << 10, 64<<10 + 1, 5 << 20} {
		bp := GetBuffer(n)
		if int64(len(*bp)) < n || int64(len(*bp)) > max(2*n, 64<<10) {
			t.Errorf("GetBuffer(%d) has %d bytes", n, len(*bp))
		}
		PutBuffer(bp)
	}
}

func TestCheck(t *testing.T) {
	valid := func(n string) error {
		if n == "bad" {
			return errors.New("bad name")
		}
		return nil
	}
	where := func() string { return "s3://b/x" }
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, c := range []struct {
		ctx  context.Context
		name string
		size int64
		want string // "" for no error
	}{
		{context.Background(), "x", 0, ""},
		{canceled, "bad", -1, "put: bad name"}, // the name first
		{canceled, "x", -1, "put s3://b/x: negative size -1"},
		{canceled, "x", 1, "put s3://b/x: context canceled"},
	} {
		err := Check(c.ctx, c.name, c.size, valid, where)
		if got := fmt.Sprint(err); (c.want == "" && err != nil) || (c.want != "" && got != c.want) {
			t.Errorf("Check(%q, %d): %v, want %q", c.name, c.size, err, c.want)
		}
	}
}
