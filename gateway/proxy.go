package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/modelship/modelship"
)

// Request-id headers (spec §2.2), propagated to the replica and returned.
const (
	hdrRequestID       = "X-Request-Id"
	hdrMSRequestID     = "X-Ms-Request-Id"
	hdrMSClientRequest = "X-Ms-Client-Request-Id"
)

// statusClientClosed records requests whose caller went away (nginx's 499).
const statusClientClosed = 499

// hopHeaders are connection-level headers a proxy must not forward
// (RFC 9110 §7.6.1).
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// serve runs the request on version v: body limit, request ids, mirror,
// queue, proxy with retry, response mapping and statistics.
// tr is the request's span (nil when tracing is off).
func (g *Gateway) serve(w http.ResponseWriter, r *http.Request, rt *route, v *version, op int, split bool, tr *reqTrace) {
	start := time.Now()
	st := v.st
	status := 0
	var rep *replica
	var queue time.Duration
	var reqID, clientReqID string
	defer func() {
		if op == opScore && r.Method != http.MethodOptions {
			st.record(status, time.Since(start))
			if tw := rt.telemetry; tw != nil {
				g.recordTelemetry(tw, r, rt, v, rep, tr, start, queue, status, reqID, clientReqID)
			}
		}
		if tr != nil {
			tr.status = status
		}
	}()
	tr.routed(v)

	// Request ids: keep the caller's, else make one; x-ms-request-id and
	// x-ms-client-request-id as Azure's inference server sets them.
	reqID = r.Header.Get(hdrRequestID)
	if reqID == "" {
		reqID = newRequestID()
	}
	var msReqID string
	msReqID, clientReqID = modelship.RequestIDHeaders(reqID, r.Header.Get(hdrMSRequestID), r.Header.Get(hdrMSClientRequest))
	setIDs := func(h http.Header) {
		h[hdrRequestID] = []string{reqID}
		h[hdrMSRequestID] = []string{msReqID}
		if clientReqID != "" {
			h[hdrMSClientRequest] = []string{clientReqID}
		}
	}
	fail := func(code int, msg string) {
		status = code
		setIDs(w.Header())
		if rt.kind == modelship.RouteEndpoint {
			w.Header().Set(DeploymentHeader, v.name)
		}
		writeError(w, code, msg)
	}

	// Body: refuse oversized ones up front; read small ones into memory
	// (replayable on another replica, mirrorable); stream the rest under
	// a hard limit.
	if r.ContentLength > g.cfg.MaxBodyBytes {
		fail(http.StatusRequestEntityTooLarge, "Request body is larger than the limit of "+strconv.FormatInt(g.cfg.MaxBodyBytes, 10)+" bytes")
		return
	}
	var body []byte
	replayable := true
	switch {
	case r.ContentLength == 0:
	case r.ContentLength > 0 && r.ContentLength <= g.cfg.ReplayableBodyBytes:
		body = make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			if r.Context().Err() != nil {
				status = statusClientClosed
				return
			}
			fail(http.StatusBadRequest, "Could not read the request body")
			return
		}
	default:
		replayable = false
	}

	header := outboundHeader(r)
	setIDs(header)
	tr.inject(header)

	if split && op == opScore && len(rt.mirrors) > 0 && r.Method != http.MethodOptions {
		g.mirror(rt, v, r, header, body, replayable)
	}

	deadline := start.Add(v.queueWait)
	observed := tr != nil || rt.telemetry != nil
	var qStart time.Time
	if observed {
		qStart = time.Now()
	}
	rep, cur, aerr := g.acquire(r.Context(), v, deadline)
	if observed {
		queue = time.Since(qStart)
		tr.queued(queue, rep)
	}
	if aerr != nil {
		switch {
		case aerr.canceled:
			status = statusClientClosed
		case aerr.noReplicas:
			fail(http.StatusServiceUnavailable, "No ready replicas for service "+rt.name)
		default:
			fail(http.StatusServiceUnavailable, "Request waited longer than maxQueueWait ("+v.queueWait.String()+") for a free replica of "+rt.kind+" "+rt.name+": every replica is at its concurrency limit")
		}
		return
	}
	v = cur
	released := false
	defer func() {
		if !released {
			st.release(rep)
		}
	}()

	ctx, cancel := context.WithTimeout(r.Context(), v.timeout)
	defer cancel()
	path := "/score"
	if op == opSwagger {
		path = "/swagger.json"
	}
	var stream io.ReadCloser
	if !replayable {
		stream = http.MaxBytesReader(nil, r.Body, g.cfg.MaxBodyBytes)
	}

	var resp *http.Response
	var err error
	var pStart time.Time
	if tr != nil {
		pStart = time.Now()
	}
	for attempt := 0; ; attempt++ {
		out := newOutbound(ctx, r.Method, rep, path, r.URL.RawQuery, header, body, stream, r.ContentLength)
		resp, err = g.transport.RoundTrip(out)
		if err == nil {
			break
		}
		// Retry on another replica only when the request provably never
		// reached this one (the connection could not be opened) and the
		// body can be sent again.
		if replayable && isDialError(err) && attempt < 2 && ctx.Err() == nil {
			rep.suspectUntil.Store(time.Now().Add(g.cfg.SuspectTime).UnixNano())
			g.log.Warn("gateway: replica refused the connection; retrying on another", "route", rt.name, "version", v.name, "replica", rep.id, "err", err)
			tr.retried(rep, err)
			st.release(rep)
			released = true
			var next *replica
			next, v, aerr = g.acquire(r.Context(), v, time.Now().Add(v.queueWait))
			if aerr != nil {
				break
			}
			rep, released = next, false
			continue
		}
		break
	}
	if tr != nil && rep != nil {
		tr.proxied(time.Since(pStart), rep, err)
	}
	if err != nil {
		switch {
		case r.Context().Err() != nil:
			status = statusClientClosed
		case errors.Is(err, context.DeadlineExceeded):
			fail(http.StatusGatewayTimeout, "request has timed out")
		case isMaxBytes(err):
			fail(http.StatusRequestEntityTooLarge, "Request body is larger than the limit of "+strconv.FormatInt(g.cfg.MaxBodyBytes, 10)+" bytes")
		default:
			if isDialError(err) {
				rep.suspectUntil.Store(time.Now().Add(g.cfg.SuspectTime).UnixNano())
			}
			g.log.Warn("gateway: replica request failed", "route", rt.name, "version", v.name, "replica", rep.id, "err", err)
			fail(http.StatusBadGateway, "Bad gateway: the replica could not be reached")
		}
		return
	}
	defer resp.Body.Close()

	h := w.Header()
	for k, vv := range resp.Header {
		h[k] = vv
	}
	removeHopHeaders(h)
	setIDs(h)
	if rt.kind == modelship.RouteEndpoint {
		h.Set(DeploymentHeader, v.name)
	}
	status = resp.StatusCode
	if status == http.StatusInternalServerError {
		status = http.StatusBadGateway // azureml-fe: the model's 500 is a 502
	}
	w.WriteHeader(status)
	bp := copyBufPool.Get().(*[]byte)
	_, err = io.CopyBuffer(w, resp.Body, *bp)
	copyBufPool.Put(bp)
	if err != nil {
		if r.Context().Err() != nil {
			status = statusClientClosed
			return
		}
		if errors.Is(err, context.DeadlineExceeded) {
			status = http.StatusGatewayTimeout
		}
		g.log.Warn("gateway: response body copy failed", "route", rt.name, "version", v.name, "replica", rep.id, "err", err)
		// The status is already sent: abort the response so the caller
		// sees a truncated transfer rather than a short valid body.
		panic(http.ErrAbortHandler)
	}
}

// newOutbound builds the request to a replica.
func newOutbound(ctx context.Context, method string, rep *replica, path, rawQuery string, header http.Header, body []byte, stream io.ReadCloser, length int64) *http.Request {
	out := &http.Request{
		Method:     method,
		URL:        &url.URL{Scheme: rep.scheme, Host: rep.host, Path: path, RawQuery: rawQuery},
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     header,
		Host:       rep.host,
	}
	switch {
	case stream != nil:
		out.Body = stream
		out.ContentLength = length
	case len(body) > 0:
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.ContentLength = int64(len(body))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	return out.WithContext(ctx)
}

// outboundHeader copies the caller's headers for the replica, minus
// hop-by-hop headers and the credentials (the replica never sees keys or
// tokens). traceparent/tracestate and every other end-to-end header pass
// through.
func outboundHeader(r *http.Request) http.Header {
	h := make(http.Header, len(r.Header)+4)
	for k, vv := range r.Header {
		h[k] = vv
	}
	removeHopHeaders(h)
	delete(h, "Authorization")
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if prior := r.Header["X-Forwarded-For"]; len(prior) > 0 {
			ip = strings.Join(prior, ", ") + ", " + ip
		}
		h["X-Forwarded-For"] = []string{ip}
	}
	return h
}

func removeHopHeaders(h http.Header) {
	if c := h["Connection"]; len(c) > 0 {
		for _, v := range c {
			for f := range strings.SplitSeq(v, ",") {
				if f = textproto.TrimString(f); f != "" {
					delete(h, textproto.CanonicalMIMEHeaderKey(f))
				}
			}
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
}

// isDialError reports whether err happened while opening the connection,
// before any byte of the request was written.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func isMaxBytes(err error) bool {
	var mb *http.MaxBytesError
	return errors.As(err, &mb)
}

// newRequestID returns a random UUID (version 4 layout) from the runtime's
// per-thread generator: request ids need uniqueness, not secrecy.
func newRequestID() string {
	var b [16]byte
	a, c := rand.Uint64(), rand.Uint64()
	for i := range 8 {
		b[i] = byte(a >> (8 * i))
		b[8+i] = byte(c >> (8 * i))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	const hexd = "0123456789abcdef"
	var s [36]byte
	j := 0
	for i, x := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			s[j] = '-'
			j++
		}
		s[j], s[j+1] = hexd[x>>4], hexd[x&0xf]
		j += 2
	}
	return string(s[:])
}
