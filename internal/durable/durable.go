// Package durable holds the file-system step that every writer in pgward needs
// to make a new name survive a crash: fsyncing the directory that holds it. An
// fsync of a file covers its contents, not its entry in the directory, so a
// file created, renamed or linked into place is durable only once its
// directory has been fsynced too.
package durable

import (
	"fmt"
	"os"
)

// SyncDir fsyncs a directory, making the creation, renaming, linking and
// removal of its entries durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsync directory: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}
