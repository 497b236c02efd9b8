package modelserver_test

import (
	"context"
	"testing"

	"github.com/modelship/modelship/modelserver"
)

func TestDeferred(t *testing.T) {
	d := &modelserver.Deferred{}
	s := newTestServer(d, modelserver.ServerConfig{})
	h := s.Handler()
	before := []struct {
		method, target, body string
		want                 int
	}{
		{"GET", "/", "", 200},
		{"GET", "/v2/health/live", "", 200},
		{"GET", "/v2/health/ready", "", 503},
		{"POST", "/score", "{}", 503},
		{"GET", "/swagger.json", "", 503},
		{"GET", "/v2/models/digits", "", 503},
		{"POST", "/v2/models/digits/infer", inferBody, 503},
		{"GET", "/metrics", "", 200},
	}
	for _, tt := range before {
		if w := call(t, h, tt.method, tt.target, tt.body, nil); w.Code != tt.want {
			t.Errorf("before Set: %s %s = %d %s, want %d", tt.method, tt.target, w.Code, w.Body, tt.want)
		}
	}

	rt := &fakeRuntime{models: testModels}
	if !d.Set(rt) {
		t.Fatal("Set refused before Close")
	}
	after := []struct {
		method, target, body string
		want                 int
	}{
		{"GET", "/v2/health/ready", "", 200},
		{"POST", "/score", "{}", 200},
		{"GET", "/swagger.json", "", 200},
		{"GET", "/v2/models/digits", "", 200},
		{"GET", "/v2/models/nope", "", 404},
		{"POST", "/v2/models/digits/infer", inferBody, 200},
	}
	for _, tt := range after {
		if w := call(t, h, tt.method, tt.target, tt.body, nil); w.Code != tt.want {
			t.Errorf("after Set: %s %s = %d %s, want %d", tt.method, tt.target, w.Code, w.Body, tt.want)
		}
	}
	rt.active.Store(2)
	if a, _ := d.Busy(); a != 2 {
		t.Errorf("Busy = %d, want 2", a)
	}
	if err := d.Close(context.Background()); err != nil || !rt.closed.Load() {
		t.Errorf("Close = %v, runtime closed %v", err, rt.closed.Load())
	}
}

func TestDeferred_SetAfterClose(t *testing.T) {
	d := &modelserver.Deferred{}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	rt := &fakeRuntime{}
	if d.Set(rt) {
		t.Error("Set accepted after Close")
	}
	if d.Ready() || rt.closed.Load() {
		t.Errorf("ready %v, runtime closed by Deferred %v", d.Ready(), rt.closed.Load())
	}
}
