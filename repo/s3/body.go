package s3

import "io"

// reusableBody lets a response's connection go back to the pool when its reader stops
// before the end. net/http keeps a connection only when the body was read to its end
// before Close; a reader that reads exactly Content-Length bytes sees that end already
// (net/http returns EOF with the last bytes), but one that stops early — an object
// refused by its header, a copy abandoned on an error — would cost the next request a
// new TCP connection and TLS handshake. Close therefore reads what is left, up to
// drainLimit; a larger remainder is cheaper to drop with its connection than to download.
type reusableBody struct {
	io.ReadCloser
}

const drainLimit = 256 << 10

func (b reusableBody) Close() error {
	_, _ = io.CopyN(io.Discard, b.ReadCloser, drainLimit)
	return b.ReadCloser.Close()
}
