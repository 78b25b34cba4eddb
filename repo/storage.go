// This file holds the contract between the repository format and the places that keep its
// objects. Everything above Storage (manifests, chunks, WAL, locks) relies only on what the
// doc comments below promise, so a backend is correct exactly when it keeps these promises;
// repo/storagetest checks them and every backend runs it.

package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Storage is what the repository needs from a place that keeps objects: a flat namespace of
// slash-separated names, objects written once.
//
// Every method validates its name with ValidName and fails with an error wrapping
// ErrInvalidName before touching the storage. Methods are safe for concurrent use.
//
// Guarantees callers may rely on:
//   - Atomic visibility: an object is either absent or present with all of its bytes; no
//     reader, listing or crash ever shows a partial object.
//   - Durability before success: when Put returns nil, or returns ErrExists, the object
//     survives a crash of the process or the machine. PutDeferred weakens this for the name
//     only, until the next SyncDeferred returns (see there).
//   - Read-after-write: once Put or PutDeferred has returned, Get, Stat and List on this
//     Storage see the object; once Delete has returned, they do not.
//   - Write once: an existing object is never replaced. After Delete the name may be used
//     again (locks rely on this).
//   - One description per object: Stat and List report the same ObjectInfo for an object.
//
// A name is an object, never a directory: after Put("a/b"), Stat("a") reports ErrNotFound
// and List("a") yields "a/b". Backends that map names to a file system may refuse to keep
// both "a" and "a/b"; the repository layout never needs both.
//
// Every ability the repository uses is a method here, never an optional interface found by
// type assertion, so a wrapper (retries, metrics, faults in tests) that forwards every method
// changes nothing but what it is for. A wrapper also implements Unwrapper; As finds an
// ability that only one backend has (the directory of local storage) through any stack of
// wrappers, and is for identity and diagnostics, never for reading or writing objects.
type Storage interface {
	// Put stores size bytes from r under name. The object becomes visible atomically and only
	// once it is durable (local: temp file, fsync, link/rename, fsync directory; S3: PUT
	// succeeded). If name already exists Put returns an error wrapping ErrExists and leaves the
	// existing object untouched (write once).
	//
	// r must yield exactly size bytes: a reader that ends early or fails makes Put fail, and
	// nothing becomes visible under name. If ctx is canceled before the object became visible,
	// Put fails and nothing becomes visible.
	Put(ctx context.Context, name string, r io.Reader, size int64) error

	// PutDeferred is Put with the durability of the name left to the next SyncDeferred. When
	// it returns nil the bytes are durable and the object is visible with all of them, as after
	// Put, and ErrExists means what it means for Put (the existing object is durable, name
	// included); but a crash of the machine before the next SyncDeferred returns may lose the
	// name, so that the object is absent after the crash. It can never be present with
	// missing or partial bytes. A caller that stores many objects this way calls SyncDeferred
	// before anything durable refers to them (the repository stores chunks so and syncs before
	// it writes the manifest naming them). Local storage saves one directory fsync per object
	// this way; a backend without such an optimisation implements PutDeferred as Put.
	PutDeferred(ctx context.Context, name string, r io.Reader, size int64) error

	// SyncDeferred makes durable the name of every object whose PutDeferred on this Storage
	// returned before SyncDeferred was called. When it returns nil, those objects survive a
	// crash as if they had been stored with Put; when it fails, the next SyncDeferred tries
	// again for them. A backend without such an optimisation implements it as a no-op returning nil.
	SyncDeferred(ctx context.Context) error

	// Get opens the object for reading; a missing object gives an error wrapping ErrNotFound.
	// The caller must close the reader. The content read is the content that was Put; callers
	// still verify it (the repository never trusts storage).
	Get(ctx context.Context, name string) (io.ReadCloser, error)

	// GetRange opens length bytes of the object starting at offset (a pack's entry). A
	// missing object gives an error wrapping ErrNotFound. The reader delivers exactly length
	// bytes, or fails: a range past the object's end is an error (the object is not what
	// the caller's index says), never a short read taken for the content.
	GetRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error)

	// Stat describes an object, or fails with an error wrapping ErrNotFound.
	Stat(ctx context.Context, name string) (ObjectInfo, error)

	// List calls fn for every object whose name starts with prefix, in lexical (byte-wise)
	// order of names. The prefix is a plain string prefix, not a directory: "a/b" matches
	// "a/b/c" and "a/bc". The empty prefix lists everything. Returning an error from fn stops
	// the listing and List returns that error. If ctx is canceled List stops before the next
	// call of fn and returns an error wrapping ctx.Err().
	//
	// Objects Put or deleted while List runs may or may not be reported; every object that
	// existed for the whole call is reported exactly once.
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error

	// Delete removes an object; deleting a missing object is not an error. When Delete
	// returns nil the removal is durable, so a caller that deletes in a careful order (a
	// manifest before the chunks only it referenced) never sees that order undone by a crash.
	Delete(ctx context.Context, name string) error

	// Leftovers calls fn for what interrupted writes left under prefix: data that is not an
	// object and never becomes one, but costs space (local: temp files of a crashed Put; S3:
	// incomplete multipart uploads). A write still running also has one; its Started time
	// tells it apart only by age, so the caller decides what is old enough to be dead. The
	// order is unspecified. A backend whose interrupted writes leave nothing reports nothing.
	Leftovers(ctx context.Context, prefix string, fn func(Leftover) error) error

	// RemoveLeftover removes a leftover Leftovers reported; one already gone is not an error.
	// Removing the leftover of a write still running makes that write fail; it never makes a
	// partial object visible.
	RemoveLeftover(ctx context.Context, l Leftover) error

	// String names the storage for messages, e.g. "/var/lib/pgward" or
	// "s3://bucket/prefix"; never contains credentials.
	String() string
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	// Name is the object's name, as given to Put.
	Name string
	// Size is the number of bytes Get delivers.
	Size int64
	// ModTime is when the object was written, as the backend knows it (local: the file's
	// modification time; S3: Last-Modified, whole seconds, set by the server's clock when the
	// upload began). It is never zero. It comes from a clock that may not be this machine's,
	// so it is for information (ages shown to a user), never for ordering objects or deciding
	// what is safe to delete.
	ModTime time.Time
}

// Leftover is what an interrupted write left behind (see Storage.Leftovers).
type Leftover struct {
	// Name is the object name the write was for.
	Name string
	// Ref identifies the leftover to the backend that reported it (a temp file's path, an
	// upload ID); opaque to everyone else.
	Ref string
	// Size is the bytes it holds, as far as the backend knows (0 when unknown).
	Size int64
	// Started is when the write began, by the backend's clock (never zero).
	Started time.Time
}

// Unwrapper is implemented by a Storage that wraps another one (retries, metrics, faults):
// Unwrap returns the wrapped Storage, or nil when there is none yet (a backend opened on
// first use).
type Unwrapper interface {
	Unwrap() Storage
}

// As returns the first Storage in the chain st, st.Unwrap(), st.Unwrap().Unwrap(), ... that
// is a T. It answers questions about what a storage is (is it a local directory, and which
// one?) through any wrappers; everything the repository does with objects goes through the
// Storage methods, which every wrapper forwards.
func As[T any](st Storage) (T, bool) {
	for st != nil {
		if t, ok := st.(T); ok {
			return t, true
		}
		u, ok := st.(Unwrapper)
		if !ok {
			break
		}
		st = u.Unwrap()
	}
	var zero T
	return zero, false
}

var (
	// ErrNotFound reports that no object has the name asked for.
	ErrNotFound = errors.New("object not found")
	// ErrExists reports that Put found the name taken; the existing object is unchanged.
	ErrExists = errors.New("object already exists")
	// ErrInvalidName reports a name that ValidName refuses.
	ErrInvalidName = errors.New("invalid object name")
)

// ValidName reports whether name may name an object: non-empty, no leading slash, no "." or
// ".." segments, no empty segments (so no trailing or doubled slash), no NUL byte. These are
// the rules under which a name maps one-to-one onto a relative file path that cannot escape
// the repository directory, and onto an S3 key. The error wraps ErrInvalidName.
func ValidName(name string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w %q: %s", ErrInvalidName, name, why)
	}
	if name == "" {
		return bad("empty")
	}
	if strings.IndexByte(name, 0) >= 0 {
		return bad("contains a NUL byte")
	}
	if name[0] == '/' {
		return bad("starts with a slash")
	}
	for seg := range strings.SplitSeq(name, "/") {
		switch seg {
		case "":
			return bad("has an empty path segment")
		case ".", "..":
			return bad(`has a "." or ".." path segment`)
		}
	}
	return nil
}
