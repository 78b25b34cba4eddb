package pgserver

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// Frames is what pgproto3 reads a replication connection through. It reads ahead
// up to replicationReadSize bytes at a time (pgproto3 alone asks the kernel for
// 8 kB: a 180 MB base backup took 24,450 reads), and it never returns bytes of two
// messages from one Read. So between two messages pgproto3 holds nothing read
// ahead, and the reader of a base backup may take a CopyData message itself
// (NextCopyData, then Read): its payload goes from the read buffer straight into
// the reader's buffer, one copy instead of three (read buffer → pgproto3's message
// buffer → the reader's).
//
// Invariant: a message is consumed whole by one party, pgproto3 or the caller of
// NextCopyData, and NextCopyData is only called at a boundary, when the previous
// message has been consumed whole.
type Frames struct {
	br *bufio.Reader
	// left is what remains of the current message (0: at a boundary).
	left int
}

func newFrames(r io.Reader) *Frames {
	return &Frames{br: bufio.NewReaderSize(r, replicationReadSize)}
}

// Read reads from the current message only (pgproto3 reads through it; after
// NextCopyData, the caller reads the payload with it).
func (f *Frames) Read(p []byte) (int, error) {
	if f.left == 0 {
		head, err := f.br.Peek(5)
		if err != nil {
			return 0, err
		}
		f.left = 1 + int(binary.BigEndian.Uint32(head[1:]))
	}
	n, err := f.br.Read(p[:min(len(p), f.left)])
	f.left -= n
	return n, err
}

// NextCopyData looks at the next message: if it is CopyData, it consumes its
// header and returns the length of its payload, which the caller must read whole
// with Read before anything else reads the connection; otherwise it consumes
// nothing and returns ok false. It waits for the message's header.
func (f *Frames) NextCopyData() (n int, ok bool, err error) {
	if f.left != 0 {
		return 0, false, fmt.Errorf("replication connection: a message is being read (%d bytes left)", f.left)
	}
	head, err := f.br.Peek(5)
	if err != nil {
		return 0, false, err
	}
	if head[0] != 'd' {
		return 0, false, nil
	}
	length := int(binary.BigEndian.Uint32(head[1:]))
	if length < 4 {
		return 0, false, fmt.Errorf("replication connection: CopyData message of length %d", length)
	}
	if _, err := f.br.Discard(5); err != nil {
		return 0, false, err
	}
	f.left = length - 4
	return f.left, true, nil
}

// Discard skips what remains of the current message's payload.
func (f *Frames) Discard() error {
	n, err := f.br.Discard(f.left)
	f.left -= n
	return err
}

// framesKey is where ConnectReplication keeps a connection's Frames.
const framesKey = "pgward/pgserver.Frames"

// FramesOf returns the Frames of a connection ConnectReplication opened, nil for
// another connection.
func FramesOf(c *pgconn.PgConn) *Frames {
	f, _ := c.CustomData()[framesKey].(*Frames)
	return f
}

// replicationReadSize is how much one read of a replication connection asks the
// kernel for.
const replicationReadSize = 256 << 10

// replicationFrontend builds the protocol reader of a replication connection over
// Frames, and hands the Frames to connected, to be kept with the connection.
func replicationFrontend(connected func(*Frames)) func(io.Reader, io.Writer) *pgproto3.Frontend {
	return func(r io.Reader, w io.Writer) *pgproto3.Frontend {
		f := newFrames(r)
		connected(f)
		return pgproto3.NewFrontend(f, w)
	}
}
