package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/hex"
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
)

const traceScore = `import json
def init():
    pass
def run(raw, request_headers):
    return {"traceparent": request_headers.get("Traceparent") or request_headers.get("traceparent")}
`

// otlpReceiver is a stand-in OTLP/HTTP collector: it counts the POSTs to
// /v1/traces and keeps their (protobuf) bodies.
type otlpReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	bodies [][]byte
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	r := &otlpReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
			http.NotFound(w, req)
			return
		}
		var rd io.Reader = req.Body
		if req.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			rd = zr
		}
		b, _ := io.ReadAll(rd)
		r.mu.Lock()
		r.bodies = append(r.bodies, b)
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK) // an empty ExportTraceServiceResponse
	}))
	t.Cleanup(r.Close)
	return r
}

// withTrace counts the exports that carry spans of the trace (its 16 raw
// bytes appear in the protobuf).
func (r *otlpReceiver) withTrace(traceID string) (all, matching int) {
	id, _ := hex.DecodeString(traceID)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.bodies {
		if bytes.Contains(b, id) {
			matching++
		}
	}
	return len(r.bodies), matching
}

// TestTracingEndToEnd: the caller's trace id reaches score.py through the
// gateway and the replica (each adding its span), spans of both processes
// are exported over OTLP/HTTP, and appInsightsEnabled makes the gateway
// write its request records.
func TestTracingEndToEnd(t *testing.T) {
	needPython(t)
	recv := newOTLPReceiver(t)
	// The server's environment is passed on to its replicas.
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", recv.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "200")
	s := startServer(t, "")
	dir := t.TempDir()
	registerDummy(t, s, dir)
	project(t, dir, traceScore, `{"computeType": "aks", "numReplicas": 1, "containerResourceRequirements": {"cpu": 0.1, "memoryInGB": 0.5},
		"appInsightsEnabled": true}`)
	s.deploy(t, dir, "tracesvc")
	key := s.keys(t, "tracesvc").PrimaryKey

	const traceID = "5bf92f3577b34da6a3ce929d0e0e4736"
	const caller = "00-" + traceID + "-00f067aa0ba902b7-01"
	var ids []string
	for i := range 3 {
		req, _ := http.NewRequest("POST", s.gateway+"/api/v1/service/tracesvc/score", strings.NewReader(`{"data": [1]}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("x-ms-client-request-id", "trace-client")
		if i == 0 {
			req.Header.Set("traceparent", caller)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			TraceParent string `json:"traceparent"`
		}
		json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("score: %d\n%s", resp.StatusCode, s.log)
		}
		parts := strings.Split(out.TraceParent, "-")
		if len(parts) != 4 || len(parts[1]) != 32 {
			t.Fatalf("score.py saw traceparent %q", out.TraceParent)
		}
		if i == 0 {
			if parts[1] != traceID {
				t.Fatalf("score.py saw trace id %s, want the caller's %s", parts[1], traceID)
			}
			if parts[2] == "00f067aa0ba902b7" {
				t.Errorf("score.py saw the caller's span id: the replica span is missing")
			}
		}
		ids = append(ids, resp.Header.Get("x-request-id"))
	}
	// Spans leave within the batch delay; stopping flushes the rest.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, n := recv.withTrace(traceID); n >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	all, matching := recv.withTrace(traceID)
	t.Logf("OTLP exports: %d, carrying the caller's trace: %d", all, matching)
	if matching < 2 {
		t.Errorf("want spans of the trace from the gateway and the replica (2 exports or more), got %d of %d", matching, all)
	}

	// Front-end records.
	files, _ := filepath.Glob(filepath.Join(s.dataDir, "telemetry", "*", "tracesvc", "gateway-*.jsonl"))
	if len(files) == 0 {
		t.Fatalf("no gateway records under %s", filepath.Join(s.dataDir, "telemetry"))
	}
	var recs []map[string]any
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			recs = append(recs, m)
		}
		fh.Close()
	}
	if len(recs) != 3 {
		t.Fatalf("%d gateway records, want 3: %v", len(recs), recs)
	}
	got := recs[0]
	if got["requestId"] != ids[0] || got["traceId"] != traceID || got["route"] != "tracesvc" || got["resultCode"] != 200.0 ||
		got["clientRequestId"] != "trace-client" || got["replica"] == "" || got["version"] != "tracesvc" {
		t.Errorf("first gateway record: %v", got)
	}
	if m, _ := got["models"].([]any); len(m) != 1 || m[0] != "m:1" {
		t.Errorf("models: %v", got["models"])
	}
	for _, r := range recs[1:] {
		if id, _ := r["traceId"].(string); len(id) != 32 || id == traceID {
			t.Errorf("a request without traceparent gets its own trace: %v", r)
		}
	}
	// The replica's records are still written beside them.
	if rf, _ := filepath.Glob(filepath.Join(s.dataDir, "telemetry", "*", "tracesvc", "requests-*.jsonl")); len(rf) == 0 {
		t.Error("no replica telemetry")
	}
}
