package modelserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/modelship/modelship/modelserver"
	"github.com/modelship/modelship/oip"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// quietLogger discards log output.
var quietLogger = slog.New(slog.DiscardHandler)

// newTestServer returns a Server over rt with a short timeout and a small
// body limit.
func newTestServer(rt modelserver.Runtime, cfg modelserver.ServerConfig) *modelserver.Server {
	if cfg.ScoringTimeout == 0 {
		cfg.ScoringTimeout = 50 * time.Millisecond
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 128
	}
	cfg.Logger = quietLogger
	cfg.Version = "test"
	return modelserver.NewServer(rt, cfg)
}

// call sends one request through the handler.
func call(t *testing.T, h http.Handler, method, target, body string, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, r)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

var testModels = []modelserver.ModelMetadata{{
	Name: "digits", Versions: []string{"1"}, Platform: "onnx_onnxv1",
	Inputs:  []oip.TensorMetadata{{Name: "input", Datatype: "FP32", Shape: []int64{-1, 64}}},
	Outputs: []oip.TensorMetadata{{Name: "probabilities", Datatype: "FP32", Shape: []int64{-1, 10}}},
}}

func TestServer_Routes(t *testing.T) {
	long := strings.Repeat("a", 101)
	max := strings.Repeat("a", 100)
	tests := []struct {
		name       string
		rt         *fakeRuntime
		cfg        modelserver.ServerConfig
		method     string
		target     string
		body       string
		header     map[string]string
		wantStatus int
		wantBody   string            // exact body, when not empty
		wantHeader map[string]string // exact values; "" means absent
	}{
		{name: "HealthOK", method: "GET", target: "/", wantStatus: 200, wantBody: "Healthy"},
		{name: "HealthPost405", method: "POST", target: "/", wantStatus: 405},
		{name: "ScorePost", method: "POST", target: "/score", body: `{"data":[[1,2]]}`, wantStatus: 200,
			wantBody: `{"data":[[1,2]]}`, wantHeader: map[string]string{"Content-Type": "application/json"}},
		{name: "ScoreGetQuery", method: "GET", target: "/score?a=1&b=2", wantStatus: 200, wantBody: "a=1&b=2"},
		{name: "ScorePut405", method: "PUT", target: "/score", wantStatus: 405,
			wantHeader: map[string]string{"Allow": "GET, POST, OPTIONS"}},
		{name: "ScoreDelete405", method: "DELETE", target: "/score", wantStatus: 405},
		{name: "ScoreOptionsNoCORS", method: "OPTIONS", target: "/score", header: map[string]string{"Origin": "https://a.example"},
			wantStatus: 200, wantBody: "", wantHeader: map[string]string{"Access-Control-Allow-Origin": ""}},
		{name: "ScoreOptionsCORSAllowed", cfg: modelserver.ServerConfig{CORSOrigins: []string{"https://a.example"}},
			method: "OPTIONS", target: "/score",
			header:     map[string]string{"Origin": "https://a.example", "Access-Control-Request-Headers": "content-type,authorization"},
			wantStatus: 200,
			wantHeader: map[string]string{"Access-Control-Allow-Origin": "https://a.example",
				"Access-Control-Allow-Methods": "GET, POST, OPTIONS", "Access-Control-Allow-Headers": "content-type,authorization"}},
		{name: "ScoreOptionsCORSOtherOrigin", cfg: modelserver.ServerConfig{CORSOrigins: []string{"https://a.example"}},
			method: "OPTIONS", target: "/score", header: map[string]string{"Origin": "https://b.example"},
			wantStatus: 200, wantHeader: map[string]string{"Access-Control-Allow-Origin": ""}},
		{name: "ScoreOptionsCORSWildcard", cfg: modelserver.ServerConfig{CORSOrigins: modelserver.ParseCORSOrigins(" *, ")},
			method: "OPTIONS", target: "/score", header: map[string]string{"Origin": "https://b.example"},
			wantStatus: 200, wantHeader: map[string]string{"Access-Control-Allow-Origin": "https://b.example"}},
		{name: "ScorePostCORS", cfg: modelserver.ServerConfig{CORSOrigins: []string{"https://a.example", "https://c.example"}},
			method: "POST", target: "/score", body: "{}", header: map[string]string{"Origin": "https://c.example"},
			wantStatus: 200, wantHeader: map[string]string{"Access-Control-Allow-Origin": "https://c.example",
				"Access-Control-Allow-Methods": ""}},
		{name: "RequestIDEchoed", method: "POST", target: "/score", body: "{}",
			header:     map[string]string{"x-request-id": "abc", "x-ms-client-request-id": "client-1", "TraceId": "trace-1"},
			wantStatus: 200,
			// Azure's inference server: without x-ms-request-id, it carries
			// the client request id.
			wantHeader: map[string]string{"x-request-id": "abc", "x-ms-request-id": "client-1",
				"x-ms-client-request-id": "client-1", "TraceId": "trace-1"}},
		{name: "RequestIDOnly", method: "POST", target: "/score", body: "{}",
			header:     map[string]string{"x-request-id": "abc"},
			wantStatus: 200, wantHeader: map[string]string{"x-request-id": "abc", "x-ms-request-id": "abc", "x-ms-client-request-id": ""}},
		// The legacy x-ms-request-id is echoed and stands for the client
		// request id; x-request-id is generated.
		{name: "MSRequestIDUsed", method: "POST", target: "/score", body: "{}",
			header:     map[string]string{"x-ms-request-id": "ms-1"},
			wantStatus: 200, wantHeader: map[string]string{"x-ms-request-id": "ms-1",
				"x-ms-client-request-id": "ms-1", "TraceId": ""}},
		{name: "AllRequestIDs", method: "POST", target: "/score", body: "{}",
			header:     map[string]string{"x-request-id": "r1", "x-ms-request-id": "ms-1", "x-ms-client-request-id": "c1"},
			wantStatus: 200, wantHeader: map[string]string{"x-request-id": "r1", "x-ms-request-id": "ms-1", "x-ms-client-request-id": "c1"}},
		{name: "RequestID100OK", method: "POST", target: "/score", body: "{}",
			header: map[string]string{"x-request-id": max}, wantStatus: 200},
		{name: "RequestIDTooLong", method: "POST", target: "/score", body: "{}",
			header: map[string]string{"x-request-id": long}, wantStatus: 431},
		{name: "MSRequestIDTooLong", method: "POST", target: "/score", body: "{}",
			header: map[string]string{"x-ms-request-id": long}, wantStatus: 431},
		{name: "ClientRequestIDTooLong", method: "GET", target: "/", header: map[string]string{"x-ms-client-request-id": long},
			wantStatus: 431},
		{name: "BodyTooLarge", method: "POST", target: "/score", body: strings.Repeat("x", 129), wantStatus: 413},
		{name: "BodyAtLimit", method: "POST", target: "/score", body: strings.Repeat("x", 128), wantStatus: 200},
		{name: "RunFailed", rt: &fakeRuntime{score: func(context.Context, *modelserver.ScoreRequest) (*modelserver.ScoreResponse, error) {
			return &modelserver.ScoreResponse{Status: 500, Body: []byte(`{"message":"boom"}`), RunFailed: true,
				ExecTime: 12345600 * time.Nanosecond}, nil
		}}, method: "POST", target: "/score", body: "{}", wantStatus: 500, wantBody: `{"message":"boom"}`,
			wantHeader: map[string]string{"x-ms-run-function-failed": "True", "x-ms-run-fn-exec-ms": "12.346"}},
		// An input error that never reached run(): no exec time, as in Azure.
		{name: "InputError", rt: &fakeRuntime{score: func(context.Context, *modelserver.ScoreRequest) (*modelserver.ScoreResponse, error) {
			return &modelserver.ScoreResponse{Status: 415, Body: []byte(`{"message":"Expects Content-Type to be application/json"}`)}, nil
		}}, method: "POST", target: "/score", body: "{}", wantStatus: 415,
			wantHeader: map[string]string{"x-ms-run-function-failed": "False", "x-ms-run-fn-exec-ms": ""}},
		{name: "RuntimeError", rt: &fakeRuntime{score: func(context.Context, *modelserver.ScoreRequest) (*modelserver.ScoreResponse, error) {
			return nil, errors.New("worker died")
		}}, method: "POST", target: "/score", body: "{}", wantStatus: 500, wantBody: `{"message":"worker died"}`},
		{name: "ScoringTimeout", rt: &fakeRuntime{score: func(ctx context.Context, _ *modelserver.ScoreRequest) (*modelserver.ScoreResponse, error) {
			<-ctx.Done()
			return nil, modelserver.ErrScoringTimeout
		}}, method: "POST", target: "/score", body: "{}", wantStatus: 500,
			wantBody: `{"message":"Scoring timeout after 50 ms"}`},
		{name: "SwaggerDefault", method: "GET", target: "/swagger.json", wantStatus: 200, wantBody: `{"swagger":"2"}`},
		{name: "Swagger2.0", method: "GET", target: "/swagger.json?version=2.0", wantStatus: 200, wantBody: `{"swagger":"2"}`},
		{name: "Swagger3", method: "GET", target: "/swagger.json?version=3", wantStatus: 200, wantBody: `{"swagger":"3"}`},
		{name: "Swagger3.0", method: "GET", target: "/swagger.json?version=3.0", wantStatus: 200, wantBody: `{"swagger":"3"}`},
		{name: "Swagger3.1", method: "GET", target: "/swagger.json?version=3.1", wantStatus: 200, wantBody: `{"swagger":"3.1"}`},
		{name: "SwaggerUnknown", method: "GET", target: "/swagger.json?version=4", wantStatus: 404,
			wantBody: `{"message":"Swagger version \"4\" is not supported; use 2, 3 or 3.1"}`},
		{name: "SwaggerNotAvailable", rt: &fakeRuntime{swagger: func(context.Context, string) ([]byte, error) {
			return nil, modelserver.ErrNoSwagger
		}}, method: "GET", target: "/swagger.json?version=3.1", wantStatus: 404},
		{name: "SwaggerPost405", method: "POST", target: "/swagger.json", wantStatus: 405},
		{name: "V2Meta", method: "GET", target: "/v2", wantStatus: 200,
			wantBody: `{"name":"modelship","version":"test","extensions":[]}`},
		{name: "V2Live", method: "GET", target: "/v2/health/live", wantStatus: 200, wantBody: `{"live":true}`},
		{name: "V2Ready", method: "GET", target: "/v2/health/ready", wantStatus: 200, wantBody: `{"ready":true}`},
		{name: "V2NotReady", rt: notReady(), method: "GET", target: "/v2/health/ready", wantStatus: 503, wantBody: `{"ready":false}`},
		{name: "V2ModelMeta", method: "GET", target: "/v2/models/digits", wantStatus: 200,
			wantBody: `{"name":"digits","versions":["1"],"platform":"onnx_onnxv1","inputs":[{"name":"input","datatype":"FP32","shape":[-1,64]}],"outputs":[{"name":"probabilities","datatype":"FP32","shape":[-1,10]}]}`},
		{name: "V2ModelVersionMeta", method: "GET", target: "/v2/models/digits/versions/1", wantStatus: 200},
		{name: "V2ModelUnknown", method: "GET", target: "/v2/models/nope", wantStatus: 404,
			wantBody: `{"error":"model nope not found"}`},
		{name: "V2ModelVersionUnknown", method: "GET", target: "/v2/models/digits/versions/2/ready", wantStatus: 404,
			wantBody: `{"error":"model digits version 2 not found"}`},
		{name: "V2ModelReady", method: "GET", target: "/v2/models/digits/ready", wantStatus: 200,
			wantBody: `{"name":"digits","ready":true}`},
		{name: "V2ModelNotReady", rt: notReady(), method: "GET", target: "/v2/models/digits/versions/1/ready", wantStatus: 503,
			wantBody: `{"name":"digits","ready":false}`},
		{name: "V2MetaPost405", method: "POST", target: "/v2/models/digits", wantStatus: 405,
			wantBody: `{"error":"method not allowed"}`},
		{name: "InferOK", cfg: modelserver.ServerConfig{MaxBodyBytes: 1000}, method: "POST", target: "/v2/models/digits/versions/1/infer",
			body:       `{"id":"7","inputs":[{"name":"input","shape":[1],"datatype":"BOOL","data":[true]}]}`,
			wantStatus: 200, wantHeader: map[string]string{"Content-Type": "application/json"},
			wantBody: `{"model_name":"digits","model_version":"1","id":"7","outputs":[{"name":"input","datatype":"BOOL","shape":[1],"data":[true]}]}`},
		{name: "InferGet405", method: "GET", target: "/v2/models/digits/infer", wantStatus: 405},
		{name: "InferBadJSON", method: "POST", target: "/v2/models/digits/infer", body: `{"inputs":`, wantStatus: 400},
		{name: "InferTooLarge", method: "POST", target: "/v2/models/digits/infer", body: strings.Repeat(" ", 129), wantStatus: 413},
		{name: "InferError404", rt: &fakeRuntime{infer: func(context.Context, string, string, *oip.InferRequest) (*oip.InferResponse, error) {
			return nil, &modelserver.InferError{Status: 404, Message: "model x not found"}
		}}, method: "POST", target: "/v2/models/x/infer", body: inferBody, wantStatus: 404,
			wantBody: `{"error":"model x not found"}`},
		{name: "InferErrorWrapped400", rt: &fakeRuntime{infer: func(context.Context, string, string, *oip.InferRequest) (*oip.InferResponse, error) {
			return nil, fmt.Errorf("checking input: %w", &modelserver.InferError{Status: 400, Message: "bad shape"})
		}}, method: "POST", target: "/v2/models/digits/infer", body: inferBody, wantStatus: 400,
			wantBody: `{"error":"bad shape"}`},
		{name: "InferPlainError", rt: &fakeRuntime{infer: func(context.Context, string, string, *oip.InferRequest) (*oip.InferResponse, error) {
			return nil, errors.New("session broken")
		}}, method: "POST", target: "/v2/models/digits/infer", body: inferBody, wantStatus: 500,
			wantBody: `{"error":"session broken"}`},
		{name: "InferTimeout", rt: &fakeRuntime{infer: func(ctx context.Context, _, _ string, _ *oip.InferRequest) (*oip.InferResponse, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}}, method: "POST", target: "/v2/models/digits/infer", body: inferBody, wantStatus: 500,
			wantBody: `{"error":"Scoring timeout after 50 ms"}`},
		{name: "NotFound", method: "GET", target: "/nope", wantStatus: 404},
		{name: "V2NotFound", method: "GET", target: "/v2/repository/index", wantStatus: 404,
			wantBody: `{"error":"no route for /v2/repository/index"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := tt.rt
			if rt == nil {
				rt = &fakeRuntime{}
			}
			rt.models = testModels
			s := newTestServer(rt, tt.cfg)
			w := call(t, s.Handler(), tt.method, tt.target, tt.body, tt.header)
			if w.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", w.Code, tt.wantStatus, w.Body)
			}
			if tt.wantBody != "" && w.Body.String() != tt.wantBody {
				t.Errorf("body = %s, want %s", w.Body, tt.wantBody)
			}
			if tt.wantStatus >= 400 && tt.wantStatus != 431 && tt.wantStatus != 503 {
				checkErrorBody(t, tt.target, w)
			}
			for k, want := range tt.wantHeader {
				if got := w.Header().Get(k); got != want {
					t.Errorf("header %s = %q, want %q", k, got, want)
				}
			}
			// Every answer carries the request ids; x-ms-request-id is
			// x-request-id unless the caller sent an x-ms-* id.
			id := w.Header().Get("x-request-id")
			callerIDs := tt.header["x-ms-request-id"] + tt.header["x-ms-client-request-id"]
			if w.Code != 431 && (id == "" || (callerIDs == "" && w.Header().Get("x-ms-request-id") != id)) {
				t.Errorf("x-request-id %q, x-ms-request-id %q", id, w.Header().Get("x-ms-request-id"))
			}
		})
	}
}

// checkErrorBody checks that an error answer is JSON with "error" on OIP
// routes and "message" elsewhere.
func checkErrorBody(t *testing.T, target string, w *httptest.ResponseRecorder) {
	t.Helper()
	if w.Header().Get("x-ms-run-function-failed") != "" {
		return // the runtime's own body
	}
	key := "message"
	if strings.HasPrefix(target, "/v2") {
		key = "error"
	}
	var body map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body[key] == "" || len(body) != 1 {
		t.Errorf("error body = %s, want {%q: ...} (%v)", w.Body, key, err)
	}
}

// inferBody is a minimal valid OIP infer request.
const inferBody = `{"inputs":[{"name":"x","shape":[1],"datatype":"INT32","data":[1]}]}`

func notReady() *fakeRuntime {
	rt := &fakeRuntime{}
	rt.notReady.Store(true)
	return rt
}

func TestServer_GeneratedRequestID(t *testing.T) {
	var seen string
	rt := &fakeRuntime{score: func(ctx context.Context, req *modelserver.ScoreRequest) (*modelserver.ScoreResponse, error) {
		seen = req.RequestID
		return echoScore(ctx, req)
	}}
	s := newTestServer(rt, modelserver.ServerConfig{})
	w := call(t, s.Handler(), "POST", "/score", "{}", nil)
	id := w.Header().Get("x-request-id")
	if !uuidRE.MatchString(id) || w.Header().Get("x-ms-request-id") != id || seen != id {
		t.Fatalf("x-request-id %q, x-ms-request-id %q, runtime saw %q", id, w.Header().Get("x-ms-request-id"), seen)
	}
	if got := w.Header().Get("x-ms-client-request-id"); got != "" {
		t.Errorf("x-ms-client-request-id = %q, want absent", got)
	}
	w2 := call(t, s.Handler(), "POST", "/score", "{}", nil)
	if w2.Header().Get("x-request-id") == id {
		t.Error("two requests got the same generated id")
	}
}

func TestServer_ScoreRequestFields(t *testing.T) {
	var got modelserver.ScoreRequest
	var deadline time.Duration
	rt := &fakeRuntime{score: func(ctx context.Context, req *modelserver.ScoreRequest) (*modelserver.ScoreResponse, error) {
		got = *req
		d, _ := ctx.Deadline()
		deadline = time.Until(d)
		return &modelserver.ScoreResponse{Body: []byte("[1]")}, nil
	}}
	s := newTestServer(rt, modelserver.ServerConfig{ScoringTimeout: 7 * time.Second})
	w := call(t, s.Handler(), "POST", "/score?x=1", `{"a":1}`,
		map[string]string{"x-request-id": "r1", "x-ms-client-request-id": "c1", "Content-Type": "application/json"})
	if w.Code != 200 || w.Body.String() != "[1]" {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
	if got.RequestID != "r1" || got.ClientRequestID != "c1" || got.Method != "POST" || got.Path != "/score" ||
		got.RawQuery != "x=1" || string(got.Body) != `{"a":1}` || got.Header.Get("Content-Type") != "application/json" {
		t.Errorf("runtime got %+v", got)
	}
	if deadline <= 6*time.Second || deadline > 7*time.Second {
		t.Errorf("deadline in %v, want about 7s", deadline)
	}
}

func TestServer_ChunkedBodyTooLarge(t *testing.T) {
	s := newTestServer(&fakeRuntime{}, modelserver.ServerConfig{})
	req := httptest.NewRequest("POST", "/score", io.MultiReader(strings.NewReader(strings.Repeat("x", 100)), strings.NewReader(strings.Repeat("y", 100))))
	req.ContentLength = -1
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, req)
	if w.Code != 413 {
		t.Fatalf("status = %d, want 413", w.Code)
	}
}

func TestServer_Metrics(t *testing.T) {
	rt := &fakeRuntime{}
	rt.active.Store(3)
	rt.queued.Store(5)
	reg := prometheus.NewRegistry()
	s := newTestServer(rt, modelserver.ServerConfig{Registry: reg})
	h := s.Handler()
	call(t, h, "POST", "/score", "{}", nil)
	call(t, h, "POST", "/score", "{}", nil)
	call(t, h, "PUT", "/score", "", nil)
	call(t, h, "GET", "/nope", "", nil)
	w := call(t, h, "GET", "/metrics", "", nil)
	if w.Code != 200 {
		t.Fatalf("status = %d", w.Code)
	}
	body := w.Body.String()
	for _, want := range []string{
		`modelship_modelserver_requests_total{code="200",route="/score"} 2`,
		`modelship_modelserver_requests_total{code="405",route="/score"} 1`,
		`modelship_modelserver_requests_total{code="404",route="other"} 1`,
		`modelship_modelserver_request_duration_seconds_count{route="/score"} 3`,
		`modelship_modelserver_busy_workers 3`,
		`modelship_modelserver_queue_length 5`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestServer_Drain checks the shutdown sequence: an in-flight request
// completes, new connections are refused, readiness is false, and the
// runtime is closed.
func TestServer_Drain(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	rt := &fakeRuntime{score: func(ctx context.Context, req *modelserver.ScoreRequest) (*modelserver.ScoreResponse, error) {
		close(started)
		<-release
		return echoScore(ctx, req)
	}}
	s := newTestServer(rt, modelserver.ServerConfig{ScoringTimeout: 10 * time.Second, ShutdownGrace: 10 * time.Second})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()

	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	if !s.Ready() {
		t.Fatal("not ready before shutdown")
	}
	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := client.Post(addr+"/score", "application/json", strings.NewReader(`{"slow":true}`))
		if err != nil {
			done <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{resp.StatusCode, string(b), err}
	}()
	<-started
	cancel()
	waitFor(t, func() bool { return !s.Ready() })
	w := call(t, s.Handler(), "GET", "/v2/health/ready", "", nil)
	if w.Code != 503 {
		t.Errorf("ready during drain = %d, want 503", w.Code)
	}
	// The listener is closed: a new connection is refused.
	waitFor(t, func() bool {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case err := <-served:
		t.Fatalf("Serve returned %v before the in-flight request finished", err)
	default:
	}
	if rt.closed.Load() {
		t.Fatal("runtime closed before the in-flight request finished")
	}
	close(release)
	r := <-done
	if r.err != nil || r.status != 200 || r.body != `{"slow":true}` {
		t.Fatalf("in-flight request: %d %q %v", r.status, r.body, r.err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve = %v", err)
	}
	if !rt.closed.Load() {
		t.Error("runtime not closed")
	}
}

// TestServer_DrainGraceExpires checks that a request stuck past the grace
// period does not hold shutdown.
func TestServer_DrainGraceExpires(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	rt := &fakeRuntime{score: func(ctx context.Context, req *modelserver.ScoreRequest) (*modelserver.ScoreResponse, error) {
		close(started)
		<-release
		return echoScore(ctx, req)
	}}
	s := newTestServer(rt, modelserver.ServerConfig{ScoringTimeout: 10 * time.Second, ShutdownGrace: 100 * time.Millisecond})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	reqDone := make(chan struct{})
	go func() {
		defer close(reqDone)
		resp, err := client.Post("http://"+ln.Addr().String()+"/score", "application/json", strings.NewReader("{}"))
		if err == nil {
			resp.Body.Close()
		}
	}()
	<-started
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the grace period")
	}
	if !rt.closed.Load() {
		t.Error("runtime not closed")
	}
	close(release)
	<-reqDone
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestParseCORSOrigins(t *testing.T) {
	got := modelserver.ParseCORSOrigins(" https://a.example ,,https://b.example, ")
	if len(got) != 2 || got[0] != "https://a.example" || got[1] != "https://b.example" {
		t.Errorf("got %q", got)
	}
	if got := modelserver.ParseCORSOrigins(""); got != nil {
		t.Errorf("empty: got %q", got)
	}
}

func TestActivityCountsScoringOnly(t *testing.T) {
	s := newTestServer(&fakeRuntime{}, modelserver.ServerConfig{})
	h := s.Handler()
	for _, path := range []string{"/", "/v2/health/ready", "/metrics", "/swagger.json"} {
		call(t, h, "GET", path, "", nil)
	}
	if n, a := s.Activity(); n != 0 || a != 0 {
		t.Fatalf("after health and metadata requests: in flight %d, answered %d; want 0, 0", n, a)
	}
	if w := call(t, h, "POST", "/score", `{"data": [[1]]}`, map[string]string{"Content-Type": "application/json"}); w.Code != 200 {
		t.Fatalf("/score: %d %s", w.Code, w.Body)
	}
	if n, a := s.Activity(); n != 0 || a != 1 {
		t.Fatalf("after one /score: in flight %d, answered %d; want 0, 1", n, a)
	}
}
