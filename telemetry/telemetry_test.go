package telemetry

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelship/modelship/modelserver"
)

var hour = time.Date(2024, 3, 9, 17, 4, 5, 0, time.UTC)

func newWriter(t *testing.T, cfg Config) *Writer {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.Workspace == "" {
		cfg.Workspace, cfg.Service = "ws", "svc"
	}
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(context.Background()) })
	return w
}

func closeWriter(t *testing.T, w *Writer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// files returns the names and line counts of the service's files.
func files(t *testing.T, dir string) map[string]int {
	t.Helper()
	out := map[string]int{}
	entries, _ := os.ReadDir(filepath.Join(dir, "ws", "svc"))
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, "ws", "svc", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 0 && b[len(b)-1] != '\n' {
			t.Fatalf("%s ends with a partial line", e.Name())
		}
		out[e.Name()] = strings.Count(string(b), "\n")
	}
	return out
}

func TestRecordFields(t *testing.T) {
	dir := t.TempDir()
	w := newWriter(t, Config{Dir: dir, Workspace: "ws", Service: "svc", Models: []string{"m:1"}, Replica: "svc-0"})
	w.Record(&Record{Time: hour, Duration: 1500 * time.Microsecond, Method: "POST", Path: "/score", RequestID: "r1",
		ClientRequestID: "c1", TraceParent: "00-abc-def-01", Status: 200, Input: []byte(`{"data": [1]}`), Prediction: []byte(`[2]`)})
	w.Record(&Record{Time: hour, Method: "POST", Path: "/score", RequestID: "r2", Status: 502, Input: make([]byte, MaxPayload+1)})
	closeWriter(t, w)
	b, err := os.ReadFile(filepath.Join(dir, "ws/svc/requests-20240309-17.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines", len(lines))
	}
	var got map[string]any
	json.Unmarshal([]byte(lines[0]), &got)
	want := map[string]any{"requestId": "r1", "clientRequestId": "c1", "traceparent": "00-abc-def-01", "workspaceName": "ws",
		"serviceName": "svc", "containerId": "svc-0", "resultCode": 200.0, "success": true, "durationMs": 1.5,
		"name": "/score", "httpMethod": "POST"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if fmt.Sprint(got["models"]) != "[m:1]" || fmt.Sprint(got["input"]) != "map[data:[1]]" || fmt.Sprint(got["prediction"]) != "[2]" {
		t.Errorf("models/input/prediction: %s", lines[0])
	}
	got = nil
	json.Unmarshal([]byte(lines[1]), &got)
	if _, ok := got["input"]; ok || got["success"] != false {
		t.Errorf("payload over 64 KB kept or success wrong: %.200s", lines[1])
	}
}

func TestRotation(t *testing.T) {
	tests := []struct {
		name  string
		max   int64
		times []time.Time
		want  map[string]int
	}{
		{"by hour", 0, []time.Time{hour, hour.Add(time.Minute), hour.Add(time.Hour), hour.Add(25 * time.Hour)},
			map[string]int{"requests-20240309-17.jsonl": 2, "requests-20240309-18.jsonl": 1, "requests-20240310-18.jsonl": 1}},
		{"by size", 700, []time.Time{hour, hour, hour, hour, hour, hour},
			map[string]int{"requests-20240309-17.jsonl": 2, "requests-20240309-17.1.jsonl": 2, "requests-20240309-17.2.jsonl": 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			// A tiny flush interval writes each record in its own batch.
			w := newWriter(t, Config{Dir: dir, MaxFileBytes: tt.max, FlushInterval: time.Millisecond, MaxAge: -1})
			for i, tm := range tt.times {
				w.Record(&Record{Time: tm, Path: "/score", RequestID: strings.Repeat("r", 150), Status: 200})
				// Each record in a batch of its own: wait until it is
				// written (a sleep was not enough on a loaded machine).
				deadline := time.Now().Add(5 * time.Second)
				for w.Written() < uint64(i+1) && time.Now().Before(deadline) {
					time.Sleep(time.Millisecond)
				}
			}
			closeWriter(t, w)
			if got := files(t, dir); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("files = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestOldFilesDeleted(t *testing.T) {
	dir := t.TempDir()
	svc := filepath.Join(dir, "ws", "svc")
	os.MkdirAll(svc, 0o755)
	old := filepath.Join(svc, "requests-20200101-00.jsonl")
	keep := filepath.Join(svc, "notes.txt")
	for _, p := range []string{old, keep} {
		os.WriteFile(p, []byte("{}\n"), 0o644)
		os.Chtimes(p, time.Now().Add(-30*24*time.Hour), time.Now().Add(-30*24*time.Hour))
	}
	w := newWriter(t, Config{Dir: dir})
	closeWriter(t, w)
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Error("old telemetry file kept")
	}
	if _, err := os.Stat(keep); err != nil {
		t.Error("a file that is not telemetry was deleted")
	}
}

func TestBoundedBufferDrops(t *testing.T) {
	w := newWriter(t, Config{BufferSize: 1, MaxAge: -1})
	const n = 20000
	start := time.Now()
	accepted := 0
	for range n {
		if w.Record(&Record{Time: hour, Path: "/score", Status: 200}) {
			accepted++
		}
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("Record blocked: %v", time.Since(start))
	}
	closeWriter(t, w)
	if w.Dropped() == 0 || w.Written()+w.Dropped() != n || w.Written() != uint64(accepted) {
		t.Fatalf("written %d dropped %d accepted %d", w.Written(), w.Dropped(), accepted)
	}
	if w.Record(&Record{Time: hour}) {
		t.Fatal("Record accepted after Close")
	}
}

func TestObserve(t *testing.T) {
	tests := []struct {
		name     string
		ev       modelserver.RequestEvent
		payloads bool
		want     string // "" means no record
	}{
		{"health probe skipped", modelserver.RequestEvent{Route: "/", Path: "/"}, true, ""},
		{"metrics skipped", modelserver.RequestEvent{Route: "/metrics", Path: "/metrics"}, true, ""},
		{"score with payloads", modelserver.RequestEvent{Route: "/score", Path: "/score", RequestID: "a", Status: 200,
			Header: http.Header{"Traceparent": {"00-t-s-01"}}, RequestBody: []byte(`{"x":1}`), ResponseBody: []byte(`[1]`)},
			true, `"a" 00-t-s-01 {"x":1} [1]`},
		{"score without payloads", modelserver.RequestEvent{Route: "/score", Path: "/score", RequestID: "b", Status: 200,
			RequestBody: []byte(`{"x":1}`), ResponseBody: []byte(`[1]`)}, false, `"b"   `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			w := newWriter(t, Config{Dir: dir, MaxAge: -1})
			tt.ev.Start = hour
			w.Observe(&tt.ev, tt.payloads)
			closeWriter(t, w)
			b, _ := os.ReadFile(filepath.Join(dir, "ws/svc/requests-20240309-17.jsonl"))
			if tt.want == "" {
				if len(b) != 0 {
					t.Fatalf("unexpected record %s", b)
				}
				return
			}
			var l line
			if err := json.Unmarshal(b, &l); err != nil {
				t.Fatalf("%v: %s", err, b)
			}
			got := fmt.Sprintf("%q %s %s %s", l.RequestID, l.TraceParent, l.Input, l.Prediction)
			if got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}
