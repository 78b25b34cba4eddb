package engine

import (
	"bytes"
	"testing"

	"github.com/pgward/pgward/repo"
)

// A chunk of an incremental file is completed by pg_combinebackup's rule: the pages
// the server sent stay; the others come from the previous version below the
// truncation length, and are zero past it or past the previous version's end.
func TestBaseFillComplete(t *testing.T) {
	const ps = repo.PageSize
	page := func(c byte) []byte { return bytes.Repeat([]byte{c}, ps) }
	old := bytes.Join([][]byte{page('a'), page('b'), page('c'), page('d')[:ps/2]}, nil) // 3.5 pages
	sent := func() []byte {                                                             // garbage but the sent pages
		b := bytes.Repeat([]byte{'?'}, 6*ps)
		copy(b[1*ps:], page('S'))
		copy(b[4*ps:], page('T'))
		return b
	}
	for _, c := range []struct {
		name string
		keep int64
		old  []byte
		want [][]byte
	}{
		{"previous version shorter than the chunk", 6 * ps, old,
			[][]byte{page('a'), page('S'), page('c'), append(page('d')[:ps/2], make([]byte, ps/2)...), page('T'), make([]byte, ps)}},
		{"truncated inside the previous version", 2 * ps, old,
			[][]byte{page('a'), page('S'), make([]byte, ps), make([]byte, ps), page('T'), make([]byte, ps)}},
		{"no previous version", 6 * ps, nil,
			[][]byte{make([]byte, ps), page('S'), make([]byte, ps), make([]byte, ps), page('T'), make([]byte, ps)}},
	} {
		b := sent()
		(&baseFill{keep: c.keep, changed: []uint32{1, 4}}).complete(b, c.old)
		if want := bytes.Join(c.want, nil); !bytes.Equal(b, want) {
			for p := range 6 {
				if !bytes.Equal(b[p*ps:(p+1)*ps], want[p*ps:(p+1)*ps]) {
					t.Errorf("%s: page %d is %q..., want %q...", c.name, p, b[p*ps:p*ps+4], want[p*ps:p*ps+4])
				}
			}
		}
	}
}
