package modelserver_test

import (
	"context"
	"testing"

	"github.com/modelship/modelship/modelserver"
)

// TestServer_OnRequest checks the request hook: ids, route, status,
// bodies, and that traceparent reaches the runtime's ScoreRequest.Header.
func TestServer_OnRequest(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	var seenTP string
	rt := &fakeRuntime{score: func(ctx context.Context, req *modelserver.ScoreRequest) (*modelserver.ScoreResponse, error) {
		seenTP = req.Header.Get("traceparent")
		return echoScore(ctx, req)
	}}
	var events []modelserver.RequestEvent
	srv := newTestServer(rt, modelserver.ServerConfig{OnRequest: func(ev *modelserver.RequestEvent) {
		events = append(events, *ev)
	}})
	tests := []struct {
		method, target, body string
		header               map[string]string
		route                string
		status               int
		reqBody, respBody    string
	}{
		{"POST", "/score", `{"a":1}`, map[string]string{"traceparent": tp, "x-request-id": "rid", "x-ms-client-request-id": "cid"},
			"/score", 200, `{"a":1}`, `{"a":1}`},
		{"GET", "/", "", nil, "/", 200, "", ""},
		{"DELETE", "/score", "", nil, "/score", 405, "", ""},
		{"GET", "/nope", "", nil, "other", 404, "", ""},
	}
	for _, tt := range tests {
		call(t, srv, tt.method, tt.target, tt.body, tt.header)
	}
	if seenTP != tp {
		t.Errorf("runtime saw traceparent %q", seenTP)
	}
	if len(events) != len(tests) {
		t.Fatalf("%d events, want %d", len(events), len(tests))
	}
	for i, tt := range tests {
		ev := events[i]
		if ev.Route != tt.route || ev.Status != tt.status || string(ev.RequestBody) != tt.reqBody ||
			string(ev.ResponseBody) != tt.respBody || ev.Method != tt.method || ev.RequestID == "" || ev.Start.IsZero() || ev.Duration <= 0 {
			t.Errorf("%s %s: event %+v", tt.method, tt.target, ev)
		}
	}
	if ev := events[0]; ev.RequestID != "rid" || ev.ClientRequestID != "cid" || ev.Header.Get("traceparent") != tp {
		t.Errorf("ids/header of the first event: %+v", ev)
	}
}
