// Package tracing sets up OpenTelemetry tracing for modelship's processes
// (the server with its front end, and the replicas).
//
// Setup reads the standard OTLP environment variables:
//
//	OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT   collector address (turns export on)
//	OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL   "http/protobuf" (default) or "grpc"
//	OTEL_EXPORTER_OTLP_HEADERS, ..._TIMEOUT, ..._INSECURE, ...            read by the exporters themselves
//	OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES                           override the resource
//	OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG                          sampling (default parentbased_always_on)
//	OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none                   turn export off
//
// With an endpoint, spans are exported through a batch span processor
// whose queue is bounded: when the collector is slow or down, spans are
// dropped (counted in Dropped) and requests never wait. Without one, no SDK
// is installed: Provider returns nil and instrumented code only passes the
// caller's traceparent on, at near-zero cost.
//
// The W3C trace-context propagator (traceparent, tracestate) is installed
// as the global propagator in every case.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Instrumentation scope names of modelship's tracers.
const (
	ScopeGateway     = "github.com/modelship/modelship/gateway"
	ScopeModelServer = "github.com/modelship/modelship/modelserver"
)

// MaxQueueSize bounds the spans waiting to be exported; spans beyond it
// are dropped.
const MaxQueueSize = 4096

// Propagator is the W3C trace-context propagator (traceparent and
// tracestate) that the gateway and the replicas use.
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

var (
	mu       sync.Mutex
	provider *sdktrace.TracerProvider // nil: tracing is off
	dropped  atomic.Uint64
)

// Provider returns the tracer provider that Setup installed, or nil when
// spans are not exported (no endpoint configured, or after shutdown).
func Provider() trace.TracerProvider {
	mu.Lock()
	defer mu.Unlock()
	if provider == nil {
		return nil
	}
	return provider
}

// Dropped returns the number of spans dropped because the export queue
// was full.
func Dropped() uint64 { return dropped.Load() }

// DroppedCollector returns a Prometheus counter of Dropped named
// modelship_<subsystem>_spans_dropped_total.
func DroppedCollector(subsystem string) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: "modelship", Subsystem: subsystem, Name: "spans_dropped_total",
		Help: "Trace spans dropped because the OTLP export queue was full (requests never wait for export).",
	}, func() float64 { return float64(dropped.Load()) })
}

// Endpoint returns the configured OTLP trace endpoint, or "" when export
// is off.
func Endpoint() string {
	if v := strings.ToLower(strings.TrimSpace(os.Getenv("OTEL_SDK_DISABLED"))); v == "true" {
		return ""
	}
	if v := strings.ToLower(strings.TrimSpace(os.Getenv("OTEL_TRACES_EXPORTER"))); v == "none" {
		return ""
	}
	if v := strings.TrimSpace(os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")); v != "" {
		return v
	}
	return strings.TrimSpace(os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT"))
}

// Protocol returns the configured OTLP protocol: "grpc" or
// "http/protobuf" (the default, also for "http/json", which the Go
// exporters do not implement).
func Protocol() string {
	p := strings.TrimSpace(os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"))
	if p == "" {
		p = strings.TrimSpace(os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL"))
	}
	if strings.ToLower(p) == "grpc" {
		return "grpc"
	}
	return "http/protobuf"
}

// Setup installs the W3C trace-context propagator and, when an OTLP
// endpoint is configured, a tracer provider exporting spans of the service
// serviceName (plus attrs, e.g. the replica's id) to it. shutdown flushes
// the spans still queued, within ctx, and uninstalls the provider; it is
// never nil and may be called more than once.
func Setup(ctx context.Context, serviceName string, attrs ...attribute.KeyValue) (shutdown func(context.Context) error, err error) {
	otel.SetTextMapPropagator(Propagator)
	noop := func(context.Context) error { return nil }
	endpoint := Endpoint()
	if endpoint == "" {
		return noop, nil
	}
	var exp sdktrace.SpanExporter
	switch Protocol() {
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	default:
		exp, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return noop, fmt.Errorf("otlp trace exporter for %s: %w", endpoint, err)
	}
	base := resource.NewSchemaless(append([]attribute.KeyValue{attribute.String("service.name", serviceName)}, attrs...)...)
	res, rerr := resource.Merge(base, resource.Environment()) // OTEL_* variables win
	if rerr != nil {
		res = base
	}
	pending := new(atomic.Int64)
	// The processor's own queue has headroom: dropCounter drops first, and
	// counts it.
	bsp := sdktrace.NewBatchSpanProcessor(&countingExporter{SpanExporter: exp, pending: pending},
		sdktrace.WithMaxQueueSize(2*MaxQueueSize))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithSpanProcessor(&dropCounter{SpanProcessor: bsp, pending: pending}),
	)
	mu.Lock()
	provider = tp
	mu.Unlock()
	otel.SetTracerProvider(tp)
	var once sync.Once
	shutdown = func(ctx context.Context) error {
		var err error
		once.Do(func() {
			mu.Lock()
			if provider == tp {
				provider = nil
			}
			mu.Unlock()
			if e := tp.Shutdown(ctx); e != nil {
				err = fmt.Errorf("flushing spans: %w", e)
			}
		})
		return err
	}
	return shutdown, nil
}

// dropCounter bounds the spans waiting for export at MaxQueueSize and
// counts those it drops (the SDK's batch processor drops silently): a span
// is pending from OnEnd until the exporter is handed it.
type dropCounter struct {
	sdktrace.SpanProcessor
	pending *atomic.Int64
}

// OnEnd passes a sampled span to the batch processor, or drops it when
// MaxQueueSize spans are already waiting.
func (d *dropCounter) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	if d.pending.Add(1) > MaxQueueSize {
		d.pending.Add(-1)
		dropped.Add(1)
		return
	}
	d.SpanProcessor.OnEnd(s)
}

// countingExporter marks the spans it is handed as no longer pending.
type countingExporter struct {
	sdktrace.SpanExporter
	pending *atomic.Int64
}

// ExportSpans exports spans.
func (e *countingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	e.pending.Add(-int64(len(spans)))
	return e.SpanExporter.ExportSpans(ctx, spans)
}

// errNoProvider is returned by ForceFlush when tracing is off.
var errNoProvider = errors.New("tracing: no exporter configured")

// ForceFlush exports the queued spans now (tests, and before a process
// exits abruptly).
func ForceFlush(ctx context.Context) error {
	mu.Lock()
	tp := provider
	mu.Unlock()
	if tp == nil {
		return errNoProvider
	}
	return tp.ForceFlush(ctx)
}

// TraceID returns the 32-hex-digit trace id of a W3C traceparent header
// value ("00-<trace-id>-<parent-id>-<flags>"), or "" when it is malformed.
func TraceID(traceparent string) string {
	if len(traceparent) < 55 || traceparent[2] != '-' || traceparent[35] != '-' {
		return ""
	}
	id := traceparent[3:35]
	for i := range len(id) {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return ""
		}
	}
	if id == "00000000000000000000000000000000" {
		return ""
	}
	return id
}
