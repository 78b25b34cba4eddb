package s3test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// FaultProxy is an HTTP proxy on 127.0.0.1 in front of an S3 server that fails requests on
// command. Point a client at Addr instead of the server. It understands HTTP only as far as
// it must to count requests on kept-alive connections; requests it forwards reach the
// server byte-for-byte the same in every signed part (method, path, query, Host, headers),
// so SigV4 signatures stay valid.
//
// The knobs count down: ResetNext(2) affects the next two requests, then the proxy forwards
// normally again. Resets take precedence over 503s.
type FaultProxy struct {
	t      testing.TB
	target string
	addr   string
	tr     *http.Transport

	mu      sync.Mutex
	srv     *http.Server
	resets  int
	fail503 int
	stall   time.Duration
	down    bool
	stats   ProxyStats
	stopped bool
}

// ProxyStats counts what the proxy did.
type ProxyStats struct {
	Forwarded int // requests passed to the server
	Reset     int // requests whose connection was reset
	Failed503 int // requests answered 503 SlowDown
}

// maxDrain bounds how much of a request body the proxy reads before answering a 503.
const maxDrain = 64 << 20

// NewFaultProxy starts a proxy to target ("127.0.0.1:port" or "http://127.0.0.1:port"),
// which must be a loopback address. It is closed in t.Cleanup.
func NewFaultProxy(t testing.TB, target string) *FaultProxy {
	t.Helper()
	target = strings.TrimPrefix(target, "http://")
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		t.Fatalf("s3test: fault proxy target %q: %v", target, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		t.Fatalf("s3test: fault proxy target %q is not a loopback address", target)
	}
	p := &FaultProxy{
		t:      t,
		target: target,
		tr: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			DisableCompression:  true, // pass bodies through untouched
			MaxIdleConnsPerHost: 32,
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("s3test: fault proxy: %v", err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.close)
	return p
}

// Addr returns the proxy's "127.0.0.1:port".
func (p *FaultProxy) Addr() string { return p.addr }

// Endpoint returns "http://" + Addr().
func (p *FaultProxy) Endpoint() string { return "http://" + p.addr }

// ResetNext makes the next n requests fail mid-request: the proxy reads the request head and
// a little of its body, then resets the connection (TCP RST), forwarding nothing.
func (p *FaultProxy) ResetNext(n int) { p.set(func() { p.resets = n }) }

// Fail503Next answers the next n requests with 503 SlowDown (an S3 XML error) without
// forwarding them.
func (p *FaultProxy) Fail503Next(n int) { p.set(func() { p.fail503 = n }) }

// Stall delays forwarding every request by d (0: no delay).
func (p *FaultProxy) Stall(d time.Duration) { p.set(func() { p.stall = d }) }

// SetDown(true) closes the listener and every open connection, so that connections are
// refused; SetDown(false) listens on the same port again.
func (p *FaultProxy) SetDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped || down == p.down {
		return
	}
	p.down = down
	if down {
		_ = p.srv.Close()
		p.tr.CloseIdleConnections()
		return
	}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Errorf("s3test: fault proxy: listen again on %s: %v", p.addr, err)
		return
	}
	p.serve(ln)
}

// Stats returns what the proxy did so far.
func (p *FaultProxy) Stats() ProxyStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

func (p *FaultProxy) set(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f()
}

// serve starts an HTTP server on ln; called with mu held or before the proxy is shared.
func (p *FaultProxy) serve(ln net.Listener) {
	p.srv = &http.Server{
		Handler:           p,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	go func(srv *http.Server) { _ = srv.Serve(ln) }(p.srv)
}

func (p *FaultProxy) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	if !p.down {
		_ = p.srv.Close()
	}
	p.tr.CloseIdleConnections()
}

type action int

const (
	forward action = iota
	reset
	fail503
)

func (p *FaultProxy) next() (action, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.resets > 0:
		p.resets--
		p.stats.Reset++
		return reset, 0
	case p.fail503 > 0:
		p.fail503--
		p.stats.Failed503++
		return fail503, 0
	}
	p.stats.Forwarded++
	return forward, p.stall
}

const slowDownXML = `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>s3test-fault-proxy</RequestId></Error>`

func (p *FaultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	act, stall := p.next()
	switch act {
	case reset:
		// Some body first, so that an upload is cut off mid-way rather than before it began.
		_, _ = io.CopyN(io.Discard, r.Body, 1024)
		hj, ok := w.(http.Hijacker)
		if !ok {
			panic(http.ErrAbortHandler)
		}
		conn, _, err := hj.Hijack()
		if err != nil {
			panic(http.ErrAbortHandler)
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // close sends RST, not FIN
		}
		_ = conn.Close()
		return
	case fail503:
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, maxDrain))
		w.Header().Set("Content-Type", "application/xml")
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		if r.Method != http.MethodHead {
			_, _ = io.WriteString(w, slowDownXML)
		}
		return
	}
	if stall > 0 {
		t := time.NewTimer(stall)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
	}
	p.forward(w, r)
}

// hopHeaders are per-connection headers a proxy must not pass on (RFC 9110 7.6.1).
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func (p *FaultProxy) forward(w http.ResponseWriter, r *http.Request) {
	// The request line goes out exactly as it came in: re-escaping the path would break
	// the signature.
	path, query, _ := strings.Cut(r.RequestURI, "?")
	out := &http.Request{
		Method:        r.Method,
		URL:           &url.URL{Scheme: "http", Host: p.target, Opaque: path, RawQuery: query},
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        r.Header.Clone(),
		Host:          r.Host, // signed: must stay the proxy's address the client signed for
		ContentLength: r.ContentLength,
		Body:          r.Body,
	}
	if r.ContentLength == 0 {
		out.Body = nil
	}
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	// The proxy's server side already answered any "Expect: 100-continue"; the body is here.
	out.Header.Del("Expect")
	out = out.WithContext(r.Context())
	resp, err := p.tr.RoundTrip(out)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return
		}
		http.Error(w, fmt.Sprintf("s3test fault proxy: %v", err), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for _, h := range hopHeaders {
		resp.Header.Del(h)
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}
