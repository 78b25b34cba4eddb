// Package putio holds what remote backends need to read the source of a Put: the object is
// exactly the size announced, so a reader that ends early, fails or has more bytes makes Put
// fail before anything becomes visible; and pooled buffers, so that memory stays bounded by
// what is in flight.
//
// Errors of the caller's reader are marked permanent (Transient() false), so the retry
// wrapper never repeats a Put whose source failed.
package putio

import (
	"context"
	"fmt"
	"io"
)

// SourceError is a failure of the caller's reader: permanent, since sending again reads the
// same reader.
type SourceError struct{ Err error }

func (e *SourceError) Error() string   { return e.Err.Error() }
func (e *SourceError) Unwrap() error   { return e.Err }
func (e *SourceError) Transient() bool { return false }

// ReadFull fills buf from r, stopping early when ctx is canceled (the error is then ctx's).
func ReadFull(ctx context.Context, r io.Reader, buf []byte) error {
	n, err := io.ReadFull(&ctxReader{ctx: ctx, r: r}, buf)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return &SourceError{fmt.Errorf("reader ended %d bytes before the size announced: %w", len(buf)-n, io.ErrUnexpectedEOF)}
	}
	return &SourceError{fmt.Errorf("read: %w", err)}
}

// End checks that r has no bytes beyond the size announced: more would mean the caller's
// size is wrong and the object silently truncated.
func End(r io.Reader, size int64) error {
	var one [1]byte
	switch n, err := io.ReadFull(r, one[:]); {
	case n > 0:
		return &SourceError{fmt.Errorf("reader has more than the %d bytes announced", size)}
	case err != io.EOF:
		return &SourceError{fmt.Errorf("read after the %d bytes announced: %w", size, err)}
	}
	return nil
}

// Reader returns a reader that yields the size bytes of r and then io.EOF, failing instead
// (with a SourceError, or ctx's error) when r ends early, fails, has more bytes, or ctx is
// canceled. It is for streaming a Put to a backend that sends what it reads: the failure
// reaches the backend before the last byte does, so the backend aborts the upload.
func Reader(ctx context.Context, r io.Reader, size int64) io.Reader {
	return &reader{ctx: ctx, r: r, left: size, size: size}
}

type reader struct {
	ctx  context.Context
	r    io.Reader
	left int64
	size int64
	err  error
}

func (e *reader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if err := e.ctx.Err(); err != nil {
		e.err = err
		return 0, err
	}
	if e.left == 0 {
		// The end is only reported once the source is known to have nothing more.
		if e.err = End(e.r, e.size); e.err == nil {
			e.err = io.EOF
		}
		return 0, e.err
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	switch {
	case err == io.EOF && e.left > 0:
		e.err = &SourceError{fmt.Errorf("reader ended %d bytes before the size announced: %w", e.left, io.ErrUnexpectedEOF)}
	case err != nil && err != io.EOF:
		e.err = &SourceError{fmt.Errorf("read: %w", err)}
	}
	if e.err != nil {
		return n, e.err
	}
	return n, nil
}

// ctxReader makes a long read stop soon after ctx is canceled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Check is what a Put checks before it touches the storage, in this order: the name, by
// the backend's rule (valid); the size, which must not be negative; the context, which
// must not be canceled. where names the object in the errors but the name's.
func Check(ctx context.Context, name string, size int64, valid func(string) error, where func() string) error {
	if err := valid(name); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	if size < 0 {
		return fmt.Errorf("put %s: negative size %d", where(), size)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", where(), err)
	}
	return nil
}
