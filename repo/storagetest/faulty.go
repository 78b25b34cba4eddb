package storagetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pgward/pgward/repo"
)

// Op names a method of repo.Storage, for Faulty.
type Op string

// The operations a Fault can target.
const (
	OpPut            Op = "Put"
	OpPutDeferred    Op = "PutDeferred"
	OpSyncDeferred   Op = "SyncDeferred"
	OpGet            Op = "Get"
	OpGetRange       Op = "GetRange"
	OpStat           Op = "Stat"
	OpList           Op = "List"
	OpDelete         Op = "Delete"
	OpLeftovers      Op = "Leftovers"
	OpRemoveLeftover Op = "RemoveLeftover"
)

// ErrInjected is a ready-made error for Fault.Err: a failure no retry policy knows to be
// transient, as an unreachable or broken storage gives.
var ErrInjected = errors.New("storagetest: injected fault")

// Fault is what Faulty does to the calls it matches.
type Fault struct {
	// Op is the method the fault applies to; "" means every method.
	Op Op
	// Prefix selects the calls on names starting with it; "" selects every call. A List
	// matches when it could report such a name (its prefix starts with Prefix, or Prefix with
	// its prefix); SyncDeferred has no name and matches only the empty Prefix.
	Prefix string
	// Delay is waited before the call goes on or fails. A context canceled meanwhile ends
	// the wait and fails the call with the context's error, as a stalled server does.
	Delay time.Duration
	// Err, if set, fails the call (wrapped with the operation and name) without calling the
	// wrapped storage.
	Err error
	// Corrupt makes Get deliver the object with its last byte inverted: bytes the
	// repository must refuse, not merely fail to read. Other methods ignore it, and an empty
	// object has no byte to invert.
	Corrupt bool
	// Times limits the fault to the next Times matching calls; 0 means until the faults are
	// changed.
	Times int
	// Skip lets the first Skip matching calls through untouched (and uncounted by Times): a
	// crash test fails the n-th call with Skip n-1.
	Skip int
}

// Faulty wraps a repo.Storage and fails, delays or corrupts the calls that its faults
// select, so that the layers above storage can be tested against the failures real storage
// has (kopia's blobtesting.FaultyStorage is the model). Faults can be changed at any time,
// also while calls are in flight; a call is judged by the faults at its start. Faulty counts
// the calls of each method, faulted or not. Without faults it forwards every call unchanged
// and passes the conformance suite.
type Faulty struct {
	st repo.Storage

	mu     sync.Mutex
	faults []Fault
	calls  map[Op]int
}

var _ repo.Storage = (*Faulty)(nil)

// NewFaulty wraps st, with no faults.
func NewFaulty(st repo.Storage) *Faulty {
	return &Faulty{st: st, calls: map[Op]int{}}
}

// Set replaces the faults; with none, every call goes through. When several faults match a
// call, the first one decides.
func (f *Faulty) Set(faults ...Fault) {
	f.mu.Lock()
	f.faults = append([]Fault(nil), faults...)
	f.mu.Unlock()
}

// Add appends a fault after the existing ones.
func (f *Faulty) Add(fault Fault) {
	f.mu.Lock()
	f.faults = append(f.faults, fault)
	f.mu.Unlock()
}

// Calls returns how many calls of op have been made, or of every method when op is "".
func (f *Faulty) Calls(op Op) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if op != "" {
		return f.calls[op]
	}
	n := 0
	for _, c := range f.calls {
		n += c
	}
	return n
}

// Unwrap returns the wrapped storage.
func (f *Faulty) Unwrap() repo.Storage { return f.st }

// String names the wrapped storage.
func (f *Faulty) String() string { return f.st.String() }

// matches reports whether fault applies to a call of op on name (List: its prefix).
func (ft *Fault) matches(op Op, name string) bool {
	if ft.Op != "" && ft.Op != op {
		return false
	}
	if op == OpList {
		return strings.HasPrefix(name, ft.Prefix) || strings.HasPrefix(ft.Prefix, name)
	}
	return strings.HasPrefix(name, ft.Prefix)
}

// begin counts a call of op on name and applies the first matching fault: it waits out the
// delay and returns the fault's error. The fault is returned for Get to corrupt with.
func (f *Faulty) begin(ctx context.Context, op Op, name string) (Fault, error) {
	f.mu.Lock()
	f.calls[op]++
	var ft Fault
	for i := range f.faults {
		if !f.faults[i].matches(op, name) {
			continue
		}
		if f.faults[i].Skip > 0 {
			f.faults[i].Skip--
			break
		}
		ft = f.faults[i]
		if f.faults[i].Times > 0 {
			if f.faults[i].Times--; f.faults[i].Times == 0 {
				f.faults = slices.Delete(f.faults, i, i+1)
			}
		}
		break
	}
	f.mu.Unlock()
	what := strings.ToLower(string(op)) + " " + name
	if ft.Delay > 0 {
		t := time.NewTimer(ft.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ft, fmt.Errorf("%s: %w", what, ctx.Err())
		}
	}
	if ft.Err != nil {
		return ft, fmt.Errorf("%s: %w", what, ft.Err)
	}
	return ft, nil
}

func (f *Faulty) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if _, err := f.begin(ctx, OpPut, name); err != nil {
		return err
	}
	return f.st.Put(ctx, name, r, size)
}

func (f *Faulty) PutDeferred(ctx context.Context, name string, r io.Reader, size int64) error {
	if _, err := f.begin(ctx, OpPutDeferred, name); err != nil {
		return err
	}
	return f.st.PutDeferred(ctx, name, r, size)
}

func (f *Faulty) SyncDeferred(ctx context.Context) error {
	if _, err := f.begin(ctx, OpSyncDeferred, ""); err != nil {
		return err
	}
	return f.st.SyncDeferred(ctx)
}

func (f *Faulty) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	ft, err := f.begin(ctx, OpGet, name)
	if err != nil {
		return nil, err
	}
	rc, err := f.st.Get(ctx, name)
	if err != nil || !ft.Corrupt {
		return rc, err
	}
	return &lastByteInverter{rc: rc}, nil
}

func (f *Faulty) GetRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	ft, err := f.begin(ctx, OpGetRange, name)
	if err != nil {
		return nil, err
	}
	rc, err := f.st.GetRange(ctx, name, offset, length)
	if err != nil || !ft.Corrupt {
		return rc, err
	}
	return &lastByteInverter{rc: rc}, nil
}

func (f *Faulty) Stat(ctx context.Context, name string) (repo.ObjectInfo, error) {
	if _, err := f.begin(ctx, OpStat, name); err != nil {
		return repo.ObjectInfo{}, err
	}
	return f.st.Stat(ctx, name)
}

func (f *Faulty) List(ctx context.Context, prefix string, fn func(repo.ObjectInfo) error) error {
	if _, err := f.begin(ctx, OpList, prefix); err != nil {
		return err
	}
	return f.st.List(ctx, prefix, fn)
}

func (f *Faulty) Delete(ctx context.Context, name string) error {
	if _, err := f.begin(ctx, OpDelete, name); err != nil {
		return err
	}
	return f.st.Delete(ctx, name)
}

func (f *Faulty) Leftovers(ctx context.Context, prefix string, fn func(repo.Leftover) error) error {
	if _, err := f.begin(ctx, OpLeftovers, prefix); err != nil {
		return err
	}
	return f.st.Leftovers(ctx, prefix, fn)
}

func (f *Faulty) RemoveLeftover(ctx context.Context, l repo.Leftover) error {
	if _, err := f.begin(ctx, OpRemoveLeftover, l.Name); err != nil {
		return err
	}
	return f.st.RemoveLeftover(ctx, l)
}

// lastByteInverter delivers an object with its last byte inverted. It holds the last byte
// read back until the next read shows whether more follow, so it needs neither the size
// nor the whole object in memory.
type lastByteInverter struct {
	rc       io.ReadCloser
	buf      []byte // read from rc, not yet delivered
	err      error  // rc's error, once it gave one
	inverted bool
}

func (c *lastByteInverter) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for c.err == nil && len(c.buf) < 2 {
		if c.buf == nil {
			c.buf = make([]byte, 0, 32<<10)
		}
		n, err := c.rc.Read(c.buf[len(c.buf):cap(c.buf)])
		c.buf, c.err = c.buf[:len(c.buf)+n], err
	}
	if c.err == io.EOF && !c.inverted && len(c.buf) > 0 {
		c.buf[len(c.buf)-1] ^= 0xff
		c.inverted = true
	}
	ready := c.buf
	if c.err == nil {
		ready = ready[:len(ready)-1] // may be the last byte
	}
	if len(ready) == 0 {
		return 0, c.err
	}
	n := copy(p, ready)
	c.buf = c.buf[:copy(c.buf, c.buf[n:])]
	return n, nil
}

func (c *lastByteInverter) Close() error { return c.rc.Close() }
