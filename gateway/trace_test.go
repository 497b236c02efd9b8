package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/gateway"
	"github.com/modelship/modelship/modelserver"
	"github.com/modelship/modelship/oip"
	"github.com/modelship/modelship/tracing"
)

const callerTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// spanByName returns the ended span called name.
func spanByName(t *testing.T, exp *tracetest.InMemoryExporter, name string) tracetest.SpanStub {
	t.Helper()
	for _, s := range exp.GetSpans() {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no span %q among %d", name, len(exp.GetSpans()))
	return tracetest.SpanStub{}
}

func attr(s tracetest.SpanStub, key string) string {
	for _, a := range s.Attributes {
		if string(a.Key) == key {
			return a.Value.String()
		}
	}
	return ""
}

func hasEvent(s tracetest.SpanStub, name string) bool {
	for _, e := range s.Events {
		if e.Name == name {
			return true
		}
	}
	return false
}

func TestTraceChildOfCallerAndForwarded(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	rep := newReplica(t, "r0")
	h := newHarness(t, gateway.Config{TracerProvider: tp})
	h.g.Update(&modelship.RouteTable{Routes: []modelship.Route{openService("svc", version("svc", 100, rep))}})

	if res := score(h, t, "service", "svc", map[string]string{"Traceparent": callerTraceparent}); res.status != 200 {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	gw := spanByName(t, exp, "gateway svc")
	caller := trace.SpanContextFromContext(tracing.Propagator.Extract(context.Background(),
		propagation.HeaderCarrier{"Traceparent": {callerTraceparent}}))
	if gw.Parent.SpanID() != caller.SpanID() || gw.SpanContext.TraceID() != caller.TraceID() {
		t.Fatalf("gateway span parent %s/%s, want the caller's %s/%s", gw.Parent.TraceID(), gw.Parent.SpanID(), caller.TraceID(), caller.SpanID())
	}
	for k, want := range map[string]string{"modelship.route": "svc", "modelship.version": "svc", "modelship.replica": "r0", "http.response.status_code": "200"} {
		if got := attr(gw, k); got != want {
			t.Errorf("attribute %s = %q, want %q", k, got, want)
		}
	}
	for _, e := range []string{"queue", "proxy"} {
		if !hasEvent(gw, e) {
			t.Errorf("no %q event", e)
		}
	}
	// The replica got the gateway's span as its parent, same trace.
	fwd := rep.lastHeader().Get("Traceparent")
	want := "00-" + caller.TraceID().String() + "-" + gw.SpanContext.SpanID().String() + "-01"
	if fwd != want {
		t.Fatalf("traceparent to the replica = %q, want %q", fwd, want)
	}
}

func TestTraceRootWithoutCaller(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	rep := newReplica(t, "r0")
	h := newHarness(t, gateway.Config{TracerProvider: tp})
	route := openService("svc", version("svc", 100, rep))
	route.Auth = modelship.AuthKey
	route.KeyHashes = []string{"00"}
	h.g.Update(&modelship.RouteTable{Routes: []modelship.Route{route}})
	if res := score(h, t, "service", "svc", nil); res.status != 401 {
		t.Fatalf("status %d", res.status)
	}
	gw := spanByName(t, exp, "gateway svc")
	if gw.Parent.IsValid() || !gw.SpanContext.IsValid() {
		t.Fatalf("want a root span, parent %v", gw.Parent)
	}
	if attr(gw, "http.response.status_code") != "401" || !hasEvent(gw, "auth") {
		t.Fatalf("401 span: %+v %+v", gw.Attributes, gw.Events)
	}
}

func TestNoTracingPassesTraceparentThrough(t *testing.T) {
	rep := newReplica(t, "r0")
	h := newHarness(t, gateway.Config{})
	h.g.Update(&modelship.RouteTable{Routes: []modelship.Route{openService("svc", version("svc", 100, rep))}})
	score(h, t, "service", "svc", map[string]string{"Traceparent": callerTraceparent, "Tracestate": "a=b"})
	if got := rep.lastHeader(); got.Get("Traceparent") != callerTraceparent || got.Get("Tracestate") != "a=b" {
		t.Fatalf("trace headers changed: %v", got)
	}
}

// traceRuntime is a modelserver.Runtime that remembers the traceparent
// its Score call saw.
type traceRuntime struct {
	mu   sync.Mutex
	seen string
}

func (f *traceRuntime) Score(_ context.Context, req *modelserver.ScoreRequest) (*modelserver.ScoreResponse, error) {
	f.mu.Lock()
	f.seen = req.Header.Get("Traceparent")
	f.mu.Unlock()
	return &modelserver.ScoreResponse{Status: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(`1`), ExecTime: time.Millisecond}, nil
}
func (f *traceRuntime) Swagger(context.Context, string) ([]byte, error) {
	return nil, modelserver.ErrNoSwagger
}
func (f *traceRuntime) Models() []modelserver.ModelMetadata { return nil }
func (f *traceRuntime) Infer(context.Context, string, string, *oip.InferRequest) (*oip.InferResponse, error) {
	return nil, &modelserver.InferError{Status: 404, Message: "none"}
}
func (f *traceRuntime) Ready() bool                 { return true }
func (f *traceRuntime) Busy() (int, int)            { return 0, 0 }
func (f *traceRuntime) Close(context.Context) error { return nil }

// TestTraceGatewayToReplica: caller → gateway span → replica "score" span
// → the runtime (score.py) sees the replica span's traceparent.
func TestTraceGatewayToReplica(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	rt := &traceRuntime{}
	srv := httptest.NewServer(modelserver.NewServer(rt, modelserver.ServerConfig{TracerProvider: tp}))
	t.Cleanup(srv.Close)
	h := newHarness(t, gateway.Config{TracerProvider: tp})
	v := version("svc", 100)
	v.Replicas = []modelship.ReplicaEndpoint{{ID: "svc-0", URL: srv.URL, Ready: true}}
	h.g.Update(&modelship.RouteTable{Routes: []modelship.Route{openService("svc", v)}})
	if res := score(h, t, "service", "svc", map[string]string{"Traceparent": callerTraceparent}); res.status != 200 {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	gw := spanByName(t, exp, "gateway svc")
	sc := spanByName(t, exp, "score")
	if sc.Parent.SpanID() != gw.SpanContext.SpanID() || sc.SpanContext.TraceID() != gw.SpanContext.TraceID() {
		t.Fatalf("score span's parent %s, want the gateway span %s", sc.Parent.SpanID(), gw.SpanContext.SpanID())
	}
	if !strings.HasPrefix(callerTraceparent, "00-"+sc.SpanContext.TraceID().String()) {
		t.Fatalf("trace id %s is not the caller's", sc.SpanContext.TraceID())
	}
	if attr(sc, "modelship.run_ms") != "1" || attr(sc, "http.response.status_code") != "200" {
		t.Errorf("score span attributes %+v", sc.Attributes)
	}
	rt.mu.Lock()
	seen := rt.seen
	rt.mu.Unlock()
	if want := "00-" + sc.SpanContext.TraceID().String() + "-" + sc.SpanContext.SpanID().String() + "-01"; seen != want {
		t.Fatalf("runtime saw traceparent %q, want the score span's %q", seen, want)
	}
}

func TestGatewayTelemetryRecords(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	rep := newReplica(t, "r0")
	h := newHarness(t, gateway.Config{TelemetryDir: dir, Registry: reg})
	on := openService("svc", version("svc", 100, rep))
	on.AppInsights = true
	on.Versions[0].Models = []string{"m:1"}
	off := openService("quiet", version("quiet", 100, rep))
	h.g.Update(&modelship.RouteTable{Routes: []modelship.Route{on, off}})
	for i := range 3 {
		hdr := map[string]string{"x-ms-client-request-id": "c" + string(rune('0'+i))}
		if i == 0 {
			hdr["Traceparent"] = callerTraceparent
		}
		if res := score(h, t, "service", "svc", hdr); res.status != 200 {
			t.Fatalf("status %d", res.status)
		}
	}
	score(h, t, "service", "quiet", nil)
	// Removing App Insights from the route closes (flushes) its writer.
	on.AppInsights = false
	h.g.Update(&modelship.RouteTable{Routes: []modelship.Route{on, off}})
	var lines []map[string]any
	deadline := time.Now().Add(5 * time.Second)
	for len(lines) < 3 && time.Now().Before(deadline) {
		lines = nil
		files, _ := filepath.Glob(filepath.Join(dir, "ws", "svc", "gateway-*.jsonl"))
		for _, f := range files {
			fh, err := os.Open(f)
			if err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(fh)
			for sc.Scan() {
				var m map[string]any
				if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
					t.Fatalf("bad line %s: %v", sc.Text(), err)
				}
				lines = append(lines, m)
			}
			fh.Close()
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(lines) != 3 {
		t.Fatalf("%d records, want 3", len(lines))
	}
	first := lines[0]
	for k, want := range map[string]any{"workspaceName": "ws", "route": "svc", "version": "svc", "replica": "r0",
		"resultCode": 200.0, "clientRequestId": "c0", "traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "routeKind": "service"} {
		if first[k] != want {
			t.Errorf("%s = %v, want %v", k, first[k], want)
		}
	}
	if first["requestId"] == "" || first["durationMs"] == nil || first["queueMs"] == nil {
		t.Errorf("record %v", first)
	}
	if m, _ := first["models"].([]any); len(m) != 1 || m[0] != "m:1" {
		t.Errorf("models %v", first["models"])
	}
	if _, err := os.Stat(filepath.Join(dir, "ws", "quiet")); !os.IsNotExist(err) {
		t.Error("records written for a route without App Insights")
	}
	if n := counterValue(t, reg, "modelship_gateway_telemetry_records_total"); n != 3 {
		t.Errorf("records counter %v", n)
	}
}

// counterValue returns the value of a counter without labels.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// discardExporter is a span exporter that drops everything.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// BenchmarkProxyObserved is BenchmarkProxy's gateway case with request
// telemetry and/or tracing (batch export to a discarding exporter) on.
func BenchmarkProxyObserved(b *testing.B) {
	body := []byte(`{"result":[0.5]}`)
	rep := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	defer rep.Close()
	for _, c := range []struct {
		name             string
		telemetry, trace bool
	}{{"Off", false, false}, {"Telemetry", true, false}, {"Tracing", false, true}, {"Both", true, true}} {
		b.Run(c.name, func(b *testing.B) {
			cfg := gateway.Config{AutoscaleInterval: -1}
			if c.telemetry {
				cfg.TelemetryDir = b.TempDir()
			}
			if c.trace {
				tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discardExporter{}))
				defer tp.Shutdown(context.Background())
				cfg.TracerProvider = tp
			}
			g := gateway.New(cfg)
			v := modelship.RouteVersion{Name: "svc", TrafficPercent: 100, MaxConcurrentRequestsPerContainer: 64,
				Replicas: []modelship.ReplicaEndpoint{{ID: "r", URL: rep.URL, Ready: true}}}
			g.Update(&modelship.RouteTable{Routes: []modelship.Route{{Kind: modelship.RouteService, Workspace: "ws", Name: "svc",
				Auth: modelship.AuthNone, AppInsights: c.telemetry, Versions: []modelship.RouteVersion{v}}}})
			front := httptest.NewServer(g)
			tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
			client := &http.Client{Transport: tr}
			defer func() {
				tr.CloseIdleConnections()
				front.Close()
				g.Close()
			}()
			url := front.URL + "/api/v1/service/svc/score"
			b.ReportAllocs()
			for b.Loop() {
				req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"data":[[1.0,2.0,3.0,4.0]]}`))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Traceparent", callerTraceparent)
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
}
