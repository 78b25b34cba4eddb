package restore

import (
	"errors"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Direct I/O for the large files of a restore.
//
// Buffered writes copy every byte into the page cache, and the kernel's
// writeback then has to push gigabytes out before the syncfs that makes the
// restore durable can return; on the 2-core machine of docs/benchmarks.md that
// path managed ~270-340 MB/s where O_DIRECT writes of the same bytes reached
// ~1 GB/s. So files made of several chunks, whose size is a multiple of the
// page size (every relation segment of PostgreSQL), are written with O_DIRECT
// from page-aligned chunk buffers. Small files stay buffered: a synchronous
// device write each would cost more than the copy, and syncfs flushes them in
// bulk. The syncfs at the end is still what makes everything durable: direct
// writes to newly allocated blocks leave metadata (extents, sizes) to be
// committed, and the device may cache the data.
//
// Not every file system supports O_DIRECT (tmpfs before Linux 6.6, some FUSE
// file systems); the first refusal turns it off for the rest of the restore.

// pageSize is the alignment O_DIRECT needs for buffers, offsets and lengths on
// every Linux file system and device (4096 covers 512-byte sectors too).
const pageSize = 4096

// pageAligned returns a zero-length buffer of capacity n whose first byte is
// pageSize-aligned.
func pageAligned(n int) []byte {
	b := make([]byte, n+pageSize)
	off := 0
	if r := int(uintptr(unsafe.Pointer(&b[0])) % pageSize); r != 0 {
		off = pageSize - r
	}
	return b[off : off : off+n]
}

// isPageAligned reports whether b starts on a page boundary and is a whole
// number of pages long.
func isPageAligned(b []byte) bool {
	return len(b) > 0 && len(b)%pageSize == 0 && uintptr(unsafe.Pointer(&b[0]))%pageSize == 0
}

// setDirect switches an open file to O_DIRECT (on or off); it reports whether
// the file system accepted it.
func setDirect(f *os.File, on bool) bool {
	fd := int(f.Fd())
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return false
	}
	if on {
		fl |= unix.O_DIRECT
	} else {
		fl &^= unix.O_DIRECT
	}
	_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl)
	return err == nil
}

// writeChunk writes one chunk of a file at off. A file in direct mode gets
// page-aligned bytes (copied into spare, allocated on first use, when the
// decoder's output is not); if the file system turns a direct write down after
// all, the file and the rest of the restore go back to buffered writes.
func (w *writer) writeChunk(of *openFile, data []byte, off int64, spare *[]byte) error {
	if !of.direct {
		_, err := of.f.WriteAt(data, off)
		return err
	}
	if !isPageAligned(data) {
		if *spare == nil {
			*spare = pageAligned(w.m.ChunkSize)
		}
		data = append((*spare)[:0], data...)
	}
	_, err := of.f.WriteAt(data, off)
	if errors.Is(err, unix.EINVAL) {
		w.direct.Store(false)
		setDirect(of.f, false)
		_, err = of.f.WriteAt(data, off)
	}
	return err
}
