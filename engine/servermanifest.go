package engine

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
)

// receivedFile is what the reader saw of one regular file.
type receivedFile struct {
	size  int64
	crc32 uint32
}

// serverManifest is the part of PostgreSQL's backup_manifest we check against
// (parseServerManifest reads it; the tags say where each field comes from).
type serverManifest struct {
	Version int          `json:"PostgreSQL-Backup-Manifest-Version"`
	Files   []serverFile `json:"Files"`
}

// serverFile is one entry of the manifest's file list.
type serverFile struct {
	Path        string `json:"Path"`
	EncodedPath string `json:"Encoded-Path"`
	Size        int64  `json:"Size"`
	Algorithm   string `json:"Checksum-Algorithm"`
	Checksum    string `json:"Checksum"`
}

// verifyAgainstServerManifest checks that every file the server listed arrived
// with its size and CRC32C, and that nothing arrived that the server did not list
// (WAL, which the server leaves out of its manifest, excepted). It is the proof
// that the tar parsing lost or changed nothing before the backup commits.
func verifyAgainstServerManifest(raw []byte, got map[string]receivedFile) error {
	m, err := parseServerManifest(raw)
	if err != nil {
		return err
	}
	listed := make(map[string]bool, len(m.Files))
	var problems []string
	for _, f := range m.Files {
		path := f.Path
		if f.EncodedPath != "" {
			b, err := hex.DecodeString(f.EncodedPath)
			if err != nil {
				return fmt.Errorf("backup_manifest: bad Encoded-Path %q", f.EncodedPath)
			}
			path = string(b)
		}
		listed[path] = true
		r, ok := got[path]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s: listed by the server but not received", path))
		case r.size != f.Size:
			problems = append(problems, fmt.Sprintf("%s: received %d bytes, the server listed %d", path, r.size, f.Size))
		case strings.EqualFold(f.Algorithm, "CRC32C"):
			// PostgreSQL writes the CRC's bytes in the server's memory order
			// (little endian on every platform pgward runs on).
			var b [4]byte
			binary.LittleEndian.PutUint32(b[:], r.crc32)
			if !strings.EqualFold(hex.EncodeToString(b[:]), f.Checksum) {
				problems = append(problems, fmt.Sprintf("%s: CRC32C %s, the server listed %s", path, hex.EncodeToString(b[:]), f.Checksum))
			}
		}
	}
	for path := range got {
		if !listed[path] && !strings.HasPrefix(path, "pg_wal/") {
			problems = append(problems, fmt.Sprintf("%s: received but not listed by the server", path))
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		if len(problems) > 10 {
			problems = append(problems[:10], fmt.Sprintf("and %d more", len(problems)-10))
		}
		return fmt.Errorf("the received files do not match the server's backup_manifest: %s", strings.Join(problems, "; "))
	}
	return nil
}
