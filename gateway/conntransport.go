package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// ConnTransport is a lean HTTP/1.1 client for the gateway's hop to
// replicas: it writes the request and reads the response on the caller's
// goroutine over pooled keep-alive connections, where http.Transport hands
// every request to two goroutines per connection (a write loop and a read
// loop). On a small machine those hand-offs are a large part of a proxy's
// cost. It speaks plain http only; other schemes go to Fallback.
type ConnTransport struct {
	// Dialer opens connections (default: 5 s timeout, 30 s keep-alive).
	Dialer *net.Dialer
	// MaxIdlePerHost bounds the idle connections kept per replica
	// (default 512).
	MaxIdlePerHost int
	// IdleTimeout closes connections idle longer (default 90 s).
	IdleTimeout time.Duration
	// Fallback serves non-http requests (default: NewTransport()).
	Fallback http.RoundTripper

	mu        sync.Mutex
	idle      map[string][]*idleConn
	lastSweep time.Time
}

type idleConn struct {
	pc    *persistConn
	since time.Time
}

type persistConn struct {
	c  net.Conn
	br *bufio.Reader
	bw *bufio.Writer
}

var _ http.RoundTripper = (*ConnTransport)(nil)

// NewConnTransport returns a ConnTransport with the defaults.
func NewConnTransport() *ConnTransport {
	return &ConnTransport{Dialer: &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second},
		MaxIdlePerHost: 512, IdleTimeout: 90 * time.Second, Fallback: NewTransport()}
}

// RoundTrip implements http.RoundTripper.
func (t *ConnTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" {
		return t.Fallback.RoundTrip(req)
	}
	ctx := req.Context()
	host := req.URL.Host
	for attempt := 0; ; attempt++ {
		pc, reused, err := t.get(ctx, host)
		if err != nil {
			return nil, err
		}
		resp, err := t.roundTrip(ctx, pc, req)
		if err == nil {
			return resp, nil
		}
		pc.c.Close()
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("%w (%v)", ctxErr, err)
		}
		// A reused connection the replica had already closed: the request
		// was not processed; send it again on a new connection when the
		// body can be replayed.
		if reused && attempt == 0 && (req.Body == nil || req.GetBody != nil) && isStale(err) {
			// The other pooled connections to this replica are likely
			// dead too (it restarted or went away): drop them, so the
			// retry dials, and a refused dial is reported as such.
			t.closeHost(host)
			if req.GetBody != nil {
				body, gerr := req.GetBody()
				if gerr != nil {
					return nil, err
				}
				req = req.Clone(ctx)
				req.Body = body
			}
			continue
		}
		return nil, err
	}
}

// isStale reports errors of a connection the peer closed while idle.
func isStale(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func (t *ConnTransport) roundTrip(ctx context.Context, pc *persistConn, req *http.Request) (*http.Response, error) {
	// Cancellation and deadlines interrupt blocked reads and writes.
	stop := context.AfterFunc(ctx, func() { pc.c.SetDeadline(time.Unix(1, 0)) })
	if err := req.Write(pc.bw); err != nil {
		stop()
		return nil, err
	}
	if err := pc.bw.Flush(); err != nil {
		stop()
		return nil, err
	}
	resp, err := http.ReadResponse(pc.br, req)
	if err != nil {
		stop()
		return nil, err
	}
	resp.Body = &bodyReturner{ctx: ctx, rc: resp.Body, t: t, pc: pc, host: req.URL.Host, reuse: !resp.Close && !req.Close, stop: stop}
	return resp, nil
}

// bodyReturner gives the connection back to the pool once the response
// body was read to its end, and closes it otherwise.
type bodyReturner struct {
	ctx   context.Context
	rc    io.ReadCloser
	t     *ConnTransport
	pc    *persistConn
	host  string
	reuse bool
	stop  func() bool
	done  bool
}

func (b *bodyReturner) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.finish(true)
	} else if err != nil {
		if ctxErr := b.ctx.Err(); ctxErr != nil {
			// Report the deadline or cancellation, not the i/o timeout
			// used to interrupt the read.
			err = fmt.Errorf("%w (%v)", ctxErr, err)
		}
	}
	return n, err
}

func (b *bodyReturner) Close() error {
	if !b.done {
		b.finish(false)
	}
	return nil
}

func (b *bodyReturner) finish(eof bool) {
	b.done = true
	b.rc.Close()
	if !b.stop() || !eof || !b.reuse {
		// Canceled meanwhile, body not fully read, or no keep-alive.
		b.pc.c.Close()
		return
	}
	b.t.put(b.host, b.pc)
}

func (t *ConnTransport) get(ctx context.Context, host string) (*persistConn, bool, error) {
	now := time.Now()
	t.mu.Lock()
	for {
		list := t.idle[host]
		if len(list) == 0 {
			break
		}
		ic := list[len(list)-1]
		t.idle[host] = list[:len(list)-1]
		if now.Sub(ic.since) > t.IdleTimeout {
			ic.pc.c.Close()
			continue
		}
		t.mu.Unlock()
		ic.pc.c.SetDeadline(time.Time{})
		return ic.pc, true, nil
	}
	t.mu.Unlock()
	c, err := t.Dialer.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, false, err
	}
	return &persistConn{c: c, br: bufio.NewReaderSize(c, 16<<10), bw: bufio.NewWriterSize(c, 16<<10)}, false, nil
}

func (t *ConnTransport) put(host string, pc *persistConn) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.idle == nil {
		t.idle = map[string][]*idleConn{}
	}
	// Now and then close connections idle too long, including those to
	// replicas that are gone (nobody asks for their host again).
	if now.Sub(t.lastSweep) > t.IdleTimeout/4 {
		t.lastSweep = now
		for h, list := range t.idle {
			keep := list[:0]
			for _, ic := range list {
				if now.Sub(ic.since) > t.IdleTimeout {
					ic.pc.c.Close()
				} else {
					keep = append(keep, ic)
				}
			}
			if len(keep) == 0 {
				delete(t.idle, h)
			} else {
				t.idle[h] = keep
			}
		}
	}
	if len(t.idle[host]) >= t.MaxIdlePerHost {
		pc.c.Close()
		return
	}
	t.idle[host] = append(t.idle[host], &idleConn{pc: pc, since: now})
}

// closeHost closes the pooled connections to one host.
func (t *ConnTransport) closeHost(host string) {
	t.mu.Lock()
	list := t.idle[host]
	delete(t.idle, host)
	t.mu.Unlock()
	for _, ic := range list {
		ic.pc.c.Close()
	}
}

// CloseIdleConnections closes every pooled connection.
func (t *ConnTransport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, list := range idle {
		for _, ic := range list {
			ic.pc.c.Close()
		}
	}
	if f, ok := t.Fallback.(interface{ CloseIdleConnections() }); ok {
		f.CloseIdleConnections()
	}
}
