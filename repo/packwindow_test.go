package repo_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/pgward/pgward/compress"
	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/storagetest"
)

// Many small chunks read by concurrent readers through shared pack windows: every one
// reads back, a window is read once for many entries, and a failed window read falls
// back to ranged reads of the entries (their bytes are verified either way).
func TestPackWindows(t *testing.T) {
	ctx := context.Background()
	mem := storagetest.NewMemory()
	r, err := repo.Init(ctx, mem, repo.InitOptions{Passphrase: []byte("pw"), ChunkSize: 64 << 10, PackThreshold: 32 << 10, PackSize: 3 << 20, MaxDeltaDepth: 3})
	if err != nil {
		t.Fatal(err)
	}
	codec, _ := compress.Parse("lz4")
	p := r.NewPacker()
	var b repo.ChunkBuffers
	var chunks [][]byte
	var ids []repo.Hash
	for i := range 600 {
		// Random-ish text of a few KiB, so entries straddle window edges now and then.
		c := []byte(strings.Repeat(fmt.Sprintf("small file %d %x ", i, i*7919), 200+i%300))
		id := r.ContentHash(c)
		obj, err := r.SealChunk(id, c, codec, &b)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Add(ctx, repo.IndexEntry{ID: id, Kind: repo.KindChunk}, obj); err != nil {
			t.Fatal(err)
		}
		chunks, ids = append(chunks, c), append(ids, id)
	}
	if _, err := p.Finish(ctx); err != nil {
		t.Fatal(err)
	}

	readAll := func(f *storagetest.Faulty, windows *repo.PackWindows) {
		t.Helper()
		r2, err := repo.Open(ctx, f, func() ([]byte, error) { return []byte("pw"), nil })
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var rb repo.ChunkBuffers
				rb.UseWindows(windows)
				for i := w; i < len(ids); i += 8 {
					got, err := r2.GetChunk(ctx, ids[i], &rb)
					if err != nil || !bytes.Equal(got, chunks[i]) {
						errs <- fmt.Errorf("chunk %d: %d bytes, %v", i, len(got), err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}

	f := storagetest.NewFaulty(mem)
	readAll(f, repo.NewPackWindows(4))
	if n := f.Calls(storagetest.OpGetRange); n > 60 {
		t.Errorf("%d ranged reads for %d entries in windows of %d bytes", n, len(ids), repo.WindowSize)
	}

	// A window read fails: its entries are read alone, and all of them read back.
	f = storagetest.NewFaulty(mem)
	f.Set(storagetest.Fault{Op: storagetest.OpGetRange, Err: storagetest.ErrInjected, Times: 1})
	readAll(f, repo.NewPackWindows(1))
	if n := f.Calls(storagetest.OpGetRange); n < 2 {
		t.Errorf("only %d ranged reads", n)
	}

	// Without windows, one ranged read per entry.
	f = storagetest.NewFaulty(mem)
	readAll(f, nil)
	if n := f.Calls(storagetest.OpGetRange); n != len(ids) {
		t.Errorf("%d ranged reads without windows, want %d", n, len(ids))
	}
}
