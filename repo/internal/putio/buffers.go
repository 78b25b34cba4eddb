package putio

import (
	"math/bits"
	"sync"
)

// Buffers come in power-of-two size classes from 64 KiB up, each class a sync.Pool, so that
// a steady stream of Puts of similar sizes allocates nothing, and a buffer is at most twice
// the object or block it holds.
const minBufClass = 16

var bufClasses [64]sync.Pool

func bufClass(n int64) int {
	if n <= 1<<minBufClass {
		return minBufClass
	}
	return bits.Len64(uint64(n - 1))
}

// GetBuffer returns a pooled buffer of at least n bytes; give it back with PutBuffer.
func GetBuffer(n int64) *[]byte {
	c := bufClass(n)
	if bp, ok := bufClasses[c].Get().(*[]byte); ok {
		return bp
	}
	b := make([]byte, 1<<c)
	return &b
}

// PutBuffer returns a buffer from GetBuffer to its pool.
func PutBuffer(bp *[]byte) {
	bufClasses[bufClass(int64(cap(*bp)))].Put(bp)
}
