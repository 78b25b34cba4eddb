package azure

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/internal/putio"
)

// ifNoneMatch makes a write conditional on the blob not existing.
func ifNoneMatch() *blob.AccessConditions {
	all := azcore.ETagAny
	return &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: &all}}
}

// Put implements repo.Storage: one conditional Put Blob up to BlockSize bytes, else blocks
// staged and committed conditionally with Put Block List.
func (s *Storage) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	key := s.prefix + name
	if err := putio.Check(ctx, name, size, checkName, func() string { return s.url(key) }); err != nil {
		return err
	}
	if size <= s.blockSize {
		return s.putSingle(ctx, key, r, size)
	}
	return s.putBlocks(ctx, key, r, size)
}

func (s *Storage) putSingle(ctx context.Context, key string, r io.Reader, size int64) error {
	bp := putio.GetBuffer(size)
	defer putio.PutBuffer(bp)
	buf := (*bp)[:size]
	if err := putio.ReadFull(ctx, r, buf); err != nil {
		return fmt.Errorf("put %s: %w", s.url(key), err)
	}
	if err := putio.End(r, size); err != nil {
		return fmt.Errorf("put %s: %w", s.url(key), err)
	}
	_, err := s.client.NewBlockBlobClient(key).Upload(ctx, streaming.NopCloser(bytes.NewReader(buf)),
		&blockblob.UploadOptions{AccessConditions: ifNoneMatch()})
	return s.writeError(key, err)
}

// writeError maps the outcome of a conditional write.
func (s *Storage) writeError(key string, err error) error {
	if err == nil {
		return nil
	}
	status, _ := statusCode(err)
	if status == http.StatusPreconditionFailed || bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet) {
		return fmt.Errorf("put %s: %w", s.url(key), repo.ErrExists)
	}
	return s.opError("put", key, err)
}

// putBlocks stages the object in blocks, at most Concurrency (and so as many buffers) in
// flight, and commits them. Blocks of a Put that fails are never committed: they are
// invisible and Azure discards them. Each Put uses block IDs of its own, so racing writers
// of one name cannot commit each other's blocks; the conditional commit picks one winner.
func (s *Storage) putBlocks(ctx context.Context, key string, r io.Reader, size int64) error {
	blocks := (size + s.blockSize - 1) / s.blockSize
	if blocks > maxBlocks {
		return fmt.Errorf("put %s: %d bytes need %d blocks of %d bytes, more than Azure's %d", s.url(key), size, blocks, s.blockSize, maxBlocks)
	}
	// Fail fast when the name is taken, rather than upload what would be refused. The
	// conditional commit below is what guarantees write-once.
	bc := s.client.NewBlockBlobClient(key)
	if _, err := bc.GetProperties(ctx, nil); err == nil {
		return fmt.Errorf("put %s: %w", s.url(key), repo.ErrExists)
	} else if !isNotFound(err) {
		return s.opError("put", key, err)
	}
	var rnd [12]byte
	_, _ = rand.Read(rnd[:])
	ids := make([]string, blocks)
	for i := range ids {
		// Every ID of a blob has the same length, as Azure requires.
		ids[i] = base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "%s-%06d", hex.EncodeToString(rnd[:]), i))
	}
	if err := s.stageBlocks(ctx, bc, key, r, size, ids); err != nil {
		return fmt.Errorf("put %s: %w", s.url(key), err)
	}
	// Last chance to back out: after the commit the object exists.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", s.url(key), err)
	}
	_, err := bc.CommitBlockList(ctx, ids, &blockblob.CommitBlockListOptions{AccessConditions: ifNoneMatch()})
	return s.writeError(key, err)
}

// stageBlocks reads r block by block and stages each block while the next is read. A slot is
// taken before a buffer, so at most Concurrency buffers exist for this Put.
func (s *Storage) stageBlocks(ctx context.Context, bc *blockblob.Client, key string, r io.Reader, size int64, ids []string) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		slots = make(chan struct{}, s.concurrency)
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil {
			first = err
			cancel(err)
		}
	}
	for i := range ids {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		n := min(s.blockSize, size-int64(i)*s.blockSize)
		bp := putio.GetBuffer(n)
		buf := (*bp)[:n]
		if err := putio.ReadFull(ctx, r, buf); err != nil {
			putio.PutBuffer(bp)
			<-slots
			fail(err)
			break
		}
		wg.Go(func() {
			defer func() {
				putio.PutBuffer(bp)
				<-slots
			}()
			if _, err := bc.StageBlock(ctx, ids[i], streaming.NopCloser(bytes.NewReader(buf)), nil); err != nil {
				fail(fmt.Errorf("stage block %d of %d: %w", i+1, len(ids), s.opError("put", key, err)))
			}
		})
	}
	if ctx.Err() == nil {
		if err := putio.End(r, size); err != nil {
			fail(err)
		}
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return context.Cause(ctx)
}
