package compress

import "testing"

// benchSpecs are the codecs a user is likely to pick.
var benchSpecs = []string{"none", "lz4", "zstd:1", "zstd:3"}

// The benchmarks use 4 MiB of pgbench_accounts-like pages, about the size of
// one chunk, and report the compression ratio next to the throughput.

func BenchmarkCompress(b *testing.B) {
	in := pgbenchPages(4 * mib)
	for _, spec := range benchSpecs {
		b.Run(spec, func(b *testing.B) {
			c := mustParse(b, spec)
			var out []byte
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				out, err = c.Compress(out[:0], in)
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(in))/float64(len(out)), "ratio")
		})
	}
}

func BenchmarkDecompress(b *testing.B) {
	in := pgbenchPages(4 * mib)
	for _, spec := range benchSpecs {
		b.Run(spec, func(b *testing.B) {
			c := mustParse(b, spec)
			comp, err := c.Compress(nil, in)
			if err != nil {
				b.Fatal(err)
			}
			out := make([]byte, 0, len(in))
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				out, err = c.Decompress(out[:0], comp, len(in))
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(in))/float64(len(comp)), "ratio")
		})
	}
}

// BenchmarkCompressParallel shows how a codec scales when every pipeline
// worker calls it at once.
func BenchmarkCompressParallel(b *testing.B) {
	in := pgbenchPages(4 * mib)
	for _, spec := range benchSpecs[1:] {
		b.Run(spec, func(b *testing.B) {
			c := mustParse(b, spec)
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				var out []byte
				for pb.Next() {
					var err error
					if out, err = c.Compress(out[:0], in); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
