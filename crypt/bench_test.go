package crypt

import (
	"bytes"
	"testing"
)

func benchSeal(b *testing.B, size int) {
	s := testSealer(b, bytes.Repeat([]byte{1}, KeySize))
	plain := bytes.Repeat([]byte("pgward "), size/7+1)[:size]
	aad := []byte("chunk 3f2a")
	out := make([]byte, 0, size+Overhead)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if out, err = s.Seal(out[:0], plain, aad); err != nil {
			b.Fatal(err)
		}
	}
}

func benchOpen(b *testing.B, size int) {
	s := testSealer(b, bytes.Repeat([]byte{1}, KeySize))
	plain := bytes.Repeat([]byte("pgward "), size/7+1)[:size]
	aad := []byte("chunk 3f2a")
	sealed, err := s.Seal(nil, plain, aad)
	if err != nil {
		b.Fatal(err)
	}
	out := make([]byte, 0, size)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		if out, err = s.Open(out[:0], sealed, aad); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSeal and BenchmarkOpen use 4 MiB, about one chunk.
func BenchmarkSeal(b *testing.B) { benchSeal(b, 4<<20) }
func BenchmarkOpen(b *testing.B) { benchOpen(b, 4<<20) }

// The 8 KiB variants show the fixed per-object cost (HKDF and AES key
// schedule), which matters for small objects such as small files' chunks.
func BenchmarkSeal8K(b *testing.B) { benchSeal(b, 8<<10) }
func BenchmarkOpen8K(b *testing.B) { benchOpen(b, 8<<10) }

func BenchmarkUnwrapKey(b *testing.B) {
	p, err := DefaultKDFParams()
	if err != nil {
		b.Fatal(err)
	}
	master := bytes.Repeat([]byte{2}, KeySize)
	pass := []byte("correct horse battery staple")
	w, err := WrapKey(master, pass, p)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := UnwrapKey(w, pass); err != nil {
			b.Fatal(err)
		}
	}
}
