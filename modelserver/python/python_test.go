package python

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/modelship/modelship/modelserver"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// pythonBin is the interpreter with numpy/sklearn/pandas (Debian's), or
// MODELSHIP_PYTHON when set.
func pythonBin(t testing.TB) string {
	t.Helper()
	p := os.Getenv("MODELSHIP_PYTHON")
	if p == "" {
		p = "/usr/bin/python3"
	}
	if _, err := exec.LookPath(p); err != nil {
		t.Skipf("no python at %s", p)
	}
	return p
}

// syncBuffer collects worker output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// workerPids lists live processes started by this test binary that run the
// modelship worker.
func workerPids(t testing.TB) []int {
	t.Helper()
	me := os.Getpid()
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if !bytes.Contains(cmdline, []byte("_modelship_worker.py")) {
			continue
		}
		stat, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(me) {
			out = append(out, pid)
		}
	}
	return out
}

// start creates a Runtime for cfg and closes it at cleanup, checking that no
// worker process is left behind.
func start(t testing.TB, cfg Config) (*Runtime, *syncBuffer) {
	t.Helper()
	out := &syncBuffer{}
	cfg.Python = pythonBin(t)
	if cfg.Stdout == nil {
		cfg.Stdout = out
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		if pids := workerPids(t); len(pids) > 0 {
			t.Errorf("worker processes left behind: %v", pids)
		}
	})
	return r, out
}

func testdata(t testing.TB) string {
	t.Helper()
	d, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

type call struct {
	method, query, ct string
	body              string
	header            http.Header
	timeout           time.Duration
}

func do(t testing.TB, r *Runtime, c call) (*modelserver.ScoreResponse, error) {
	t.Helper()
	h := http.Header{}
	for k, v := range c.header {
		h[k] = v
	}
	if c.ct != "" {
		h.Set("Content-Type", c.ct)
	}
	if c.method == "" {
		c.method = "POST"
	}
	if c.timeout == 0 {
		c.timeout = 20 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	return r.Score(ctx, &modelserver.ScoreRequest{
		RequestID: "req-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		Method:    c.method, Path: "/score", RawQuery: c.query, Header: h, Body: []byte(c.body),
	})
}

func mustDo(t testing.TB, r *Runtime, c call) *modelserver.ScoreResponse {
	t.Helper()
	resp, err := do(t, r, c)
	if err != nil {
		t.Fatalf("Score(%+v): %v", c, err)
	}
	return resp
}

func jsonBody(t testing.TB, resp *modelserver.ScoreResponse) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(resp.Body, &v); err != nil {
		t.Fatalf("body %q: %v", resp.Body, err)
	}
	return v
}

func TestTrivialScript(t *testing.T) {
	models := t.TempDir()
	r, out := start(t, Config{EntryScript: "trivial.py", SourceDir: testdata(t), ModelDir: models,
		ServiceName: "svc", WorkspaceName: "ws", Env: map[string]string{"SCORING_TIMEOUT_MS": "5000"}})
	errBody := `{"message": "An unexpected error occurred in scoring script. Check the logs for more info."}`
	tests := []struct {
		name       string
		c          call
		status     int
		body       string
		runFailed  bool
		wantString string // when the JSON body is a string
	}{
		{name: "post json string", c: call{body: `{"a": 1}`, ct: "application/json"}, status: 200, body: `"{\"a\": 1}"`},
		{name: "post any content type", c: call{body: "plain"}, status: 200, body: `"plain"`},
		{name: "non utf8", c: call{body: "\xff\xfe"}, status: 400},
		{name: "run exception", c: call{body: "boom"}, status: 500, body: errBody, runFailed: true},
		{name: "get query", c: call{method: "GET", query: "a=1&b=[1,2]&c=x&c=y&d=null&e=str"}, status: 200,
			wantString: `{"a": 1, "b": [1, 2], "c": ["x", "y"], "d": null, "e": "str"}`},
		{name: "get empty", c: call{method: "GET"}, status: 200, wantString: `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := mustDo(t, r, tt.c)
			if resp.Status != tt.status {
				t.Fatalf("status %d, want %d (body %s)", resp.Status, tt.status, resp.Body)
			}
			if tt.body != "" && string(resp.Body) != tt.body {
				t.Errorf("body %s, want %s", resp.Body, tt.body)
			}
			if tt.wantString != "" {
				if s, _ := jsonBody(t, resp).(string); s != tt.wantString {
					t.Errorf("string %q, want %q", s, tt.wantString)
				}
			}
			if resp.RunFailed != tt.runFailed {
				t.Errorf("RunFailed %v, want %v", resp.RunFailed, tt.runFailed)
			}
			if tt.status == 200 && resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("content type %q", resp.Header.Get("Content-Type"))
			}
			if tt.status == 400 && !strings.Contains(string(resp.Body), "UTF-8") {
				t.Errorf("400 body %s", resp.Body)
			}
		})
	}

	resp := mustDo(t, r, call{body: "print"})
	if resp.ExecTime <= 0 {
		t.Errorf("ExecTime %v", resp.ExecTime)
	}
	env := jsonBody(t, mustDo(t, r, call{body: "env"})).(map[string]any)
	src := testdata(t)
	want := map[string]any{"AZUREML_MODEL_DIR": models, "AZUREML_ENTRY_SCRIPT": "trivial.py",
		"AZUREML_SOURCE_DIRECTORY": src, "AML_APP_ROOT": src, "SERVICE_NAME": "svc", "SERVICE_VERSION": "1.0",
		"WORKSPACE_NAME": "ws", "SCORING_TIMEOUT_MS": "5000"}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("env %s = %v, want %v", k, env[k], v)
		}
	}
	if r.ScoringTimeout() != 5*time.Second {
		t.Errorf("ScoringTimeout %v", r.ScoringTimeout())
	}
	if !r.Ready() {
		t.Error("not ready")
	}
	waitFor(t, func() bool { return strings.Contains(out.String(), ": hello from run\n") })
	text := out.String()
	if !strings.Contains(text, initRequestID+": init in "+src+"\n") {
		t.Errorf("init output not prefixed with the zero request id:\n%s", text)
	}
	if !strings.Contains(text, "req-") {
		t.Errorf("run output not prefixed with the request id:\n%s", text)
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// At the scoring deadline run() is interrupted inside its worker, as in
// Azure's server: the request gets the timeout, the worker and its state
// stay, and the next request is served at once without another init().
func TestTimeoutInterruptsRun(t *testing.T) {
	r, _ := start(t, Config{EntryScript: "trivial.py", SourceDir: testdata(t)})
	before := r.pids()
	t0 := time.Now()
	_, err := do(t, r, call{body: "sleep:30", timeout: 300 * time.Millisecond})
	if !errors.Is(err, modelserver.ErrScoringTimeout) {
		t.Fatalf("err %v, want ErrScoringTimeout", err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("timeout took %v", d)
	}
	t0 = time.Now()
	resp := mustDo(t, r, call{body: "pid", timeout: 10 * time.Second})
	if resp.Status != 200 || int(jsonBody(t, resp).(float64)) != before[0] {
		t.Fatalf("after the timeout: %d %s, want pid %d (the same worker)", resp.Status, resp.Body, before[0])
	}
	if d := time.Since(t0); d > time.Second {
		t.Errorf("request after timeout took %v", d)
	}
	if after := r.pids(); len(after) != 1 || after[0] != before[0] {
		t.Errorf("pids before %v after %v: the worker was replaced", before, after)
	}
}

// A run() that does not come back when interrupted (stuck in C code; here
// it blocks the signal) gets its worker killed and replaced, so no later
// request waits on it.
func TestStuckRunReplacesWorker(t *testing.T) {
	r, _ := start(t, Config{EntryScript: "trivial.py", SourceDir: testdata(t)})
	before := r.pids()
	t0 := time.Now()
	_, err := do(t, r, call{body: "stuck:30", timeout: 300 * time.Millisecond})
	if !errors.Is(err, modelserver.ErrScoringTimeout) {
		t.Fatalf("err %v, want ErrScoringTimeout", err)
	}
	if d := time.Since(t0); d > 300*time.Millisecond+interruptGrace+2*time.Second {
		t.Errorf("timeout took %v", d)
	}
	// The next request is served by the replacement, not stuck behind the sleeper.
	t0 = time.Now()
	resp := mustDo(t, r, call{body: "pid", timeout: 10 * time.Second})
	if resp.Status != 200 {
		t.Fatalf("status %d", resp.Status)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("request after timeout took %v", d)
	}
	after := r.pids()
	if len(after) != 1 || after[0] == before[0] {
		t.Errorf("pids before %v after %v: worker not replaced", before, after)
	}
	if got := int(jsonBody(t, resp).(float64)); got != after[0] {
		t.Errorf("served by pid %d, want %d", got, after[0])
	}
}

func TestClientCancelKeepsWorker(t *testing.T) {
	r, _ := start(t, Config{EntryScript: "trivial.py", SourceDir: testdata(t)})
	before := r.pids()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	time.AfterFunc(100*time.Millisecond, cancel)
	resp, err := r.Score(ctx, &modelserver.ScoreRequest{RequestID: "c", Method: "POST", Body: []byte("sleep:0.4")})
	if err != nil || resp.Status != 200 {
		t.Fatalf("cancelled call: %v %v", resp, err)
	}
	if after := r.pids(); len(after) != 1 || after[0] != before[0] {
		t.Errorf("worker replaced after a client cancel: %v -> %v", before, after)
	}
}

func TestWorkerDiesMidRequest(t *testing.T) {
	r, _ := start(t, Config{EntryScript: "trivial.py", SourceDir: testdata(t)})
	_, err := do(t, r, call{body: "die"})
	if err == nil || !errors.Is(err, errWorkerDied) {
		t.Fatalf("err %v, want worker died", err)
	}
	resp := mustDo(t, r, call{body: "ok"})
	if resp.Status != 200 || string(resp.Body) != `"ok"` {
		t.Fatalf("after restart: %d %s", resp.Status, resp.Body)
	}
}

func TestConcurrencyTwoWorkers(t *testing.T) {
	r, _ := start(t, Config{EntryScript: "trivial.py", SourceDir: testdata(t), Workers: 2})
	var wg sync.WaitGroup
	t0 := time.Now()
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, err := do(t, r, call{body: "sleep:0.6"}); err != nil || resp.Status != 200 {
				t.Errorf("score: %v %v", resp, err)
			}
		}()
	}
	waitFor(t, func() bool { a, q := r.Busy(); return a == 2 && q == 1 })
	wg.Wait()
	d := time.Since(t0)
	if d < 1200*time.Millisecond || d > 3*time.Second {
		t.Errorf("3 requests of 0.6s on 2 workers took %v, want ~1.2s", d)
	}
	if a, q := r.Busy(); a != 0 || q != 0 {
		t.Errorf("Busy after = %d, %d", a, q)
	}
}

func TestHeadersAndAMLResponse(t *testing.T) {
	r, _ := start(t, Config{EntryScript: "headers_score.py", SourceDir: testdata(t)})
	resp := mustDo(t, r, call{body: "x", header: http.Header{"X-Custom": {"v1"}}})
	if got := jsonBody(t, resp).(map[string]any); got["custom"] != "v1" || got["data"] != "x" {
		t.Errorf("got %v", got)
	}
	resp = mustDo(t, r, call{body: "fail"})
	if resp.Status != 503 || !resp.RunFailed || string(resp.Body) != "backend down" {
		t.Errorf("503: %d %v %q", resp.Status, resp.RunFailed, resp.Body)
	}
	if resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("content type %q", resp.Header.Get("Content-Type"))
	}
	resp = mustDo(t, r, call{body: "none"})
	if resp.Status != 201 || string(resp.Body) != "{}" || resp.RunFailed ||
		resp.Header.Get("x-ms-run-function-failed") != "False" || resp.Header.Get("X-Extra") != "1" ||
		resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("None message: %d %q %v %v", resp.Status, resp.Body, resp.RunFailed, resp.Header)
	}
}

func TestRawHTTP(t *testing.T) {
	r, _ := start(t, Config{EntryScript: "rawhttp_score.py", SourceDir: testdata(t)})
	bin := string([]byte{0, 1, 2, 0xff, 0xfe, '\n', 0x80})
	resp := mustDo(t, r, call{body: bin, ct: "application/octet-stream"})
	if resp.Status != 200 || string(resp.Body) != bin {
		t.Fatalf("echo: %d %q", resp.Status, resp.Body)
	}
	if got := resp.Header.Values("X-Multi"); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Errorf("X-Multi %q", got)
	}
	if resp.Header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("content type %v", resp.Header)
	}
	resp = mustDo(t, r, call{method: "GET", query: "a=1&a=2&b=x", header: http.Header{"X-Custom": {"hi"}}})
	got := jsonBody(t, resp).(map[string]any)
	if got["method"] != "GET" || got["full_path"] != "/score?a=1&a=2&b=x" || got["custom"] != "hi" ||
		got["query_string"] != "a=1&a=2&b=x" {
		t.Errorf("GET request view: %v", got)
	}
	var mp bytes.Buffer
	mp.WriteString("--XX\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n")
	mp.WriteString("--XX\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n")
	mp.WriteString("\x89PNG\x00\x01\r\n--XX--\r\n")
	// The multipart route is chosen by path in the script.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := r.Score(ctx, &modelserver.ScoreRequest{RequestID: "mp", Method: "POST", Path: "/score/files",
		Header: http.Header{"Content-Type": {"multipart/form-data; boundary=XX"}, "User-Agent": {"curl/8"}}, Body: mp.Bytes()})
	if err != nil {
		t.Fatal(err)
	}
	files := jsonBody(t, resp).(map[string]any)
	if files["filename"] != "a.png" || files["size"] != 6.0 || files["field"] != "hello" || files["tell"] != 4.0 ||
		files["head_ok"] != true || files["stream"] != float64(mp.Len()) || files["ua"] != "curl/8" {
		t.Errorf("multipart: %v", files)
	}
}

// trainSklearn trains a Ridge regression on the diabetes data into the
// single-model Azure layout <root>/sklearn_regression_model/1/model.pkl and
// returns the model dir and the expected predictions of the first 3 rows.
func trainSklearn(t testing.TB) (modelDir string, rows [][]float64, want []float64) {
	t.Helper()
	root := t.TempDir()
	modelDir = filepath.Join(root, "azureml-models", "sklearn_regression_model", "1")
	if err := os.MkdirAll(modelDir, 0o755); err != nil {
		t.Fatal(err)
	}
	script := `
import json, sys, joblib
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
X, y = load_diabetes(return_X_y=True)
m = Ridge(alpha=0.5).fit(X, y)
joblib.dump(m, sys.argv[1] + "/model.pkl")
print(json.dumps({"rows": X[:3].tolist(), "want": m.predict(X[:3]).tolist()}))
`
	out, err := exec.Command(pythonBin(t), "-c", script, modelDir).Output()
	if err != nil {
		t.Fatalf("train: %v", err)
	}
	var res struct {
		Rows [][]float64
		Want []float64
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("train output %q: %v", out, err)
	}
	return modelDir, res.Rows, res.Want
}

func TestSklearnAzureSample(t *testing.T) {
	modelDir, rows, want := trainSklearn(t)
	var mu sync.Mutex
	var recs []CollectRecord
	r, out := start(t, Config{EntryScript: "sklearn_score.py", SourceDir: testdata(t), ModelDir: modelDir,
		Env:     map[string]string{"AML_MODEL_DC_STORAGE_ENABLED": "true"},
		Collect: func(rec CollectRecord) { mu.Lock(); recs = append(recs, rec); mu.Unlock() }})
	body, _ := json.Marshal(map[string]any{"data": rows})
	resp := mustDo(t, r, call{body: string(body), ct: "application/json"})
	if resp.Status != 200 {
		t.Fatalf("status %d %s", resp.Status, resp.Body)
	}
	var got []float64
	if err := json.Unmarshal(resp.Body, &got); err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if d := got[i] - want[i]; d > 1e-9 || d < -1e-9 {
			t.Errorf("prediction %d = %v, want %v", i, got[i], want[i])
		}
	}
	mu.Lock()
	if len(recs) != 2 || recs[0].Designation != "inputs" || recs[1].Designation != "predictions" ||
		len(recs[0].FeatureNames) != 10 || recs[0].RequestID == initRequestID || recs[0].Model != "sklearn_regression_model" {
		t.Errorf("collected %+v", recs)
	} else {
		var rs [][]float64
		if err := json.Unmarshal(recs[0].Rows, &rs); err != nil || len(rs) != 3 || rs[0][0] != rows[0][0] {
			t.Errorf("collected rows %s: %v", recs[0].Rows, err)
		}
	}
	mu.Unlock()
	if !strings.Contains(out.String(), initRequestID+": model loaded from ") {
		t.Errorf("init print missing: %s", out.String())
	}

	errCases := []struct {
		name   string
		c      call
		status int
		msg    string
	}{
		{"no content type", call{body: string(body)}, 415, "Expects Content-Type to be application/json"},
		{"text content type", call{body: string(body), ct: "text/plain"}, 415, "application/json"},
		{"array body", call{body: `[1,2]`, ct: "application/json"}, 400, "JSON dictionary"},
		{"missing param", call{body: `{"other": 1}`, ct: "application/json"}, 400, `'data' parameter`},
		{"bad json", call{body: `{"data": [`, ct: "application/json"}, 400, "could not be decoded"},
		{"empty body", call{body: ``, ct: "application/json"}, 400, "empty"},
		{"bad shape -> run failure", call{body: `{"data": [[1, 2]]}`, ct: "application/json; charset=utf-8"}, 500, "unexpected error"},
	}
	for _, tt := range errCases {
		t.Run(tt.name, func(t *testing.T) {
			resp := mustDo(t, r, tt.c)
			if resp.Status != tt.status || !strings.Contains(string(resp.Body), tt.msg) {
				t.Errorf("got %d %s, want %d containing %q", resp.Status, resp.Body, tt.status, tt.msg)
			}
		})
	}

	// GET: the parameters come from the query string, parsed as JSON.
	q, _ := json.Marshal(rows[:1])
	resp = mustDo(t, r, call{method: "GET", query: "data=" + string(q)})
	if err := json.Unmarshal(resp.Body, &got); err != nil || len(got) != 1 || got[0]-want[0] > 1e-9 || want[0]-got[0] > 1e-9 {
		t.Errorf("GET: %d %s", resp.Status, resp.Body)
	}

	for _, v := range []string{"2", "3"} {
		doc, err := r.Swagger(context.Background(), v)
		if err != nil {
			t.Fatal(err)
		}
		var sw map[string]any
		if err := json.Unmarshal(doc, &sw); err != nil {
			t.Fatal(err)
		}
		defs, _ := sw["definitions"].(map[string]any)
		if v == "3" {
			defs = sw["components"].(map[string]any)["schemas"].(map[string]any)
		}
		in := defs["ServiceInput"].(map[string]any)
		data := in["properties"].(map[string]any)["data"].(map[string]any)
		if data["type"] != "array" || data["items"].(map[string]any)["items"].(map[string]any)["format"] != "double" {
			t.Errorf("v%s ServiceInput %v", v, in)
		}
		ex := in["example"].(map[string]any)["data"].([]any)[0].([]any)
		if len(ex) != 10 {
			t.Errorf("v%s example %v", v, ex)
		}
		if out := defs["ServiceOutput"].(map[string]any); out["type"] != "array" {
			t.Errorf("v%s ServiceOutput %v", v, out)
		}
	}
	if _, err := r.Swagger(context.Background(), "4"); !errors.Is(err, modelserver.ErrNoSwagger) {
		t.Errorf("swagger v4: %v", err)
	}
	if ms := r.Models(); len(ms) != 1 || ms[0].Name != "sklearn_regression_model" || ms[0].Versions[0] != "1" {
		t.Errorf("Models %+v", ms)
	}
}

func TestPandasPowerBI(t *testing.T) {
	r, _ := start(t, Config{EntryScript: "pandas_score.py", SourceDir: testdata(t)})
	resp := mustDo(t, r, call{ct: "application/json",
		body: `{"Inputs": {"data": [{"age": 40, "income": 2.5, "city": "Rome"}, {"age": 20, "income": 1, "city": "Nice"}]},
		        "GlobalParameters": {"scale": 2}}`})
	got := jsonBody(t, resp).(map[string]any)
	res, _ := got["Results"].([]any)
	if resp.Status != 200 || len(res) != 2 || res[0] != 85.0 || res[1] != 42.0 {
		t.Fatalf("%d %s", resp.Status, resp.Body)
	}
	if d := got["dtypes"].([]any); d[0] != "int64" || d[1] != "float64" || d[2] != "object" {
		t.Errorf("dtypes %v", d)
	}
	// GlobalParameters is optional.
	resp = mustDo(t, r, call{ct: "application/json", body: `{"Inputs": {"data": [{"age": 1, "income": 1, "city": "x"}]}}`})
	if res := jsonBody(t, resp).(map[string]any)["Results"].([]any); res[0] != 2.0 {
		t.Errorf("default scale: %s", resp.Body)
	}
	doc, _ := r.Swagger(context.Background(), "2")
	if !bytes.Contains(doc, []byte(`"pandas.DataFrame:records"`)) || !bytes.Contains(doc, []byte(`"Oslo"`)) {
		t.Errorf("swagger lacks the pandas schema:\n%s", doc)
	}
}

func TestModelPathAndStubs(t *testing.T) {
	root := t.TempDir()
	src := t.TempDir()
	for _, f := range []string{"m1/1/a.pkl", "m1/3/b.pkl", "m1/10/c.pkl", "m2/2/x.pkl", "m2/2/y.pkl"} {
		p := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, filepath.Join(testdata(t), "paths_score.py"), filepath.Join(src, "score.py"))
	if err := os.WriteFile(filepath.Join(src, "local_model"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r, out := start(t, Config{EntryScript: "score.py", SourceDir: src, ModelDir: root})
	got := jsonBody(t, mustDo(t, r, call{body: "x"})).(map[string]any)
	want := map[string]string{
		"latest":  filepath.Join(root, "m1/10/c.pkl"),
		"v1":      filepath.Join(root, "m1/1/a.pkl"),
		"multi":   "WebserviceException: Dir " + filepath.Join(root, "m2/2") + " should contain exactly one file or folder, found 2",
		"local":   "local_model",
		"missing": "ModelNotFoundException: Model not found in cache or in root at ./nope",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if ws, _ := got["workspace"].(string); !strings.Contains(ws, "not available in modelship") {
		t.Errorf("workspace: %v", ws)
	}
	waitFor(t, func() bool { return strings.Contains(out.String(), "offline run") })
	if ms := r.Models(); len(ms) != 2 || ms[0].Name != "m1" || strings.Join(ms[0].Versions, ",") != "1,3,10" {
		t.Errorf("Models %+v", ms)
	}
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSwaggerUndecoratedAndFile(t *testing.T) {
	r, _ := start(t, Config{EntryScript: "trivial.py", SourceDir: testdata(t), ServiceName: "my-svc"})
	doc, err := r.Swagger(context.Background(), "2")
	if err != nil {
		t.Fatal(err)
	}
	var sw struct {
		Swagger     string
		Info        map[string]any
		Paths       map[string]any
		Definitions map[string]map[string]any
	}
	if err := json.Unmarshal(doc, &sw); err != nil {
		t.Fatal(err)
	}
	if sw.Swagger != "2.0" || sw.Info["title"] != "my-svc" || sw.Definitions["ServiceInput"]["type"] != "object" ||
		sw.Paths["/score"] == nil {
		t.Errorf("swagger %s", doc)
	}
	doc3, _ := r.Swagger(context.Background(), "3")
	if !bytes.Contains(doc3, []byte(`"openapi": "3.0.1"`)) {
		t.Errorf("openapi 3: %s", doc3)
	}
	r.Close(context.Background())

	src := t.TempDir()
	copyFile(t, filepath.Join(testdata(t), "trivial.py"), filepath.Join(src, "score.py"))
	if err := os.WriteFile(filepath.Join(src, "swagger.json"), []byte(`{"mine": true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "swagger3.json"), []byte(`{"mine": 3}`), 0o644); err != nil {
		t.Fatal(err)
	}
	r2, _ := start(t, Config{EntryScript: "score.py", SourceDir: src})
	for v, want := range map[string]string{"2": `{"mine": true}`, "3": `{"mine": 3}`} {
		if got, _ := r2.Swagger(context.Background(), v); string(got) != want {
			t.Errorf("v%s: %s, want %s", v, got, want)
		}
	}
}

func TestNoCodeSklearn(t *testing.T) {
	modelDir, rows, want := trainSklearn(t)
	r, _ := start(t, Config{NoCodeModel: "model.pkl", ModelDir: modelDir})
	body, _ := json.Marshal(map[string]any{"data": rows})
	resp := mustDo(t, r, call{body: string(body), ct: "application/json"})
	var got []float64
	if err := json.Unmarshal(resp.Body, &got); err != nil || len(got) != len(want) {
		t.Fatalf("%d %s: %v", resp.Status, resp.Body, err)
	}
	for i := range want {
		if d := got[i] - want[i]; d > 1e-9 || d < -1e-9 {
			t.Errorf("prediction %d = %v, want %v", i, got[i], want[i])
		}
	}
}

func TestStartupErrors(t *testing.T) {
	tests := []struct {
		name    string
		script  string
		file    string
		message string
		tb      string
	}{
		{name: "missing init", script: "def run(data):\n    return data\n", message: "does not have an init() function"},
		{name: "missing run", script: "def init():\n    pass\n", message: "does not have a run() function"},
		{name: "init exception", script: "def init():\n    1/0\n\ndef run(data):\n    return data\n",
			message: "init() raised ZeroDivisionError", tb: "ZeroDivisionError: division by zero"},
		{name: "import error", script: "import no_such_module_xyz\n", message: "Failed to import entry script",
			tb: "ModuleNotFoundError"},
		{name: "syntax error", script: "def init(:\n", message: "Failed to import entry script", tb: "SyntaxError"},
		{name: "varargs run", script: "def init():\n    pass\n\ndef run(*args):\n    pass\n", message: "cannot accept"},
		{name: "init exits", script: "import os\ndef init():\n    print('bye')\n    os._exit(7)\n\ndef run(data):\n    pass\n",
			message: "exited during startup"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, models := t.TempDir(), t.TempDir()
			os.MkdirAll(filepath.Join(models, "mymodel", "1"), 0o755)
			os.WriteFile(filepath.Join(models, "mymodel", "1", "model.pkl"), nil, 0o644)
			os.WriteFile(filepath.Join(src, "score.py"), []byte(tt.script), 0o644)
			_, err := New(context.Background(), Config{Python: pythonBin(t), EntryScript: "score.py", SourceDir: src,
				ModelDir: models, Workers: 2, Stdout: io.Discard, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			var se *StartupError
			if !errors.As(err, &se) {
				t.Fatalf("err %v, want *StartupError", err)
			}
			if !strings.Contains(se.Message, tt.message) || !strings.Contains(se.Traceback, tt.tb) {
				t.Errorf("message %q traceback %q", se.Message, se.Traceback)
			}
			if strings.Join(se.Listing, ",") != "mymodel/,mymodel/1/,mymodel/1/model.pkl" {
				t.Errorf("listing %v", se.Listing)
			}
			if text := se.Error(); !strings.Contains(text, "mymodel/1/model.pkl") || !strings.Contains(text, tt.message) {
				t.Errorf("Error():\n%s", text)
			}
			if pids := workerPids(t); len(pids) > 0 {
				t.Errorf("workers left: %v", pids)
			}
		})
	}

	t.Run("not a .py entry script", func(t *testing.T) {
		_, err := New(context.Background(), Config{Python: pythonBin(t), EntryScript: "score.R", SourceDir: t.TempDir()})
		if err == nil || !strings.Contains(err.Error(), "only Python drivers are supported") {
			t.Errorf("err %v", err)
		}
	})
}

func TestCloseWaitsAndRefuses(t *testing.T) {
	r, _ := start(t, Config{EntryScript: "trivial.py", SourceDir: testdata(t)})
	done := make(chan error, 1)
	go func() {
		resp, err := do(t, r, call{body: "sleep:0.3"})
		if err == nil && resp.Status != 200 {
			err = errors.New("bad status")
		}
		done <- err
	}()
	waitFor(t, func() bool { a, _ := r.Busy(); return a == 1 })
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("in-flight request: %v", err)
	}
	if _, err := do(t, r, call{body: "x"}); !errors.Is(err, ErrClosed) {
		t.Errorf("after close: %v", err)
	}
	if r.Ready() {
		t.Error("ready after close")
	}
}

func TestParseOKMeta(t *testing.T) {
	tests := []struct {
		in   string
		ok   bool
		want int64
	}{
		{`{"t":"r","s":200,"ns":12345}`, true, 12345},
		{`{"t":"r","s":200,"ns":0}`, true, 0},
		{`{"t":"r","s":200,"ns":}`, false, 0},
		{`{"t":"r","s":200,"ns":1,"e":"x"}`, false, 0},
		{`{"t":"r","s":500,"ns":1}`, false, 0},
	}
	for _, tt := range tests {
		m, ok := parseOKMeta([]byte(tt.in))
		if ok != tt.ok || (ok && (m.NS != tt.want || m.S != 200 || m.T != "r")) {
			t.Errorf("parseOKMeta(%s) = %+v, %v", tt.in, m, ok)
		}
	}
}

// writeScript writes a score.py into a fresh source dir and returns the dir.
func writeScript(t testing.TB, src string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "score.py"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestPandasOrientsAndNumpyTypes(t *testing.T) {
	src := writeScript(t, `
import numpy as np
import pandas as pd
from inference_schema.schema_decorators import input_schema
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType

def init():
    pass

@input_schema("split", PandasParameterType(pd.DataFrame({"a": [1], "b": [0.5]}), orient="split"))
@input_schema("values", PandasParameterType(pd.DataFrame({"a": [1], "b": [0.5]}), orient="values"))
@input_schema("ints", NumpyParameterType(np.array([[1, 2]], dtype=np.int32)))
def run(split, values, ints):
    return {"split": split.to_dict(orient="list"), "values": values.to_dict(orient="list"),
            "ints": [str(ints.dtype), list(ints.shape)]}
`)
	r, _ := start(t, Config{EntryScript: "score.py", SourceDir: src})
	resp := mustDo(t, r, call{ct: "application/json", body: `{
		"split": {"columns": ["a", "b"], "index": [0, 1], "data": [[1, 2.5], [3, 4.5]]},
		"values": [[7, 8.5]],
		"ints": [[1, 2], [3, 4], [5, 6]]}`})
	// orient="values" carries no column names, and inference-schema does
	// not apply the sample's unless apply_column_names=True.
	want := `{"split": {"a": [1, 3], "b": [2.5, 4.5]}, "values": {"0": [7], "1": [8.5]}, "ints": ["int32", [3, 2]]}`
	if resp.Status != 200 || string(resp.Body) != want {
		t.Errorf("got %d %s\nwant %s", resp.Status, resp.Body, want)
	}
	// A shape that does not match the sample fails inside run(), as in Azure.
	resp = mustDo(t, r, call{ct: "application/json", body: `{"split": {"columns": ["a", "b"], "index": [0], "data": [[1, 2]]}, "values": [[1, 2]], "ints": [[1, 2, 3]]}`})
	if resp.Status != 500 || !resp.RunFailed {
		t.Errorf("bad shape: %d %s", resp.Status, resp.Body)
	}
}

func TestNumpyMissingIsClear(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil || exec.Command(py, "-c", "import numpy").Run() == nil {
		t.Skip("needs a python3 on PATH without numpy")
	}
	src := writeScript(t, `
from inference_schema.schema_decorators import input_schema
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType

def init():
    pass

@input_schema("data", NumpyParameterType([[1.0]]))
def run(data):
    return data
`)
	_, err = New(context.Background(), Config{Python: py, EntryScript: "score.py", SourceDir: src,
		Stdout: io.Discard, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	var se *StartupError
	if !errors.As(err, &se) || !strings.Contains(se.Traceback, "NumpyParameterType needs the 'numpy' package") {
		t.Errorf("err %v", err)
	}
}

// A program score.py starts in a session of its own survives the kill of a
// timed-out worker; it must not hold the protocol pipes open, or the
// timeout would wait for it.
func TestTimeoutWithEscapedChild(t *testing.T) {
	r, _ := start(t, Config{EntryScript: "escape.py", SourceDir: testdata(t)})
	const marker = "27.123" // the escaped sleep's argument, to find and stop it
	t.Cleanup(func() { exec.Command("pkill", "-f", "sleep "+marker).Run() })
	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		_, err := r.Score(ctx, &modelserver.ScoreRequest{RequestID: "e", Method: "POST", Body: []byte(marker)})
		errc <- err
	}()
	select {
	case err := <-errc:
		if !errors.Is(err, modelserver.ErrScoringTimeout) {
			t.Fatalf("err %v, want ErrScoringTimeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the timeout did not return while a program started by score.py was still running")
	}
	if out, err := exec.Command("pgrep", "-f", "sleep "+marker).Output(); err != nil || len(out) == 0 {
		t.Fatalf("the escaped program is not running (pgrep: %v): the test proves nothing", err)
	}
}

// A result json.dumps cannot encode is the server's failure, not run()'s:
// Azure answers 500 with its internal-error message and does not set
// x-ms-run-function-failed to True. An AMLResponse with a status of 500 or
// more is run()'s failure.
func TestUnserializableResult(t *testing.T) {
	src := writeScript(t, `
from azureml.contrib.services.aml_response import AMLResponse
def init():
    pass
def run(raw):
    if raw == "set":
        return {1, 2}
    return AMLResponse("no", 503)
`)
	r, _ := start(t, Config{EntryScript: "score.py", SourceDir: src})
	resp := mustDo(t, r, call{body: "set"})
	if resp.Status != 500 || resp.RunFailed || string(resp.Body) != `{"message": "An unexpected internal error occurred. Check the logs for more info."}` {
		t.Errorf("set result: %d runFailed=%v %s", resp.Status, resp.RunFailed, resp.Body)
	}
	resp = mustDo(t, r, call{body: "aml"})
	if resp.Status != 503 || !resp.RunFailed {
		t.Errorf("AMLResponse 503: %d runFailed=%v %s", resp.Status, resp.RunFailed, resp.Body)
	}
}

// request_headers holds Host, as Flask's request.headers did in Azure.
func TestRequestHeadersHost(t *testing.T) {
	src := writeScript(t, `
def init():
    pass
def run(data, request_headers):
    return {"host": request_headers.get("Host"), "custom": request_headers.get("X-Custom")}
`)
	r, _ := start(t, Config{EntryScript: "score.py", SourceDir: src})
	resp, err := r.Score(context.Background(), &modelserver.ScoreRequest{RequestID: "r1", Method: "POST", Path: "/score", Host: "scoring.example:5001",
		Header: http.Header{"X-Custom": {"1"}}, Body: []byte("x")})
	if err != nil || resp.Status != 200 || string(resp.Body) != `{"host": "scoring.example:5001", "custom": "1"}` {
		t.Fatalf("Score = %+v, %v", resp, err)
	}
}

// As Azure's no-code deployment: a classifier answers predict_proba by
// default, "method" chooses, and an unknown method is an error.
func TestNoCodeSklearnClassifierMethods(t *testing.T) {
	modelDir := t.TempDir()
	out, err := exec.Command("/usr/bin/python3", "-c", `import joblib, json, sys
from sklearn.linear_model import LogisticRegression
m = LogisticRegression().fit([[0.0], [0.2], [0.8], [1.0]], [0, 0, 1, 1])
joblib.dump(m, sys.argv[1] + "/model.pkl")
print(json.dumps({"proba": m.predict_proba([[0.9]]).tolist(), "labels": m.predict([[0.9]]).tolist()}))`, modelDir).Output()
	if err != nil {
		t.Skipf("scikit-learn: %v", err)
	}
	var want struct {
		Proba  [][]float64
		Labels []int
	}
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatal(err)
	}
	r, _ := start(t, Config{NoCodeModel: "model.pkl", ModelDir: modelDir})
	var proba [][]float64
	for _, body := range []string{`{"data": [[0.9]]}`, `{"data": [[0.9]], "method": "predict_proba"}`} {
		resp := mustDo(t, r, call{body: body, ct: "application/json"})
		if err := json.Unmarshal(resp.Body, &proba); err != nil || len(proba) != 1 || len(proba[0]) != 2 || math.Abs(proba[0][1]-want.Proba[0][1]) > 1e-9 {
			t.Errorf("%s: %d %s, want %v", body, resp.Status, resp.Body, want.Proba)
		}
	}
	if resp := mustDo(t, r, call{body: `{"data": [[0.9]], "method": "predict"}`, ct: "application/json"}); string(resp.Body) != fmt.Sprintf("[%d]", want.Labels[0]) {
		t.Errorf("predict: %d %s, want %v", resp.Status, resp.Body, want.Labels)
	}
	if resp := mustDo(t, r, call{body: `{"data": [[0.9]], "method": "bogus"}`, ct: "application/json"}); resp.Status != 500 || !resp.RunFailed {
		t.Errorf("bogus method: %d %s", resp.Status, resp.Body)
	}
}

// A crash in native code leaves the Python stack in the output
// (faulthandler, as Azure's server enables it); the request fails alone.
func TestNativeCrashShowsStack(t *testing.T) {
	src := writeScript(t, `
import ctypes
def init():
    pass
def crash_here():
    ctypes.string_at(0)
def run(raw):
    if raw == "crash":
        crash_here()
    return raw
`)
	r, out := start(t, Config{EntryScript: "score.py", SourceDir: src})
	if _, err := do(t, r, call{body: "crash"}); err == nil {
		t.Fatal("a crashed worker answered")
	}
	waitFor(t, func() bool { return strings.Contains(out.String(), "crash_here") })
	if !strings.Contains(out.String(), "Segmentation fault") {
		t.Errorf("output lacks the fault:\n%s", out)
	}
	if resp := mustDo(t, r, call{body: "ok", timeout: 20 * time.Second}); resp.Status != 200 {
		t.Errorf("after the crash: %d %s", resp.Status, resp.Body)
	}
}
