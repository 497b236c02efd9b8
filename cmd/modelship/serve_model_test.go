package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelship/modelship/modelserver/onnx"
)

// systemPython is Debian's interpreter, which has numpy, scikit-learn and
// onnx; the python3 first on PATH may not.
const systemPython = "/usr/bin/python3"

// modelshipBin is the binary built once by TestMain.
var modelshipBin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "modelship-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	modelshipBin = filepath.Join(dir, "modelship")
	build := exec.Command("go", "build", "-o", modelshipBin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building modelship:", err)
		return 1
	}
	return m.Run()
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
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

// replica is a running `modelship serve-model` child process.
type replica struct {
	cmd    *exec.Cmd
	url    string
	stderr *syncBuffer
	done   chan struct{}
	err    error // Wait's result, set when done is closed
}

// freePort returns a port free on 127.0.0.1 at the time of the call.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startReplica runs serve-model with args on a free port. The process is
// killed at the end of the test if it is still running.
func startReplica(t *testing.T, env []string, args ...string) *replica {
	t.Helper()
	port := freePort(t)
	args = append([]string{"serve-model", "--host", "127.0.0.1", "--port", strconv.Itoa(port)}, args...)
	cmd := exec.Command(modelshipBin, args...)
	cmd.Env = append(os.Environ(), env...)
	r := &replica{cmd: cmd, url: fmt.Sprintf("http://127.0.0.1:%d", port), stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout = r.stderr
	cmd.Stderr = r.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		r.err = cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			cmd.Process.Kill()
			<-r.done
		}
		if t.Failed() {
			t.Logf("serve-model output:\n%s", r.stderr)
		}
	})
	return r
}

// waitReady waits until GET /v2/health/ready answers 200.
func (r *replica) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-r.done:
			t.Fatalf("serve-model exited before ready: %v\n%s", r.err, r.stderr)
		default:
		}
		resp, err := http.Get(r.url + "/v2/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("serve-model not ready after 60s\n%s", r.stderr)
}

// wait waits for the process to exit and returns its exit code.
func (r *replica) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(timeout):
		t.Fatalf("serve-model still running after %v", timeout)
	}
	var ee *exec.ExitError
	if errors.As(r.err, &ee) {
		return ee.ExitCode()
	}
	if r.err != nil {
		t.Fatalf("waiting for serve-model: %v", r.err)
	}
	return 0
}

// httpResult is one answer of the replica.
type httpResult struct {
	status int
	header http.Header
	body   string
}

// do sends one request and reads the whole answer.
func do(t *testing.T, method, url, body string, header map[string]string) httpResult {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return httpResult{resp.StatusCode, resp.Header, string(b)}
}

func requirePython(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(systemPython); err != nil {
		t.Skipf("%s is not installed (run scripts/setup.sh): %v", systemPython, err)
	}
}

func requireONNX(t *testing.T) {
	t.Helper()
	requirePython(t)
	if _, err := os.Stat(onnx.DefaultLibraryPath()); err != nil {
		t.Skipf("ONNX Runtime library not found at %s (run scripts/setup.sh): %v", onnx.DefaultLibraryPath(), err)
	}
	if err := exec.Command(systemPython, "-c", "import onnx").Run(); err != nil {
		t.Skipf("python3-onnx is not installed (run scripts/setup.sh): %v", err)
	}
}

// writeFile writes content to dir/name.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const trivialScore = `import json, time

def init():
    global scale
    scale = 2
    print("init done")

def run(raw):
    data = json.loads(raw)
    if data.get("sleep"):
        time.sleep(data["sleep"])
    return {"result": [x * scale for x in data["data"]]}
`

func TestServeModel_ScorePy(t *testing.T) {
	requirePython(t)
	src := t.TempDir()
	writeFile(t, src, "score.py", trivialScore)
	r := startReplica(t, nil, "--entry-script", "score.py", "--source-dir", src, "--python", systemPython,
		"--model-dir", t.TempDir(), "--scoring-timeout-ms", "5000")
	r.waitReady(t)

	t.Run("Health", func(t *testing.T) {
		if got := do(t, "GET", r.url+"/", "", nil); got.status != 200 || got.body != "Healthy" {
			t.Errorf("GET / = %d %q", got.status, got.body)
		}
	})
	t.Run("Score", func(t *testing.T) {
		got := do(t, "POST", r.url+"/score", `{"data":[1,2,3]}`,
			map[string]string{"x-request-id": "req-1", "x-ms-client-request-id": "client-1"})
		if got.status != 200 {
			t.Fatalf("status %d: %s", got.status, got.body)
		}
		var out struct{ Result []float64 }
		if err := json.Unmarshal([]byte(got.body), &out); err != nil || len(out.Result) != 3 || out.Result[2] != 6 {
			t.Errorf("body %s (%v)", got.body, err)
		}
		// Azure's rule: without x-ms-request-id, it carries the client id.
		for k, want := range map[string]string{"x-request-id": "req-1", "x-ms-request-id": "client-1", "x-ms-client-request-id": "client-1", "x-ms-run-function-failed": "False"} {
			if v := got.header.Get(k); v != want {
				t.Errorf("%s = %q, want %q", k, v, want)
			}
		}
		if _, err := strconv.ParseFloat(got.header.Get("x-ms-run-fn-exec-ms"), 64); err != nil {
			t.Errorf("x-ms-run-fn-exec-ms = %q", got.header.Get("x-ms-run-fn-exec-ms"))
		}
	})
	t.Run("ScoreRunFails", func(t *testing.T) {
		got := do(t, "POST", r.url+"/score", `{"nodata":1}`, nil)
		if got.status != 500 || got.header.Get("x-ms-run-function-failed") != "True" || !strings.Contains(got.body, "message") {
			t.Errorf("got %d %v %s", got.status, got.header, got.body)
		}
	})
	t.Run("Score405", func(t *testing.T) {
		if got := do(t, "PUT", r.url+"/score", "{}", nil); got.status != 405 {
			t.Errorf("PUT /score = %d", got.status)
		}
	})
	t.Run("Swagger", func(t *testing.T) {
		for _, v := range []string{"", "?version=2", "?version=3"} {
			got := do(t, "GET", r.url+"/swagger.json"+v, "", nil)
			if got.status != 200 || !json.Valid([]byte(got.body)) {
				t.Errorf("swagger%s = %d %.200s", v, got.status, got.body)
			}
		}
		if got := do(t, "GET", r.url+"/swagger.json?version=9", "", nil); got.status != 404 {
			t.Errorf("swagger version 9 = %d", got.status)
		}
	})
	t.Run("V2", func(t *testing.T) {
		for _, p := range []string{"/v2", "/v2/health/live", "/v2/health/ready"} {
			if got := do(t, "GET", r.url+p, "", nil); got.status != 200 {
				t.Errorf("GET %s = %d %s", p, got.status, got.body)
			}
		}
	})
	t.Run("Metrics", func(t *testing.T) {
		got := do(t, "GET", r.url+"/metrics", "", nil)
		if got.status != 200 || !strings.Contains(got.body, `modelship_modelserver_requests_total{code="200",route="/score"}`) ||
			!strings.Contains(got.body, "modelship_modelserver_busy_workers") {
			t.Errorf("metrics = %d %.500s", got.status, got.body)
		}
	})

	// SIGTERM while a request runs: the request completes, the process
	// exits cleanly, and new connections are refused.
	type result struct {
		httpResult
		err error
	}
	inflight := make(chan result, 1)
	go func() {
		resp, err := http.Post(r.url+"/score", "application/json", strings.NewReader(`{"data":[5],"sleep":1}`))
		if err != nil {
			inflight <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		inflight <- result{httpResult{resp.StatusCode, resp.Header, string(b)}, err}
	}()
	time.Sleep(300 * time.Millisecond)
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	res := <-inflight
	if res.err != nil || res.status != 200 || !strings.Contains(res.body, "10") {
		t.Fatalf("in-flight request during SIGTERM: %v %d %s", res.err, res.status, res.body)
	}
	if code := r.wait(t, 20*time.Second); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
	if _, err := http.Get(r.url + "/"); err == nil {
		t.Error("server still answers after exit")
	}
}

func TestServeModel_InitFails(t *testing.T) {
	requirePython(t)
	src := t.TempDir()
	writeFile(t, src, "score.py", "def init():\n    raise ValueError('model file is missing')\n\ndef run(raw):\n    return raw\n")
	models := t.TempDir()
	writeFile(t, models, "weights.bin", "x")
	r := startReplica(t, nil, "--entry-script", filepath.Join(src, "score.py"), "--python", systemPython, "--model-dir", models)
	code := r.wait(t, 60*time.Second)
	out := r.stderr.String()
	if code != 3 {
		t.Errorf("exit code = %d, want 3", code)
	}
	for _, want := range []string{"Traceback", "ValueError: model file is missing", "weights.bin"} {
		if !strings.Contains(out, want) {
			t.Errorf("stderr lacks %q:\n%s", want, out)
		}
	}
}

func TestServeModel_EnvOnly(t *testing.T) {
	requirePython(t)
	src := t.TempDir()
	writeFile(t, src, "score.py", trivialScore)
	r := startReplica(t, []string{
		"AZUREML_ENTRY_SCRIPT=score.py", "AZUREML_SOURCE_DIRECTORY=" + src, "AZUREML_MODEL_DIR=" + t.TempDir(),
		"MODELSHIP_PYTHON=" + systemPython, "AML_CORS_ORIGINS=https://app.example", "SCORING_TIMEOUT_MS=300",
	})
	r.waitReady(t)
	got := do(t, "OPTIONS", r.url+"/score", "", map[string]string{"Origin": "https://app.example"})
	if got.status != 200 || got.body != "" || got.header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("OPTIONS /score = %d %q %v", got.status, got.body, got.header)
	}
	if got := do(t, "POST", r.url+"/score", `{"data":[1]}`, nil); got.status != 200 {
		t.Errorf("POST /score = %d %s", got.status, got.body)
	}
	// SCORING_TIMEOUT_MS=300 from the environment bounds run().
	got = do(t, "POST", r.url+"/score", `{"data":[1],"sleep":3}`, nil)
	if got.status != 500 || got.body != `{"message":"Scoring timeout after 300 ms"}` {
		t.Errorf("slow run() = %d %s, want 500 Scoring timeout after 300 ms", got.status, got.body)
	}
}

// TestServeModel_AzmlinfsrvFlags runs serve-model with the command line of
// Azure's azmlinfsrv (underscored flags, --worker_count, --model_dir,
// --access_control_allow_origins).
func TestServeModel_AzmlinfsrvFlags(t *testing.T) {
	requirePython(t)
	src := t.TempDir()
	script := writeFile(t, src, "score.py", trivialScore+`
import os
def model_dir():
    return os.environ["AZUREML_MODEL_DIR"]
`)
	models := t.TempDir()
	r := startReplica(t, []string{"MODELSHIP_PYTHON=" + systemPython},
		"--entry_script", script, "--model_dir", models, "--worker_count", "2",
		"--access_control_allow_origins", "https://app.example")
	r.waitReady(t)
	if got := do(t, "POST", r.url+"/score", `{"data":[1, 2]}`, nil); got.status != 200 || got.body != `{"result": [2, 4]}` {
		t.Errorf("POST /score = %d %s", got.status, got.body)
	}
	got := do(t, "OPTIONS", r.url+"/score", "", map[string]string{"Origin": "https://app.example"})
	if got.header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("--access_control_allow_origins: OPTIONS /score headers %v", got.header)
	}
	if out := r.stderr.String(); !strings.Contains(out, "workers=2") || !strings.Contains(out, models) {
		t.Errorf("--worker_count 2 / --model_dir not applied; output:\n%s", out)
	}
}

// corsScore is Azure's CORS sample (how-to-deploy-advanced-entry-script):
// a @rawhttp run() that answers pre-flight requests itself.
const corsScore = `from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse

def init():
    print("This is init()")

@rawhttp
def run(request):
    print("This is run()")
    if request.method == 'GET':
        return AMLResponse(request.full_path, 200)
    elif request.method == 'POST':
        resp = AMLResponse(request.get_data(False), 200)
        resp.headers['Access-Control-Allow-Origin'] = "http://www.example.com"
        return resp
    elif request.method == 'OPTIONS':
        resp = AMLResponse("", 200)
        resp.headers['Access-Control-Allow-Origin'] = "http://www.example.com"
        resp.headers['Access-Control-Allow-Methods'] = "OPTIONS, GET, POST"
        resp.headers['Access-Control-Allow-Headers'] = "*"
        return resp
    else:
        return AMLResponse("bad request", 500)
`

// TestServeModel_RawHTTPOptions: OPTIONS /score reaches a @rawhttp run(),
// as in Azure's inference server, unless CORS origins are configured
// (then the server answers the pre-flight itself).
func TestServeModel_RawHTTPOptions(t *testing.T) {
	requirePython(t)
	src := t.TempDir()
	writeFile(t, src, "score.py", corsScore)
	preflight := map[string]string{"Origin": "http://www.example.com", "Access-Control-Request-Method": "POST"}

	r := startReplica(t, []string{"MODELSHIP_PYTHON=" + systemPython}, "--entry-script", "score.py", "--source-dir", src)
	r.waitReady(t)
	got := do(t, "OPTIONS", r.url+"/score", "", preflight)
	if got.status != 200 || got.header.Get("Access-Control-Allow-Methods") != "OPTIONS, GET, POST" || got.header.Get("Access-Control-Allow-Origin") != "http://www.example.com" {
		t.Errorf("OPTIONS /score = %d %v, want run()'s CORS headers", got.status, got.header)
	}
	if got := do(t, "POST", r.url+"/score", "hello", nil); got.status != 200 || got.body != "hello" {
		t.Errorf("POST /score = %d %q", got.status, got.body)
	}

	r2 := startReplica(t, []string{"MODELSHIP_PYTHON=" + systemPython}, "--entry-script", "score.py", "--source-dir", src, "--cors-origins", "https://app.example")
	r2.waitReady(t)
	got = do(t, "OPTIONS", r2.url+"/score", "", map[string]string{"Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
	if got.status != 200 || got.header.Get("Access-Control-Allow-Origin") != "https://app.example" || got.header.Get("Access-Control-Allow-Methods") != "GET, POST, OPTIONS" {
		t.Errorf("OPTIONS /score with --cors-origins = %d %v, want the server's pre-flight answer", got.status, got.header)
	}
	if strings.Count(r2.stderr.String(), "This is run()") != 0 {
		t.Errorf("run() was called for a pre-flight the server answers:\n%s", r2.stderr)
	}
}

// genSklearn trains a small regression, saves it as model.pkl in argv[1]
// and prints a row and its prediction.
const genSklearn = `import json, sys, joblib
from sklearn.linear_model import LinearRegression
m = LinearRegression().fit([[0, 0], [1, 0], [0, 1], [1, 1]], [1, 3, 5, 7])
joblib.dump(m, sys.argv[1] + "/model.pkl")
print(json.dumps(m.predict([[2, 3]]).tolist()))
`

func TestServeModel_SklearnNoCode(t *testing.T) {
	requirePython(t)
	modelDir := filepath.Join(t.TempDir(), "regression", "1")
	if err := os.MkdirAll(modelDir, 0o755); err != nil {
		t.Fatal(err)
	}
	gen := writeFile(t, t.TempDir(), "gen.py", genSklearn)
	want, err := exec.Command(systemPython, gen, modelDir).Output()
	if err != nil {
		t.Fatalf("training the model: %v", err)
	}
	r := startReplica(t, []string{"AZUREML_MODEL_DIR=" + modelDir}, "--python", systemPython)
	r.waitReady(t)
	got := do(t, "POST", r.url+"/score", `{"data":[[2,3]]}`, nil)
	var gotPred, wantPred []float64
	if err := json.Unmarshal([]byte(got.body), &gotPred); err != nil || got.status != 200 {
		t.Fatalf("POST /score = %d %s (%v)", got.status, got.body, err)
	}
	if err := json.Unmarshal(want, &wantPred); err != nil {
		t.Fatal(err)
	}
	if len(gotPred) != 1 || gotPred[0]-wantPred[0] > 1e-9 || wantPred[0]-gotPred[0] > 1e-9 {
		t.Errorf("prediction %v, want %v", gotPred, wantPred)
	}
}

// genLinearONNX writes a model computing output = input·W + b for a 4x3
// W and returns the path. It needs /usr/bin/python3 with onnx.
const genLinearONNX = `import sys, numpy as np, onnx
from onnx import helper, TensorProto, numpy_helper
W = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
b = np.array([1, 2, 3], dtype=np.float32)
g = helper.make_graph(
    [helper.make_node("Gemm", ["input", "W", "b"], ["output"])],
    "linear",
    [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4])],
    [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3])],
    [numpy_helper.from_array(W, "W"), numpy_helper.from_array(b, "b")])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
m.ir_version = 8
onnx.checker.check_model(m)
onnx.save(m, sys.argv[1])
`

// linearWant is the output of the linear model for input row x.
func linearWant(x [4]float32) [3]float32 {
	var y [3]float32
	for j := range 3 {
		y[j] = float32(j + 1)
		for i := range 4 {
			y[j] += x[i] * float32(i*3+j) / 10
		}
	}
	return y
}

// linearModelDir generates the linear ONNX model (genLinearONNX) in a
// <tmp>/linear/1 folder and returns the folder.
func linearModelDir(t *testing.T) string {
	t.Helper()
	modelDir := filepath.Join(t.TempDir(), "linear", "1")
	if err := os.MkdirAll(modelDir, 0o755); err != nil {
		t.Fatal(err)
	}
	gen := writeFile(t, t.TempDir(), "gen.py", genLinearONNX)
	if out, err := exec.Command(systemPython, gen, filepath.Join(modelDir, "model.onnx")).CombinedOutput(); err != nil {
		t.Fatalf("generating the ONNX model: %v\n%s", err, out)
	}
	return modelDir
}

func TestServeModel_ONNX(t *testing.T) {
	requireONNX(t)
	modelDir := linearModelDir(t)
	r := startReplica(t, nil, "--model-dir", modelDir, "--model-name", "linear", "--model-version", "1")
	r.waitReady(t)

	t.Run("Metadata", func(t *testing.T) {
		got := do(t, "GET", r.url+"/v2/models/linear", "", nil)
		if got.status != 200 {
			t.Fatalf("status %d: %s", got.status, got.body)
		}
		var md struct {
			Name   string
			Inputs []struct {
				Name, Datatype string
				Shape          []int64
			}
		}
		if err := json.Unmarshal([]byte(got.body), &md); err != nil || md.Name != "linear" || len(md.Inputs) != 1 ||
			md.Inputs[0].Name != "input" || md.Inputs[0].Datatype != "FP32" {
			t.Errorf("metadata %s (%v)", got.body, err)
		}
		for _, p := range []string{"/v2/models/linear/ready", "/v2/models/linear/versions/1", "/v2/models/linear/versions/1/ready"} {
			if got := do(t, "GET", r.url+p, "", nil); got.status != 200 {
				t.Errorf("GET %s = %d %s", p, got.status, got.body)
			}
		}
	})
	t.Run("Infer", func(t *testing.T) {
		rows := [][4]float32{{1, 2, 3, 4}, {0.5, -1, 0, 2}}
		got := do(t, "POST", r.url+"/v2/models/linear/infer",
			`{"id":"a1","inputs":[{"name":"input","shape":[2,4],"datatype":"FP32","data":[[1,2,3,4],[0.5,-1,0,2]]}]}`, nil)
		if got.status != 200 {
			t.Fatalf("status %d: %s", got.status, got.body)
		}
		var out struct {
			ID      string
			Outputs []struct {
				Name  string
				Shape []int64
				Data  []float32
			}
		}
		if err := json.Unmarshal([]byte(got.body), &out); err != nil || out.ID != "a1" || len(out.Outputs) != 1 ||
			len(out.Outputs[0].Data) != 6 {
			t.Fatalf("infer body %s (%v)", got.body, err)
		}
		for i, x := range rows {
			want := linearWant(x)
			for j := range 3 {
				if d := out.Outputs[0].Data[i*3+j] - want[j]; d > 1e-5 || d < -1e-5 {
					t.Errorf("output[%d][%d] = %v, want %v", i, j, out.Outputs[0].Data[i*3+j], want[j])
				}
			}
		}
	})
	// Triton's and KServe's clients send tensors in binary by default.
	t.Run("InferBinaryInput", func(t *testing.T) {
		js := `{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":16}}],"parameters":{"binary_data_output":true}}`
		body := []byte(js)
		x := [4]float32{1, 2, 3, 4}
		for _, f := range x {
			body = binary.LittleEndian.AppendUint32(body, math.Float32bits(f))
		}
		got := do(t, "POST", r.url+"/v2/models/linear/infer", string(body), map[string]string{"Inference-Header-Content-Length": strconv.Itoa(len(js))})
		var out struct{ Outputs []struct{ Data []float32 } }
		if err := json.Unmarshal([]byte(got.body), &out); got.status != 200 || err != nil || len(out.Outputs) != 1 || len(out.Outputs[0].Data) != 3 {
			t.Fatalf("binary infer = %d %s (%v)", got.status, got.body, err)
		}
		for j, want := range linearWant(x) {
			if d := out.Outputs[0].Data[j] - want; d > 1e-5 || d < -1e-5 {
				t.Errorf("output[%d] = %v, want %v", j, out.Outputs[0].Data[j], want)
			}
		}
	})
	t.Run("InferErrors", func(t *testing.T) {
		for _, tc := range []struct {
			path, body string
			status     int
		}{
			{"/v2/models/nope/infer", `{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}`, 404},
			{"/v2/models/linear/infer", `{"inputs":[{"name":"input","shape":[1,5],"datatype":"FP32","data":[1,2,3,4,5]}]}`, 400},
			{"/v2/models/linear/infer", `{"inputs":`, 400},
		} {
			got := do(t, "POST", r.url+tc.path, tc.body, nil)
			var e struct{ Error string }
			if got.status != tc.status || json.Unmarshal([]byte(got.body), &e) != nil || e.Error == "" {
				t.Errorf("POST %s %s = %d %s, want %d with {\"error\"}", tc.path, tc.body, got.status, got.body, tc.status)
			}
		}
	})
	t.Run("Score", func(t *testing.T) {
		got := do(t, "POST", r.url+"/score", `{"data":[[1,2,3,4]]}`, nil)
		want := linearWant([4]float32{1, 2, 3, 4})
		if got.status != 200 || !strings.Contains(got.body, strconv.FormatFloat(float64(want[0]), 'f', -1, 32)) {
			t.Errorf("POST /score = %d %s, want to contain %v", got.status, got.body, want)
		}
	})
	t.Run("Swagger", func(t *testing.T) {
		got := do(t, "GET", r.url+"/swagger.json", "", nil)
		if got.status != 200 || !json.Valid([]byte(got.body)) {
			t.Errorf("swagger = %d %.200s", got.status, got.body)
		}
	})
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(t, 20*time.Second); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
}

func TestChooseRuntime(t *testing.T) {
	dir := t.TempDir()
	onnxDir := filepath.Join(dir, "onnx")
	sklearnDir := filepath.Join(dir, "sklearn", "1")
	emptyDir := filepath.Join(dir, "empty")
	for _, d := range []string{onnxDir, sklearnDir, emptyDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, onnxDir, "m.onnx", "x")
	writeFile(t, sklearnDir, "model.pkl", "x")
	tests := []struct {
		name    string
		o       serveModelOptions
		want    string
		wantErr bool
	}{
		{"EntryScript", serveModelOptions{runtime: "auto", entryScript: "score.py", modelDir: onnxDir}, "python", false},
		{"ONNXFiles", serveModelOptions{runtime: "auto", modelDir: onnxDir}, "onnx", false},
		{"PickleFile", serveModelOptions{runtime: "auto", modelDir: filepath.Join(dir, "sklearn")}, "sklearn", false},
		{"Empty", serveModelOptions{runtime: "auto", modelDir: emptyDir}, "", true},
		{"Nothing", serveModelOptions{runtime: "auto"}, "", true},
		{"ExplicitONNX", serveModelOptions{runtime: "onnx", modelDir: emptyDir}, "onnx", false},
		{"PythonNeedsScript", serveModelOptions{runtime: "python", modelDir: onnxDir}, "", true},
		{"Unknown", serveModelOptions{runtime: "tensorflow"}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := chooseRuntime(&tt.o)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("chooseRuntime = %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestONNXModels(t *testing.T) {
	root := t.TempDir()
	mk := func(rel string) string {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Dir(p), filepath.Base(p), "x")
		return p
	}
	mk("single/digits/3/model.onnx")
	mk("multi/digits/1/model.onnx")
	mk("multi/iris/2/sub/iris.onnx")
	mk("plain/mlp.onnx")
	mk("two/a.onnx")
	mk("two/b.onnx")
	tests := []struct {
		name, dir, modelName, version string
		want                          []string // name/version per model
		wantErr                       bool
	}{
		{name: "AzureSingle", dir: "single/digits/3", want: []string{"digits/3"}},
		{name: "AzureSingleOverride", dir: "single/digits/3", modelName: "d", version: "9", want: []string{"d/9"}},
		{name: "AzureRoot", dir: "multi", want: []string{"digits/1", "iris/2"}},
		{name: "FileName", dir: "plain", want: []string{"mlp/"}},
		{name: "FileNameRenamed", dir: "plain", modelName: "m", version: "4", want: []string{"m/4"}},
		{name: "SeveralWithoutLayout", dir: "two", wantErr: true},
		{name: "AzureRootOfOne", dir: "single", want: []string{"digits/3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			models, err := onnxModels(filepath.Join(root, tt.dir), tt.modelName, tt.version)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			var got []string
			for _, m := range models {
				got = append(got, m.Name+"/"+m.Version)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("models = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestServeModel_SlowInit checks that liveness answers while init() runs
// and readiness turns true only after it.
func TestServeModel_SlowInit(t *testing.T) {
	requirePython(t)
	src := t.TempDir()
	marker := filepath.Join(src, "init-done")
	writeFile(t, src, "score.py", fmt.Sprintf(`import time
def init():
    time.sleep(1.5)
    open(%q, "w").close()

def run(raw):
    return "ok"
`, marker))
	r := startReplica(t, nil, "--entry-script", "score.py", "--source-dir", src, "--python", systemPython)
	waitFor(t, 30*time.Second, func() bool {
		resp, err := http.Get(r.url + "/")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	if _, err := os.Stat(marker); err == nil {
		t.Skip("init() finished before the first probe; machine too slow to observe the starting state")
	}
	for p, want := range map[string]int{"/v2/health/live": 200, "/v2/health/ready": 503, "/score": 503} {
		method := "GET"
		if p == "/score" {
			method = "POST"
		}
		if got := do(t, method, r.url+p, "{}", nil); got.status != want {
			t.Errorf("%s %s during init = %d %s, want %d", method, p, got.status, got.body, want)
		}
	}
	r.waitReady(t)
	if got := do(t, "POST", r.url+"/score", "{}", nil); got.status != 200 {
		t.Errorf("POST /score after init = %d %s", got.status, got.body)
	}
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// statusKB reads a kB field of /proc/<pid>/status.
func statusKB(t *testing.T, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// An ONNX replica idle after traffic gives back the pages of its binary
// and of ONNX Runtime's library it faulted in, and still answers.
func TestServeModel_ReleasesMemoryWhenIdle(t *testing.T) {
	requireONNX(t)
	modelDir := linearModelDir(t)
	r := startReplica(t, nil, "--model-dir", modelDir, "--model-name", "linear", "--model-version", "1", "--release-memory-after", "1500ms")
	r.waitReady(t)
	score := func() {
		t.Helper()
		if got := do(t, "POST", r.url+"/score", `{"data": [[1, 2, 3, 4]]}`, nil); got.status != 200 {
			t.Fatalf("score: %d %s", got.status, got.body)
		}
	}
	for range 200 {
		score()
	}
	pid := r.cmd.Process.Pid
	busy := statusKB(t, pid, "RssFile:")
	deadline := time.Now().Add(15 * time.Second)
	for statusKB(t, pid, "RssFile:") > busy/2 {
		if time.Now().After(deadline) {
			t.Fatalf("file-backed RSS still %d kB (%d kB right after the traffic) 15 s later", statusKB(t, pid, "RssFile:"), busy)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("file-backed RSS %d kB after the traffic, %d kB idle", busy, statusKB(t, pid, "RssFile:"))
	score() // faults back what it needs
}

func TestServeModel_BadReleaseMemoryAfter(t *testing.T) {
	r := startReplica(t, nil, "--model-dir", t.TempDir(), "--release-memory-after", "-5s")
	if code := r.wait(t, 20*time.Second); code == 0 {
		t.Fatal("serve-model accepted --release-memory-after -5s")
	}
	if !strings.Contains(r.stderr.String(), "--release-memory-after must be 0 (never) or a positive duration") {
		t.Fatalf("stderr does not name the flag:\n%s", r.stderr)
	}
}
