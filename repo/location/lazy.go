package location

import (
	"context"
	"io"
	"sync"

	"github.com/pgward/pgward/repo"
)

// lazy opens a remote storage (s3.Open, azure.Open, ...; Create for init) on first use
// rather than in Storage: that way opening runs with the caller's context, so an interrupt
// stops it, and under the retry wrapper, so a server that is briefly unavailable when a
// command starts is retried like any other request. Errors the backend classifies as
// permanent (a missing bucket or container, refused or missing credentials, an unknown host
// key, a bad configuration) fail at once.
type lazy struct {
	openFn func(ctx context.Context) (repo.Storage, error)
	name   string

	mu sync.Mutex
	st repo.Storage
}

func (l *lazy) open(ctx context.Context) (repo.Storage, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.st != nil {
		return l.st, nil
	}
	st, err := l.openFn(ctx)
	if err != nil {
		return nil, err
	}
	l.st = st
	return st, nil
}

// Unwrap returns the storage once it is open, and nil before: a storage that was never
// opened has nothing to tell.
func (l *lazy) Unwrap() repo.Storage {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st
}

// do opens the storage and runs op on it.
func (l *lazy) do(ctx context.Context, op func(repo.Storage) error) error {
	st, err := l.open(ctx)
	if err != nil {
		return err
	}
	return op(st)
}

func (l *lazy) String() string { return l.name }

func (l *lazy) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	return l.do(ctx, func(st repo.Storage) error { return st.Put(ctx, name, r, size) })
}

func (l *lazy) PutDeferred(ctx context.Context, name string, r io.Reader, size int64) error {
	return l.do(ctx, func(st repo.Storage) error { return st.PutDeferred(ctx, name, r, size) })
}

func (l *lazy) SyncDeferred(ctx context.Context) error {
	return l.do(ctx, func(st repo.Storage) error { return st.SyncDeferred(ctx) })
}

func (l *lazy) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	st, err := l.open(ctx)
	if err != nil {
		return nil, err
	}
	return st.Get(ctx, name)
}

func (l *lazy) GetRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	st, err := l.open(ctx)
	if err != nil {
		return nil, err
	}
	return st.GetRange(ctx, name, offset, length)
}

func (l *lazy) Stat(ctx context.Context, name string) (repo.ObjectInfo, error) {
	st, err := l.open(ctx)
	if err != nil {
		return repo.ObjectInfo{}, err
	}
	return st.Stat(ctx, name)
}

func (l *lazy) List(ctx context.Context, prefix string, fn func(repo.ObjectInfo) error) error {
	return l.do(ctx, func(st repo.Storage) error { return st.List(ctx, prefix, fn) })
}

func (l *lazy) Delete(ctx context.Context, name string) error {
	return l.do(ctx, func(st repo.Storage) error { return st.Delete(ctx, name) })
}

func (l *lazy) Leftovers(ctx context.Context, prefix string, fn func(repo.Leftover) error) error {
	return l.do(ctx, func(st repo.Storage) error { return st.Leftovers(ctx, prefix, fn) })
}

func (l *lazy) RemoveLeftover(ctx context.Context, lo repo.Leftover) error {
	return l.do(ctx, func(st repo.Storage) error { return st.RemoveLeftover(ctx, lo) })
}
