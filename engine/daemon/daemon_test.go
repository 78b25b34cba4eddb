package daemon

import (
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// notifySystemd speaks systemd's notify protocol: one datagram to NOTIFY_SOCKET, a path or
// (leading @) an abstract socket.
func TestNotifySystemd(t *testing.T) {
	for _, name := range []string{filepath.Join(t.TempDir(), "notify"), fmt.Sprintf("@pgward-test-%d", os.Getpid())} {
		ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv("NOTIFY_SOCKET", name)
		notifySystemd("READY=1")
		buf := make([]byte, 64)
		ln.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := ln.Read(buf)
		ln.Close()
		if err != nil || string(buf[:n]) != "READY=1" {
			t.Errorf("%s: got %q, %v", name, buf[:n], err)
		}
	}
	t.Setenv("NOTIFY_SOCKET", "")
	notifySystemd("READY=1") // not started by systemd: nothing happens
}

// httptestGet serves one GET of the daemon's handler.
func httptestGet(t *testing.T, d *Daemon, path string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	d.handler().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec.Body.String()
}
