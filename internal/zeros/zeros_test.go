package zeros

import "testing"

func TestIs(t *testing.T) {
	for _, n := range []int{0, 1, 63, 64 << 10, 64<<10 + 1, 4 << 20} {
		b := make([]byte, n)
		if !Is(b) {
			t.Fatalf("%d zero bytes: Is = false", n)
		}
		for _, at := range []int{0, n / 2, n - 1} {
			if n == 0 {
				continue
			}
			b[at] = 1
			if Is(b) {
				t.Fatalf("%d bytes with a 1 at %d: Is = true", n, at)
			}
			b[at] = 0
		}
	}
}

func BenchmarkIs(b *testing.B) {
	buf := make([]byte, 4<<20)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		Is(buf)
	}
}
