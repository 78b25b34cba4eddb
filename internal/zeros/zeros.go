// Package zeros tells whether a buffer holds only zero bytes, at memory speed
// (the runtime's vectorised compare against a block of zeros, which stops at the
// first difference). The unused end of a WAL segment, a relation's preallocated
// pages and a tar stream's end blocks are such buffers.
package zeros

import "bytes"

var block [64 << 10]byte

// Is reports whether b holds only zero bytes; true for an empty b.
func Is(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(block))
		if !bytes.Equal(b[:n], block[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}
