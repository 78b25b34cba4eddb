package sftp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	"github.com/pkg/sftp"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/internal/putio"
)

// Put implements repo.Storage: temp file, fsync, close, create-only rename.
func (s *Storage) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if err := putio.Check(ctx, name, size, checkName, func() string { return name }); err != nil {
		return err
	}
	cl, err := s.client(ctx)
	if err != nil {
		return err
	}
	rel := path.Dir(name)
	if err := s.ensureDir(cl, rel); err != nil {
		return s.opError(cl, "put", s.path(name), err)
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := s.path(rel) + "/" + tempName(path.Base(name), hex.EncodeToString(rnd[:]))
	final := s.path(name)
	f, err := cl.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if isMissing(err) {
		// A cached directory was removed behind our back (an operator cleaning up, a
		// test): forget what we knew and create it again, once.
		s.dirs.Clear()
		if err = s.ensureDir(cl, rel); err == nil {
			f, err = cl.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
		}
	}
	if err != nil {
		return s.opError(cl, "put", final, err)
	}
	if err := writeTemp(ctx, f, r, size); err != nil {
		_ = cl.Remove(tmp)
		return s.opError(cl, "put", final, err)
	}
	// Last chance to back out: after the rename the object exists.
	if err := ctx.Err(); err != nil {
		_ = cl.Remove(tmp)
		return fmt.Errorf("put %s: %w", name, err)
	}
	if err := cl.Rename(tmp, final); err != nil {
		// SSH_FXP_RENAME refuses an existing target with a generic failure: look.
		fi, serr := cl.Lstat(final)
		_ = cl.Remove(tmp)
		if serr == nil && fi.Mode().IsRegular() {
			return fmt.Errorf("put %s: %w", name, repo.ErrExists)
		}
		return s.opError(cl, "put", final, err)
	}
	return nil
}

// PutDeferred implements repo.Storage: SFTP cannot sync a directory, so there is nothing to
// defer.
func (s *Storage) PutDeferred(ctx context.Context, name string, r io.Reader, size int64) error {
	return s.Put(ctx, name, r, size)
}

// SyncDeferred implements repo.Storage: PutDeferred left nothing to do.
func (s *Storage) SyncDeferred(context.Context) error { return nil }

// writeTemp writes exactly size bytes of r to the new temp file f, fsyncs and closes it.
func writeTemp(ctx context.Context, f *sftp.File, r io.Reader, size int64) error {
	if _, err := f.ReadFromWithConcurrency(putio.Reader(ctx, r, size), 0); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		if errors.Is(err, sftp.ErrSSHFxOpUnsupported) {
			return &permanentError{errors.New("the SFTP server does not implement fsync@openssh.com, which durable writes need (OpenSSH's server does)")}
		}
		return err
	}
	return f.Close()
}

// ensureDir makes sure the relative directory rel exists below the root.
func (s *Storage) ensureDir(cl *sftp.Client, rel string) error {
	if rel == "." {
		return nil
	}
	if _, ok := s.dirs.Load(rel); ok {
		return nil
	}
	if err := cl.MkdirAll(s.path(rel)); err != nil {
		// MkdirAll fails when a concurrent Put made the directory between its look and its
		// mkdir: look again.
		if fi, serr := cl.Stat(s.path(rel)); serr != nil || !fi.IsDir() {
			return err
		}
	}
	s.dirs.Store(rel, struct{}{})
	return nil
}
