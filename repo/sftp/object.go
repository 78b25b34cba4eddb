package sftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/pkg/sftp"

	"github.com/pgward/pgward/repo"
)

// Get implements repo.Storage. The reader reads the remote file.
func (s *Storage) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	f, _, err := s.open(ctx, "get", name)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// GetRange implements repo.Storage: the file's bytes [offset, offset+length).
func (s *Storage) GetRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	f, size, err := s.open(ctx, "get", name)
	if err != nil {
		return nil, err
	}
	if offset < 0 || length < 0 || offset+length > size {
		f.Close()
		return nil, fmt.Errorf("get %s: range %d+%d is past the object's %d bytes", name, offset, length, size)
	}
	return &section{SectionReader: io.NewSectionReader(f, offset, length), f: f}, nil
}

// section reads a range of an open file and closes the file.
type section struct {
	*io.SectionReader
	f *sftp.File
}

func (s *section) Close() error { return s.f.Close() }

// open opens the regular file of name and returns it with its size.
func (s *Storage) open(ctx context.Context, op, name string) (*sftp.File, int64, error) {
	if err := checkName(name); err != nil {
		return nil, 0, fmt.Errorf("%s: %w", op, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, fmt.Errorf("%s %s: %w", op, name, err)
	}
	cl, err := s.client(ctx)
	if err != nil {
		return nil, 0, err
	}
	p := s.path(name)
	f, err := cl.Open(p)
	if isMissing(err) {
		return nil, 0, fmt.Errorf("%s %s: %w", op, name, repo.ErrNotFound)
	}
	if err != nil {
		return nil, 0, s.opError(cl, op, p, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, s.opError(cl, op, p, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("%s %s: %w", op, name, repo.ErrNotFound)
	}
	return f, fi.Size(), nil
}

// isMissing reports errors meaning "no such object": the name is absent, or one of its
// parents is a file rather than a directory (OpenSSH answers that with "no such file" too).
func isMissing(err error) bool {
	return errors.Is(err, fs.ErrNotExist)
}

// Stat implements repo.Storage.
func (s *Storage) Stat(ctx context.Context, name string) (repo.ObjectInfo, error) {
	if err := checkName(name); err != nil {
		return repo.ObjectInfo{}, fmt.Errorf("stat: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return repo.ObjectInfo{}, fmt.Errorf("stat %s: %w", name, err)
	}
	cl, err := s.client(ctx)
	if err != nil {
		return repo.ObjectInfo{}, err
	}
	fi, err := cl.Stat(s.path(name))
	if isMissing(err) || (err == nil && !fi.Mode().IsRegular()) {
		return repo.ObjectInfo{}, fmt.Errorf("stat %s: %w", name, repo.ErrNotFound)
	}
	if err != nil {
		return repo.ObjectInfo{}, s.opError(cl, "stat", s.path(name), err)
	}
	return objectInfo(name, fi), nil
}

// objectInfo describes the object name kept in the file fi, the same way for Stat and List.
func objectInfo(name string, fi fs.FileInfo) repo.ObjectInfo {
	return repo.ObjectInfo{Name: name, Size: fi.Size(), ModTime: fi.ModTime()}
}

// Delete implements repo.Storage. A directory is not an object, and is never removed.
func (s *Storage) Delete(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	cl, err := s.client(ctx)
	if err != nil {
		return err
	}
	p := s.path(name)
	fi, err := cl.Lstat(p)
	if isMissing(err) {
		return nil
	}
	if err != nil {
		return s.opError(cl, "delete", p, err)
	}
	if fi.IsDir() {
		return nil
	}
	if err := cl.Remove(p); err != nil && !isMissing(err) {
		return s.opError(cl, "delete", p, err)
	}
	return nil
}
