package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestConnTransportReusesConnections(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(append([]byte("echo:"), b...))
	}))
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	tr := NewConnTransport()
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	for i := 0; i < 50; i++ {
		resp, err := client.Post(srv.URL+"/score", "text/plain", strings.NewReader("hi"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "echo:hi" {
			t.Fatalf("body %q", b)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for 50 sequential requests, want 1", n)
	}
}

func TestConnTransportRetriesStaleConnection(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	tr := NewConnTransport()
	defer tr.CloseIdleConnections()
	do := func() error {
		body := []byte("payload")
		req, _ := http.NewRequest("POST", srv.URL, bytes.NewReader(body))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.ReadAll(resp.Body)
		return err
	}
	if err := do(); err != nil {
		t.Fatal(err)
	}
	// The server drops its idle connections; the pooled one is now stale.
	srv.CloseClientConnections()
	time.Sleep(50 * time.Millisecond)
	if err := do(); err != nil {
		t.Fatalf("request on a stale pooled connection: %v", err)
	}
}

func TestConnTransportDeadlineAndDialErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(500 * time.Millisecond)
		w.Write([]byte("late"))
	}))
	defer srv.Close()
	tr := NewConnTransport()
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	start := time.Now()
	_, err := tr.RoundTrip(req)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 400*time.Millisecond {
		t.Fatalf("err = %v after %s; want a deadline error at about 100ms", err, time.Since(start))
	}
	// A dial error stays a *net.OpError with Op "dial" (the gateway retries those).
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	req, _ = http.NewRequest("GET", "http://"+addr+"/", nil)
	if _, err := tr.RoundTrip(req); !isDialError(err) {
		t.Fatalf("refused connection: %v, want a dial error", err)
	}
}

func TestConnTransportUnreadBodyClosesConnection(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte("x"), 100000))
	}))
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	tr := NewConnTransport()
	defer tr.CloseIdleConnections()
	for i := 0; i < 3; i++ {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close() // not read: the connection cannot be reused
	}
	if n := conns.Load(); n != 3 {
		t.Fatalf("%d connections, want 3 (a half-read connection must not be reused)", n)
	}
}

// TestConnTransportDeadReplica: with several pooled connections to a
// replica that died, a request fails with a dial error (which the gateway
// retries on another replica), not with a stale-connection error.
func TestConnTransportDeadReplica(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
		w.Write([]byte("ok"))
	}))
	tr := NewConnTransport()
	defer tr.CloseIdleConnections()
	// Fill the pool with several connections.
	done := make(chan struct{})
	for i := 0; i < 4; i++ {
		go func() {
			req, _ := http.NewRequest("POST", srv.URL, bytes.NewReader([]byte("x")))
			if resp, err := tr.RoundTrip(req); err == nil {
				io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			done <- struct{}{}
		}()
	}
	for i := 0; i < 4; i++ {
		<-done
	}
	srv.CloseClientConnections()
	srv.Close()
	time.Sleep(50 * time.Millisecond)
	req, _ := http.NewRequest("POST", srv.URL, bytes.NewReader([]byte("x")))
	_, err := tr.RoundTrip(req)
	if !isDialError(err) {
		t.Fatalf("err = %v, want a dial error", err)
	}
}
