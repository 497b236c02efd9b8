package gateway

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/modelship/modelship/telemetry"
	"github.com/modelship/modelship/tracing"
)

// Span attribute keys of the gateway span.
const (
	attrRoute     = attribute.Key("modelship.route")
	attrRouteKind = attribute.Key("modelship.route.kind")
	attrWorkspace = attribute.Key("modelship.workspace")
	attrVersion   = attribute.Key("modelship.version")
	attrReplica   = attribute.Key("modelship.replica")
	attrRequestID = attribute.Key("modelship.request_id")
	attrQueueMS   = attribute.Key("modelship.queue_ms")
	attrProxyMS   = attribute.Key("modelship.proxy_ms")
	attrAuthMS    = attribute.Key("modelship.auth_ms")
	attrStatus    = attribute.Key("http.response.status_code")
	attrMethod    = attribute.Key("http.request.method")
	attrPath      = attribute.Key("url.path")
)

// reqTrace is the span of one request routed to a known route. Its methods
// do nothing on a nil receiver, which is what requests get when tracing is
// off.
type reqTrace struct {
	span   trace.Span
	ctx    context.Context // carries span
	status int             // answered, set before the span ends
}

// startTrace starts the span "gateway <route>" as a child of the caller's
// traceparent, if any, else as a root.
func (g *Gateway) startTrace(r *http.Request, rt *route) *reqTrace {
	parent := tracing.Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := g.tracer.Start(parent, "gateway "+rt.name,
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(
			attrRoute.String(rt.name), attrRouteKind.String(rt.kind), attrWorkspace.String(rt.workspace),
			attrMethod.String(r.Method), attrPath.String(r.URL.Path),
		))
	return &reqTrace{span: span, ctx: ctx}
}

// authenticated records the time authentication took.
func (t *reqTrace) authenticated(d time.Duration, ok bool) {
	if t == nil {
		return
	}
	t.span.AddEvent("auth", trace.WithAttributes(attrAuthMS.Float64(ms(d)), attribute.Bool("modelship.auth.ok", ok)))
}

// routed records the version chosen.
func (t *reqTrace) routed(v *version) {
	if t == nil {
		return
	}
	t.span.SetAttributes(attrVersion.String(v.name))
}

// queued records the wait for a replica slot.
func (t *reqTrace) queued(d time.Duration, rep *replica) {
	if t == nil {
		return
	}
	attrs := []attribute.KeyValue{attrQueueMS.Float64(ms(d))}
	if rep != nil {
		attrs = append(attrs, attrReplica.String(rep.id))
	}
	t.span.AddEvent("queue", trace.WithAttributes(attrs...))
	t.span.SetAttributes(attrs...)
}

// retried records a connection failure retried on another replica.
func (t *reqTrace) retried(rep *replica, err error) {
	if t == nil {
		return
	}
	t.span.AddEvent("retry", trace.WithAttributes(attrReplica.String(rep.id), attribute.String("error", err.Error())))
}

// proxied records the replica's answer (its headers) or failure.
func (t *reqTrace) proxied(d time.Duration, rep *replica, err error) {
	if t == nil {
		return
	}
	attrs := []attribute.KeyValue{attrProxyMS.Float64(ms(d)), attrReplica.String(rep.id)}
	if err != nil {
		attrs = append(attrs, attribute.String("error", err.Error()))
	}
	t.span.AddEvent("proxy", trace.WithAttributes(attrs...))
	t.span.SetAttributes(attrs[:2]...)
}

// inject writes the gateway span's context into h as traceparent (and
// tracestate), replacing the caller's.
func (t *reqTrace) inject(h http.Header) {
	if t == nil {
		return
	}
	tracing.Propagator.Inject(t.ctx, propagation.HeaderCarrier(h))
}

// end ends the span with the status answered (0: not known, 499: the
// caller went away).
func (t *reqTrace) end(status int) {
	if t == nil {
		return
	}
	if status != 0 {
		t.span.SetAttributes(attrStatus.Int(status))
	}
	if status >= 500 || status == statusClientClosed {
		t.span.SetStatus(codes.Error, http.StatusText(status))
	}
	t.span.End()
}

// traceID returns the request's trace id: the gateway span's, else the
// caller's traceparent's.
func (t *reqTrace) traceID(r *http.Request) string {
	if t != nil {
		if sc := t.span.SpanContext(); sc.HasTraceID() {
			return sc.TraceID().String()
		}
	}
	if tp := r.Header["Traceparent"]; len(tp) > 0 {
		return tracing.TraceID(tp[0])
	}
	return ""
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// recordTelemetry writes the front-end record of one request when the
// route has App Insights on. It never blocks.
func (g *Gateway) recordTelemetry(tw *telemetry.Writer, r *http.Request, rt *route, v *version, rep *replica,
	t *reqTrace, start time.Time, queue time.Duration, status int, reqID, clientReqID string) {
	rec := &telemetry.GatewayRecord{
		Time: start, Duration: time.Since(start), QueueTime: queue, Method: r.Method, Path: r.URL.Path,
		RequestID: reqID, ClientRequestID: clientReqID, TraceID: t.traceID(r),
		Kind: rt.kind, Version: v.name, Models: v.models, Status: status,
	}
	if rep != nil {
		rec.Replica = rep.id
	}
	tw.RecordGateway(rec) // a refusal is counted by the writer
}

// gwTelemetry owns the front end's telemetry writers, one per route with
// App Insights on; they outlive route tables.
type gwTelemetry struct {
	dir string
	log interface {
		Warn(msg string, args ...any)
	}

	mu      sync.Mutex
	writers map[string]*telemetry.Writer // by workspace/route
	closed  bool                         // after Gateway.Close: no new writers
	closing map[*telemetry.Writer]bool   // retired, flushing
	// counts of the writers closed so far
	written, bufferDrops, writeErrors atomic.Uint64
	wg                                sync.WaitGroup
}

func telemetryKey(workspace, route string) string { return workspace + "\x00" + route }

// writer returns the route's writer, creating it; nil when telemetry has
// no directory or the writer cannot be created (logged).
func (gt *gwTelemetry) writer(workspace, route string) *telemetry.Writer {
	if gt.dir == "" {
		return nil
	}
	k := telemetryKey(workspace, route)
	gt.mu.Lock()
	defer gt.mu.Unlock()
	if gt.closed {
		return nil
	}
	if w := gt.writers[k]; w != nil {
		return w
	}
	w, err := telemetry.New(telemetry.Config{Dir: gt.dir, Workspace: workspace, Service: route, FilePrefix: "gateway"})
	if err != nil {
		gt.log.Warn("gateway: request telemetry off for route", "route", route, "err", err)
		return nil
	}
	gt.writers[k] = w
	return w
}

// retain closes, in the background, the writers of routes not in live.
func (gt *gwTelemetry) retain(live map[string]bool) {
	gt.mu.Lock()
	defer gt.mu.Unlock()
	for k, w := range gt.writers {
		if !live[k] {
			delete(gt.writers, k)
			gt.closeLocked(w)
		}
	}
}

func (gt *gwTelemetry) closeLocked(w *telemetry.Writer) {
	gt.closing[w] = true
	gt.wg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := w.Close(ctx); err != nil {
			gt.log.Warn("gateway: closing request telemetry", "err", err)
		}
		gt.mu.Lock()
		delete(gt.closing, w)
		gt.written.Add(w.Written())
		gt.bufferDrops.Add(w.BufferDrops())
		gt.writeErrors.Add(w.WriteErrors())
		gt.mu.Unlock()
	})
}

// close flushes and closes every writer.
func (gt *gwTelemetry) close() {
	gt.mu.Lock()
	gt.closed = true
	gt.mu.Unlock()
	gt.retain(nil)
	gt.wg.Wait()
}

// sum adds f over the live, closing and closed writers.
func (gt *gwTelemetry) sum(f func(*telemetry.Writer) uint64, closed *atomic.Uint64) float64 {
	gt.mu.Lock()
	defer gt.mu.Unlock()
	n := closed.Load()
	for _, w := range gt.writers {
		n += f(w)
	}
	for w := range gt.closing {
		n += f(w)
	}
	return float64(n)
}

// collectors returns the front end's telemetry and tracing counters.
func (gt *gwTelemetry) collectors() []prometheus.Collector {
	const dropHelp = "Front-end request records dropped: buffer full or closed (scoring never waits), or write errors."
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "modelship_gateway_telemetry_records_total",
			Help: "Front-end request records written (routes with appInsightsEnabled).",
		}, func() float64 { return gt.sum((*telemetry.Writer).Written, &gt.written) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "modelship_gateway_telemetry_dropped_total", Help: dropHelp,
			ConstLabels: prometheus.Labels{"reason": "buffer_full"},
		}, func() float64 { return gt.sum((*telemetry.Writer).BufferDrops, &gt.bufferDrops) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "modelship_gateway_telemetry_dropped_total", Help: dropHelp,
			ConstLabels: prometheus.Labels{"reason": "write_error"},
		}, func() float64 { return gt.sum((*telemetry.Writer).WriteErrors, &gt.writeErrors) }),
	}
}
