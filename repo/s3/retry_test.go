package s3

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/retry"
	"github.com/pgward/pgward/test/s3test"
)

// fastPolicy retries quickly, so that faults cost milliseconds.
var fastPolicy = retry.Policy{MaxElapsed: 5 * time.Second, InitialWait: 10 * time.Millisecond, MaxWait: 100 * time.Millisecond}

// TestThroughFaultProxy runs real requests through a proxy that fails them the ways S3
// does, and checks the classification and the retry wrapper together.
func TestThroughFaultProxy(t *testing.T) {
	srv := s3test.Start(t)
	bucket := s3test.BucketName(t)
	srv.CreateBucket(t, bucket)
	proxy := s3test.NewFaultProxy(t, srv.Endpoint)
	c := testConfig(srv, bucket)
	c.Endpoint = proxy.Endpoint()
	c.PartSize = MinPartSize
	raw := mustOpen(t, c)
	var retries []string
	p := fastPolicy
	p.OnRetry = func(op, name string, attempt int, wait time.Duration, err error) {
		retries = append(retries, op+" "+name)
	}
	st := retry.Wrap(raw, p)
	ctx := t.Context()

	// Each subtest starts from a proxy that forwards everything, whatever the last one left.
	clean := func() {
		proxy.ResetNext(0)
		proxy.Fail503Next(0)
		proxy.Stall(0)
		proxy.SetDown(false)
	}

	t.Run("Classification", func(t *testing.T) {
		clean()
		proxy.Fail503Next(1)
		_, err := raw.Get(ctx, "nothing")
		if err == nil || !retry.IsTransient(err) || !strings.Contains(err.Error(), "SlowDown") {
			t.Fatalf("Get answered 503 SlowDown = %v (transient %v), want a transient error", err, retry.IsTransient(err))
		}
		proxy.Fail503Next(1)
		if _, err = raw.Stat(ctx, "nothing"); !retry.IsTransient(err) { // HEAD: a 503 without a body
			t.Fatalf("Stat answered 503 = %v, want a transient error", err)
		}
		proxy.ResetNext(1)
		data := []byte("reset")
		err = raw.Put(ctx, "reset", bytes.NewReader(data), int64(len(data)))
		if err == nil || !retry.IsTransient(err) {
			t.Fatalf("Put whose connection was reset = %v (transient %v), want a transient error", err, retry.IsTransient(err))
		}
		if _, err := raw.Stat(ctx, "nothing"); !errors.Is(err, repo.ErrNotFound) || retry.IsTransient(err) {
			t.Fatalf("Stat of a missing object = %v, want permanent ErrNotFound", err)
		}
	})

	t.Run("PutGet", func(t *testing.T) {
		clean()
		small := payload(1, 100_000)
		big := payload(2, 2*MinPartSize+7) // multipart: faults hit parts and the completion too
		for _, tc := range []struct {
			name   string
			data   []byte
			faults func()
		}{
			{"small-503", small, func() { proxy.Fail503Next(3) }},
			{"small-reset", small, func() { proxy.ResetNext(2) }},
			{"small-both", small, func() { proxy.ResetNext(1); proxy.Fail503Next(2) }},
			{"big-503", big, func() { proxy.Fail503Next(4) }},
			{"big-reset", big, func() { proxy.ResetNext(3) }},
		} {
			before := proxy.Stats()
			retries = nil
			tc.faults()
			if err := st.Put(ctx, tc.name, bytes.NewReader(tc.data), int64(len(tc.data))); err != nil {
				t.Fatalf("%s: Put through faults: %v", tc.name, err)
			}
			tc.faults()
			if got := getAll(t, st, tc.name); !bytes.Equal(got, tc.data) {
				t.Fatalf("%s: Get through faults returned different bytes", tc.name)
			}
			tc.faults()
			if got := listAll(t, st, tc.name); len(got) != 1 || got[0] != tc.name {
				t.Fatalf("%s: List through faults = %v", tc.name, got)
			}
			after := proxy.Stats()
			if after.Reset == before.Reset && after.Failed503 == before.Failed503 {
				t.Fatalf("%s: the proxy injected no fault", tc.name)
			}
			if len(retries) == 0 {
				t.Fatalf("%s: nothing was retried", tc.name)
			}
		}
		// Write-once holds through retries: a Put that finds the object is refused.
		proxy.Fail503Next(2)
		if err := st.Put(ctx, "small-503", bytes.NewReader(big), int64(len(big))); !errors.Is(err, repo.ErrExists) {
			t.Fatalf("Put of a taken name through faults = %v, want ErrExists", err)
		}
	})

	t.Run("Stall", func(t *testing.T) {
		clean()
		proxy.Stall(200 * time.Millisecond)
		defer proxy.Stall(0)
		start := time.Now()
		if _, err := st.Stat(ctx, "small-503"); err != nil {
			t.Fatalf("Stat through a stall: %v", err)
		}
		if d := time.Since(start); d < 200*time.Millisecond {
			t.Fatalf("Stat through a 200ms stall took %s", d)
		}
	})

	t.Run("Down", func(t *testing.T) {
		clean()
		proxy.SetDown(true)
		p := fastPolicy
		p.MaxElapsed = time.Second
		down := retry.Wrap(raw, p)
		start := time.Now()
		data := []byte("never")
		err := down.Put(ctx, "down", bytes.NewReader(data), int64(len(data)))
		elapsed := time.Since(start)
		if err == nil {
			t.Fatal("Put with the server down succeeded")
		}
		if msg := err.Error(); !strings.Contains(msg, "connection refused") || !strings.Contains(msg, "gave up after") ||
			!strings.Contains(msg, "s3://"+bucket+"/down") {
			t.Fatalf("Put with the server down: unclear error %q", msg)
		}
		if elapsed > 3*time.Second {
			t.Fatalf("Put with the server down took %s, want about the policy's 1s", elapsed)
		}
		t.Logf("server down: Put failed after %s: %v", elapsed.Round(time.Millisecond), err)
		proxy.SetDown(false)
		if err := down.Put(ctx, "down", bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatalf("Put once the server is back: %v", err)
		}
	})
}
