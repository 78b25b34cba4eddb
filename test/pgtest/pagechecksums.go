package pgtest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Page checksums, read the way pg_checksums --check reads them. The machine
// has pg_checksums only from PostgreSQL 15's client tools, and it refuses a data
// directory of another major, so the tests check every page themselves: the
// algorithm (storage/checksum_impl.h) is a fixed part of the on-disk format.

const (
	blockSize = 8192
	// relSegBlocks is RELSEG_SIZE: a relation segment file holds 1 GiB.
	relSegBlocks = 1 << 30 / blockSize
	nSums        = 32
	fnvPrime     = 16777619
)

var checksumBaseOffsets = [nSums]uint32{
	0x5B1F36E9, 0xB8525960, 0x02AB50AA, 0x1DE66D2A,
	0x79FF467A, 0x9BB9F8A3, 0x217E7CD2, 0x83E13D2C,
	0xF8D4474F, 0xE39EB970, 0x42C6AE16, 0x993216FA,
	0x7B093B5D, 0x98DAFF3C, 0xF718902A, 0x0B1C9CDB,
	0xE58F764B, 0x187636BC, 0x5D7B3BB1, 0xE73DE7DE,
	0x92BEC979, 0xCCA6C0B2, 0x304A0979, 0x85AA43D4,
	0x783125BB, 0x6CA8EAA2, 0xE407EAC6, 0x4B5CFC3E,
	0x9FBF8C76, 0x15CA20BE, 0xF2CA9FD3, 0x959BD756,
}

// pageChecksum is pg_checksum_page: FNV-1a-like sums over 32 columns of 32-bit
// words, with pd_checksum taken as zero, the block number mixed in, reduced to
// 16 bits that are never zero.
func pageChecksum(page []byte, blkno uint32) uint16 {
	sums := checksumBaseOffsets
	comp := func(s *uint32, v uint32) {
		tmp := *s ^ v
		*s = tmp*fnvPrime ^ (tmp >> 17)
	}
	for i := 0; i < blockSize/(4*nSums); i++ {
		for j := range nSums {
			off := (i*nSums + j) * 4
			v := binary.LittleEndian.Uint32(page[off:])
			if off == 8 { // pd_checksum (bytes 8-9) counts as zero; pd_flags stays
				v &^= 0xFFFF
			}
			comp(&sums[j], v)
		}
	}
	for range 2 {
		for j := range nSums {
			comp(&sums[j], 0)
		}
	}
	var result uint32
	for _, s := range sums {
		result ^= s
	}
	result ^= blkno
	return uint16(result%65535 + 1)
}

// relationFile matches the files pg_checksums checks: 16384, 16384.1,
// 16384_fsm, 16384_vm, 16384_init.
var relationFile = regexp.MustCompile(`^(\d+)(_(fsm|vm|init))?(\.(\d+))?$`)

// VerifyPageChecksums checks the data checksum of every page of every relation
// file of a stopped cluster (its tablespaces included) and returns how many pages
// it checked. Any mismatch fails the test, naming the pages.
func VerifyPageChecksums(t testing.TB, dataDir string) int {
	t.Helper()
	var dirs []string
	dirs = append(dirs, filepath.Join(dataDir, "global"))
	for _, pattern := range []string{"base/*", "pg_tblspc/*/PG_*/*"} {
		m, err := filepath.Glob(filepath.Join(dataDir, pattern))
		if err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, m...)
	}
	pages := 0
	var bad []string
	for _, d := range dirs {
		entries, err := os.ReadDir(d)
		if err != nil {
			t.Fatalf("pgtest: page checksums: %v", err)
		}
		for _, e := range entries {
			m := relationFile.FindStringSubmatch(e.Name())
			if m == nil || !e.Type().IsRegular() {
				continue
			}
			seg, _ := strconv.Atoi(m[5])
			n, errs, err := verifyFile(filepath.Join(d, e.Name()), uint32(seg*relSegBlocks))
			if err != nil {
				t.Fatalf("pgtest: page checksums: %v", err)
			}
			pages += n
			bad = append(bad, errs...)
		}
	}
	if len(bad) > 0 {
		if len(bad) > 10 {
			bad = append(bad[:10], fmt.Sprintf("… %d more", len(bad)-10))
		}
		t.Fatalf("pgtest: %s: pages with a wrong checksum:\n%s", dataDir, strings.Join(bad, "\n"))
	}
	return pages
}

// verifyFile checks one relation segment whose first block is number first.
func verifyFile(path string, first uint32) (int, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	page := make([]byte, blockSize)
	n := 0
	var bad []string
	for blk := first; ; blk++ {
		if _, err := io.ReadFull(f, page); err != nil {
			if errors.Is(err, io.EOF) {
				return n, bad, nil
			}
			return n, bad, fmt.Errorf("%s: block %d: %w", path, blk, err)
		}
		if binary.LittleEndian.Uint16(page[14:]) == 0 { // pd_upper: a new page has no checksum yet
			continue
		}
		n++
		if want, got := pageChecksum(page, blk), binary.LittleEndian.Uint16(page[8:]); want != got {
			bad = append(bad, fmt.Sprintf("%s block %d: checksum %d, computed %d", path, blk, got, want))
		}
	}
}
