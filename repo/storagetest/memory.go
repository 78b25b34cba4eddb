package storagetest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgward/pgward/repo"
)

// Memory is a repo.Storage that keeps its objects in memory, for tests of the layers above
// storage: no disk, no fsync, and no state left between tests. It keeps every promise the
// conformance suite checks. Durability is moot (a crash loses everything), so PutDeferred is
// Put and SyncDeferred does nothing.
type Memory struct {
	name      string
	mu        sync.RWMutex
	objects   map[string]memObject
	leftovers map[string]repo.Leftover
}

// memObject is a stored object; data is never modified once stored, so Get may hand it out.
type memObject struct {
	data    []byte
	modTime time.Time
}

// memories numbers the Memory storages, so that messages tell two of them apart.
var memories atomic.Int64

// NewMemory returns an empty in-memory storage.
func NewMemory() *Memory {
	return &Memory{
		name:      fmt.Sprintf("memory-%d", memories.Add(1)),
		objects:   map[string]memObject{},
		leftovers: map[string]repo.Leftover{},
	}
}

var _ repo.Storage = (*Memory)(nil)

// String names the storage, e.g. "memory-3".
func (m *Memory) String() string { return m.name }

// Put implements repo.Storage. The data is read in full before the name is taken, so a
// failing reader or a canceled context leaves nothing.
func (m *Memory) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if err := repo.ValidName(name); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	if size < 0 {
		return fmt.Errorf("put %s: negative size %d", name, size)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	// ReadAll rather than a buffer of size bytes: a caller's wrong size must not allocate it.
	data, err := io.ReadAll(io.LimitReader(r, size+1))
	switch {
	case err != nil:
		return fmt.Errorf("put %s: read: %w", name, err)
	case int64(len(data)) < size:
		return fmt.Errorf("put %s: reader ended after %d of %d bytes: %w", name, len(data), size, io.ErrUnexpectedEOF)
	case int64(len(data)) > size:
		return fmt.Errorf("put %s: reader has more than the %d bytes announced", name, size)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objects[name]; ok {
		return fmt.Errorf("put %s: %w", name, repo.ErrExists)
	}
	m.objects[name] = memObject{data: data, modTime: time.Now()}
	return nil
}

// PutDeferred implements repo.Storage as Put.
func (m *Memory) PutDeferred(ctx context.Context, name string, r io.Reader, size int64) error {
	return m.Put(ctx, name, r, size)
}

// SyncDeferred implements repo.Storage: there is nothing to make durable.
func (m *Memory) SyncDeferred(context.Context) error { return nil }

// lookup returns the object name, or an error for op naming why there is none.
func (m *Memory) lookup(ctx context.Context, op, name string) (memObject, error) {
	if err := repo.ValidName(name); err != nil {
		return memObject{}, fmt.Errorf("%s: %w", op, err)
	}
	if err := ctx.Err(); err != nil {
		return memObject{}, fmt.Errorf("%s %s: %w", op, name, err)
	}
	m.mu.RLock()
	o, ok := m.objects[name]
	m.mu.RUnlock()
	if !ok {
		return memObject{}, fmt.Errorf("%s %s: %w", op, name, repo.ErrNotFound)
	}
	return o, nil
}

// Get implements repo.Storage.
func (m *Memory) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	o, err := m.lookup(ctx, "get", name)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(o.data)), nil
}

// GetRange implements repo.Storage.
func (m *Memory) GetRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	o, err := m.lookup(ctx, "get", name)
	if err != nil {
		return nil, err
	}
	if offset < 0 || length < 0 || offset+length > int64(len(o.data)) {
		return nil, fmt.Errorf("get %s: range %d+%d is past the object's %d bytes", name, offset, length, len(o.data))
	}
	return io.NopCloser(bytes.NewReader(o.data[offset : offset+length])), nil
}

// Stat implements repo.Storage.
func (m *Memory) Stat(ctx context.Context, name string) (repo.ObjectInfo, error) {
	o, err := m.lookup(ctx, "stat", name)
	if err != nil {
		return repo.ObjectInfo{}, err
	}
	return o.info(name), nil
}

func (o memObject) info(name string) repo.ObjectInfo {
	return repo.ObjectInfo{Name: name, Size: int64(len(o.data)), ModTime: o.modTime}
}

// List implements repo.Storage. It lists a snapshot taken when it starts, so fn may call the
// storage (and Put or Delete) without deadlocking.
func (m *Memory) List(ctx context.Context, prefix string, fn func(repo.ObjectInfo) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list %q: %w", prefix, err)
	}
	var infos []repo.ObjectInfo
	m.mu.RLock()
	for name, o := range m.objects {
		if strings.HasPrefix(name, prefix) {
			infos = append(infos, o.info(name))
		}
	}
	m.mu.RUnlock()
	slices.SortFunc(infos, func(a, b repo.ObjectInfo) int { return strings.Compare(a.Name, b.Name) })
	for _, info := range infos {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("list %q: %w", prefix, err)
		}
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

// Delete implements repo.Storage.
func (m *Memory) Delete(ctx context.Context, name string) error {
	if err := repo.ValidName(name); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	m.mu.Lock()
	delete(m.objects, name)
	m.mu.Unlock()
	return nil
}

// AddLeftover makes the storage report a leftover of an interrupted write of name, started
// at started, as a crashed writer leaves one; it returns its Ref.
func (m *Memory) AddLeftover(name string, size int64, started time.Time) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	ref := fmt.Sprintf("leftover-%d", len(m.leftovers)+1)
	for m.leftovers[ref].Ref != "" {
		ref += "+"
	}
	m.leftovers[ref] = repo.Leftover{Name: name, Ref: ref, Size: size, Started: started}
	return ref
}

// Leftovers implements repo.Storage: those AddLeftover made and RemoveLeftover did not remove.
func (m *Memory) Leftovers(ctx context.Context, prefix string, fn func(repo.Leftover) error) error {
	m.mu.RLock()
	var ls []repo.Leftover
	for _, l := range m.leftovers {
		if strings.HasPrefix(l.Name, prefix) {
			ls = append(ls, l)
		}
	}
	m.mu.RUnlock()
	slices.SortFunc(ls, func(a, b repo.Leftover) int { return strings.Compare(a.Ref, b.Ref) })
	for _, l := range ls {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(l); err != nil {
			return err
		}
	}
	return nil
}

// RemoveLeftover implements repo.Storage.
func (m *Memory) RemoveLeftover(ctx context.Context, l repo.Leftover) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.leftovers, l.Ref)
	m.mu.Unlock()
	return nil
}
