package pgserver

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Messages read through Frames, some by pgproto3 and the CopyData ones by the
// caller in pieces of any size, arrive whole and in order, however the
// connection splits the bytes.
func TestFramesSplitMessagesBetweenReaders(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var wire []byte
	var want []string
	add := func(m pgproto3.BackendMessage, what string) {
		var err error
		if wire, err = m.Encode(wire); err != nil {
			t.Fatal(err)
		}
		want = append(want, what)
	}
	add(&pgproto3.CopyOutResponse{}, "*pgproto3.CopyOutResponse")
	for i, size := range []int{1, 100, 8191, 8192, 8193, 32769, 300 << 10, 0, 5} {
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		add(&pgproto3.CopyData{Data: data}, fmt.Sprintf("data %x", data))
		if i == 3 {
			add(&pgproto3.NoticeResponse{Severity: "WARNING", Message: "page verification failed"}, "*pgproto3.NoticeResponse")
		}
	}
	add(&pgproto3.CopyDone{}, "*pgproto3.CopyDone")
	add(&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")}, "*pgproto3.CommandComplete")
	add(&pgproto3.ReadyForQuery{TxStatus: 'I'}, "*pgproto3.ReadyForQuery")

	for name, conn := range map[string]func() io.Reader{
		"whole":      func() io.Reader { return bytes.NewReader(wire) },
		"one byte":   func() io.Reader { return iotest.OneByteReader(bytes.NewReader(wire)) },
		"half reads": func() io.Reader { return iotest.HalfReader(bytes.NewReader(wire)) },
	} {
		t.Run(name, func(t *testing.T) {
			f := newFrames(conn())
			fe := pgproto3.NewFrontend(f, io.Discard)
			var got []string
			for len(got) < len(want) {
				n, ok, err := f.NextCopyData()
				if err != nil {
					t.Fatalf("after %d messages: %v", len(got), err)
				}
				if ok {
					data := make([]byte, n)
					for off := 0; off < n; {
						k, err := f.Read(data[off:min(n, off+1+rng.IntN(70000))])
						if err != nil {
							t.Fatal(err)
						}
						off += k
					}
					got = append(got, fmt.Sprintf("data %x", data))
					continue
				}
				m, err := fe.Receive()
				if err != nil {
					t.Fatalf("after %d messages: %v", len(got), err)
				}
				got = append(got, fmt.Sprintf("%T", m))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("message %d: got %.60s, want %.60s", i, got[i], want[i])
				}
			}
			if _, _, err := f.NextCopyData(); err != io.EOF {
				t.Errorf("after the last message: %v, want io.EOF", err)
			}
		})
	}
}
