package s3

import "io"

// reusableBody lets a response's connection go back to the pool when the caller stops
// reading. net/http reuses a connection only when the body was read to its end (EOF seen)
// before Close; a reader that takes exactly the bytes it expects (io.ReadFull of a known
// length, as every chunk and pack read does) never sees that EOF, so each GET would cost a
// new TCP connection and TLS handshake — measured: a quarter of a restore's CPU time over
// TLS. Close therefore reads what is left, up to drainLimit; a caller that abandons a large
// body still drops its connection, which is cheaper than downloading the rest.
type reusableBody struct {
	io.ReadCloser
}

const drainLimit = 256 << 10

func (b reusableBody) Close() error {
	_, _ = io.CopyN(io.Discard, b.ReadCloser, drainLimit)
	return b.ReadCloser.Close()
}
