package storagetest_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"testing/iotest"
	"time"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/storagetest"
)

func TestMemoryConformance(t *testing.T) {
	storagetest.Run(t, func(*testing.T) repo.Storage { return storagetest.NewMemory() })
}

func TestFaultyConformance(t *testing.T) {
	storagetest.Run(t, func(*testing.T) repo.Storage {
		return storagetest.NewFaulty(storagetest.NewMemory())
	})
}

func put(t *testing.T, st repo.Storage, name string, data []byte) {
	t.Helper()
	if err := st.Put(t.Context(), name, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put(%q): %v", name, err)
	}
}

func read(st repo.Storage, name string) ([]byte, error) {
	rc, err := st.Get(context.Background(), name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// Faults select by operation and name prefix, can be changed at any time, and every call
// is counted.
func TestFaultySelects(t *testing.T) {
	f := storagetest.NewFaulty(storagetest.NewMemory())
	ctx := t.Context()
	put(t, f, "wal/1", []byte("segment"))
	put(t, f, "chunks/1", []byte("chunk"))

	f.Set(storagetest.Fault{Op: storagetest.OpGet, Prefix: "wal/", Err: storagetest.ErrInjected})
	if _, err := read(f, "wal/1"); !errors.Is(err, storagetest.ErrInjected) {
		t.Fatalf("Get(wal/1) = %v, want the injected error", err)
	}
	if _, err := read(f, "chunks/1"); err != nil {
		t.Fatalf("Get(chunks/1) outside the prefix: %v", err)
	}
	if _, err := f.Stat(ctx, "wal/1"); err != nil {
		t.Fatalf("Stat(wal/1), another operation: %v", err)
	}

	f.Set(storagetest.Fault{Op: storagetest.OpList, Prefix: "wal/1", Err: storagetest.ErrInjected})
	for prefix, fails := range map[string]bool{"": true, "wal/": true, "wal/1": true, "wal/10": true, "chunks/": false} {
		err := f.List(ctx, prefix, func(repo.ObjectInfo) error { return nil })
		if got := errors.Is(err, storagetest.ErrInjected); got != fails {
			t.Errorf("List(%q) = %v, want failure %v", prefix, err, fails)
		}
	}

	// Every operation, twice, then the fault is used up.
	f.Set(storagetest.Fault{Err: storagetest.ErrInjected, Times: 2})
	if err := f.SyncDeferred(ctx); !errors.Is(err, storagetest.ErrInjected) {
		t.Fatalf("SyncDeferred = %v, want the injected error", err)
	}
	if err := f.Delete(ctx, "chunks/1"); !errors.Is(err, storagetest.ErrInjected) {
		t.Fatalf("Delete = %v, want the injected error", err)
	}
	if err := f.Delete(ctx, "chunks/1"); err != nil {
		t.Fatalf("Delete after the fault was used up: %v", err)
	}

	f.Set()
	for op, want := range map[storagetest.Op]int{
		storagetest.OpPut: 2, storagetest.OpGet: 2, storagetest.OpStat: 1, storagetest.OpList: 5,
		storagetest.OpSyncDeferred: 1, storagetest.OpDelete: 2, storagetest.OpPutDeferred: 0,
	} {
		if got := f.Calls(op); got != want {
			t.Errorf("Calls(%s) = %d, want %d", op, got, want)
		}
	}
	if got := f.Calls(""); got != 13 {
		t.Errorf("Calls(\"\") = %d, want 13", got)
	}
}

// Skip lets the first calls through, then the fault holds: a process that dies
// at a chosen call.
func TestFaultySkip(t *testing.T) {
	f := storagetest.NewFaulty(storagetest.NewMemory())
	f.Set(storagetest.Fault{Err: storagetest.ErrInjected, Skip: 2})
	put(t, f, "a", []byte("1"))
	if _, err := read(f, "a"); err != nil {
		t.Fatalf("second call, within Skip: %v", err)
	}
	for i := range 3 {
		if err := f.Delete(t.Context(), "a"); !errors.Is(err, storagetest.ErrInjected) {
			t.Fatalf("call %d after Skip: %v, want the injected error", 3+i, err)
		}
	}
	f.Set()
	if b, err := read(f, "a"); err != nil || string(b) != "1" {
		t.Fatalf("what the first calls did is kept: %q, %v", b, err)
	}
}

// A corrupted Get delivers every byte but the last unchanged, in any read sizes.
func TestFaultyCorrupts(t *testing.T) {
	f := storagetest.NewFaulty(storagetest.NewMemory())
	data := make([]byte, 100_000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	put(t, f, "obj", data)
	put(t, f, "empty", nil)
	f.Set(storagetest.Fault{Op: storagetest.OpGet, Corrupt: true})
	for _, wrap := range []func(io.Reader) io.Reader{
		func(r io.Reader) io.Reader { return r },
		iotest.OneByteReader,
		iotest.HalfReader,
	} {
		rc, err := f.Get(t.Context(), "obj")
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(wrap(rc))
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(data) || !bytes.Equal(got[:len(got)-1], data[:len(data)-1]) || got[len(got)-1] != ^data[len(data)-1] {
			t.Fatalf("corrupted Get returned %d bytes, want %d with only the last one inverted", len(got), len(data))
		}
	}
	if got, err := read(f, "empty"); err != nil || len(got) != 0 {
		t.Fatalf("corrupted Get of an empty object = %q, %v", got, err)
	}
}

// A delay holds the call back, and a canceled context ends it early.
func TestFaultyDelays(t *testing.T) {
	f := storagetest.NewFaulty(storagetest.NewMemory())
	f.Set(storagetest.Fault{Op: storagetest.OpStat, Delay: 50 * time.Millisecond})
	start := time.Now()
	if _, err := f.Stat(t.Context(), "x"); !errors.Is(err, repo.ErrNotFound) {
		t.Fatalf("delayed Stat = %v, want the wrapped storage's ErrNotFound", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("Stat returned after %v, before the delay", d)
	}
	f.Set(storagetest.Fault{Op: storagetest.OpStat, Delay: time.Hour})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if _, err := f.Stat(ctx, "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stat canceled during its delay = %v, want context.DeadlineExceeded", err)
	}
}

// Faulty hides nothing: repo.As reaches what it wraps.
func TestFaultyUnwraps(t *testing.T) {
	m := storagetest.NewMemory()
	if got, ok := repo.As[*storagetest.Memory](storagetest.NewFaulty(storagetest.NewFaulty(m))); !ok || got != m {
		t.Fatalf("As[*Memory] = %v, %v; want the wrapped storage", got, ok)
	}
}
