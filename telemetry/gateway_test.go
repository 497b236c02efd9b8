package telemetry

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestGatewayRecord(t *testing.T) {
	dir := t.TempDir()
	w := newWriter(t, Config{Dir: dir, Workspace: "ws", Service: "svc", FilePrefix: "gateway", MaxAge: -1})
	if !w.RecordGateway(&GatewayRecord{Time: hour, Duration: 2500 * time.Microsecond, QueueTime: 500 * time.Microsecond,
		Method: "POST", Path: "/api/v1/service/svc/score", RequestID: "r1", ClientRequestID: "c1",
		TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", Kind: "service", Version: "svc", Models: []string{"m:1"},
		Replica: "svc-0", Status: 200}) {
		t.Fatal("record refused")
	}
	closeWriter(t, w)
	b, err := os.ReadFile(filepath.Join(dir, "ws/svc/gateway-20240309-17.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(string(b))), &got); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	want := map[string]any{"requestId": "r1", "clientRequestId": "c1", "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
		"workspaceName": "ws", "route": "svc", "routeKind": "service", "version": "svc", "replica": "svc-0",
		"resultCode": 200.0, "success": true, "durationMs": 2.5, "queueMs": 0.5, "httpMethod": "POST"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if m, _ := got["models"].([]any); len(m) != 1 || m[0] != "m:1" {
		t.Errorf("models = %v", got["models"])
	}
}
