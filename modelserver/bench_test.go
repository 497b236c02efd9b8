package modelserver_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelship/modelship/modelserver"
	"github.com/modelship/modelship/modelserver/onnx"
	"github.com/modelship/modelship/modelserver/python"
	"github.com/modelship/modelship/oip"
)

// Load-test settings: closed-loop clients on keep-alive connections, each
// run bounded by b.N requests and benchMaxTime.
const (
	benchConns   = 16
	benchMaxTime = 20 * time.Second
)

// mlpInput is a 1x64 FP32 OIP request, the input of the 64->256->10 MLP.
var mlpInput = func() []byte {
	var b strings.Builder
	b.WriteString(`{"inputs":[{"name":"input","shape":[1,64],"datatype":"FP32","data":[`)
	for i := range 64 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString([]string{"0", "0.5", "1", "0.25"}[i%4])
	}
	b.WriteString(`]}]}`)
	return []byte(b.String())
}()

// serveBench serves h on a loopback listener until the returned stop is
// called.
func serveBench(b *testing.B, h http.Handler) (addr string, stop func()) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := &http.Server{Handler: h}
	done := make(chan struct{})
	go func() { defer close(done); hs.Serve(ln) }()
	return ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(ctx)
		<-done
	}
}

// noopHandler reads the body and answers a fixed JSON: the ceiling of any
// Go HTTP server on this machine.
func noopHandler(body []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
}

// cannedRuntime answers every inference with the same tensor, so that a
// load test of it measures the server alone.
type cannedRuntime struct{ fakeRuntime }

func (c *cannedRuntime) Infer(_ context.Context, model, version string, req *oip.InferRequest) (*oip.InferResponse, error) {
	return &oip.InferResponse{ModelName: model, ModelVersion: version, ID: req.ID, Outputs: []oip.Tensor{{
		Name: "probabilities", Shape: []int64{1, 10}, Datatype: "FP32",
		Data: []float32{0.012345678, 0.023456789, 0.034567891, 0.045678912, 0.056789123, 0.067891234, 0.078912345, 0.089123456, 0.091234567, 0.5},
	}}}, nil
}

// benchTarget is one server under load in BenchmarkLoopback.
type benchTarget struct {
	name   string
	addr   string
	req    []byte
	closed loadResult // closed-loop runs, summed over rounds
	half   loadResult // the run at half the closed-loop rate
}

// benchRounds is how many times BenchmarkLoopback alternates between its
// targets; alternating in short slices keeps the ratios fair on a machine
// whose background load drifts.
const benchRounds = 10

// BenchmarkLoopback load-tests the replica server over loopback HTTP with
// one closed-loop client (benchConns keep-alive connections): a no-op Go
// handler answering the same JSON (the ceiling), the server over the real
// ONNX runtime (MLP 64->256->10, batch 1, OIP /infer), over the real Python
// runtime (trivial score.py, /score), and over a canned in-memory runtime
// (the server's own cost). Each target gets b.N requests in benchRounds
// interleaved slices, then b.N/4 requests paced at half its measured rate
// for the p99 at half load. Run it with a fixed count:
//
//	go test ./modelserver/ -run '^$' -bench Loopback -benchtime 50000x
func BenchmarkLoopback(b *testing.B) {
	onnxRT := startONNXBench(b)
	onnxServer := modelserver.NewServer(onnxRT, modelserver.ServerConfig{Logger: quietLogger})
	inferReq := rawPost("/v2/models/mlp/infer", "application/json", mlpInput)
	scoreReq := rawPost("/score", "application/json", []byte(`{"data":[[1,2,3,4]]}`))
	// The no-op handler answers exactly what the ONNX route answers.
	w := httptest.NewRecorder()
	onnxServer.Handler().ServeHTTP(w, httptest.NewRequest("POST", "/v2/models/mlp/infer", bytes.NewReader(mlpInput)))
	if w.Code != 200 {
		b.Fatalf("ONNX infer: %d %s", w.Code, w.Body)
	}
	pyServer := modelserver.NewServer(startPythonBench(b), modelserver.ServerConfig{Logger: quietLogger})
	cannedServer := modelserver.NewServer(&cannedRuntime{}, modelserver.ServerConfig{Logger: quietLogger})

	targets := []*benchTarget{
		{name: "noop-handler", req: inferReq},
		{name: "onnx-mlp-infer", req: inferReq},
		{name: "scorepy-trivial", req: scoreReq},
		{name: "server-canned-infer", req: inferReq},
	}
	for i, h := range []http.Handler{noopHandler(w.Body.Bytes()), onnxServer.Handler(), pyServer.Handler(), cannedServer.Handler()} {
		addr, stop := serveBench(b, h)
		defer stop()
		targets[i].addr = addr
		// Warm up connections, workers and code paths.
		if _, err := runLoad(addr, targets[i].req, benchConns, 4*benchConns, 0, benchMaxTime); err != nil {
			b.Fatalf("%s: %v", targets[i].name, err)
		}
	}

	slice := max(b.N/benchRounds, 1)
	b.ResetTimer()
	for range benchRounds {
		for _, t := range targets {
			res, err := runLoad(t.addr, t.req, benchConns, slice, 0, benchMaxTime)
			if err != nil {
				b.Fatalf("%s: %v", t.name, err)
			}
			t.closed.add(res)
		}
	}
	for _, t := range targets {
		res, err := runLoad(t.addr, t.req, benchConns, max(b.N/4, 1), t.closed.rps()/2, benchMaxTime)
		if err != nil {
			b.Fatalf("%s at half rate: %v", t.name, err)
		}
		t.half.add(res)
	}
	b.StopTimer()

	ceiling := targets[0].closed.rps()
	for _, t := range targets {
		b.ReportMetric(t.closed.rps(), t.name+"-req/s")
		b.Logf("%-20s %8.0f req/s  %5.1f%% of no-op  p50 %7v  p99 %7v  | at half rate (%5.0f req/s): p50 %7v  p99 %7v",
			t.name, t.closed.rps(), 100*t.closed.rps()/ceiling, t.closed.p50, t.closed.p99,
			t.half.rps(), t.half.p50, t.half.p99)
	}
	b.ReportMetric(100*targets[1].closed.rps()/ceiling, "onnx-%-of-noop")
	b.ReportMetric(100*targets[2].closed.rps()/ceiling, "scorepy-%-of-noop")
	b.ReportMetric(0, "ns/op")
}

// genMLP writes an MLP 64->256->10 (Gemm, Relu, Gemm, Softmax) with fixed
// random weights, input "input" [batch, 64], output "probabilities".
const genMLP = `import sys, numpy as np, onnx
from onnx import helper, TensorProto, numpy_helper
rng = np.random.default_rng(7)
W0 = rng.normal(0, 0.1, (64, 256)).astype(np.float32); B0 = np.zeros(256, np.float32)
W1 = rng.normal(0, 0.1, (256, 10)).astype(np.float32); B1 = np.zeros(10, np.float32)
g = helper.make_graph([
    helper.make_node("Gemm", ["input", "W0", "B0"], ["z0"]),
    helper.make_node("Relu", ["z0"], ["a0"]),
    helper.make_node("Gemm", ["a0", "W1", "B1"], ["z1"]),
    helper.make_node("Softmax", ["z1"], ["probabilities"], axis=1)],
    "mlp",
    [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 64])],
    [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])],
    [numpy_helper.from_array(a, n) for a, n in ((W0, "W0"), (B0, "B0"), (W1, "W1"), (B1, "B1"))])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
m.ir_version = 8
onnx.save(m, sys.argv[1])
`

// startONNXBench generates the MLP and starts the ONNX runtime on it.
func startONNXBench(b *testing.B) *onnx.Runtime {
	b.Helper()
	if _, err := os.Stat(onnx.DefaultLibraryPath()); err != nil {
		b.Skipf("ONNX Runtime library not found (run scripts/setup.sh): %v", err)
	}
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		b.Skip("/usr/bin/python3 is not installed")
	}
	dir := b.TempDir()
	script, model := filepath.Join(dir, "gen.py"), filepath.Join(dir, "mlp.onnx")
	if err := os.WriteFile(script, []byte(genMLP), 0o644); err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command("/usr/bin/python3", script, model).CombinedOutput(); err != nil {
		b.Fatalf("generating the MLP: %v\n%s", err, out)
	}
	rt, err := onnx.New(onnx.Config{Models: []onnx.Model{{Name: "mlp", Version: "1", Path: model}}, MaxConcurrency: benchONNXConcurrency})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rt.Close(context.Background()) })
	return rt
}

// discardWriter is a minimal http.ResponseWriter for handler benchmarks.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

// benchHandler measures the handler alone (no network) for one request.
func benchHandler(b *testing.B, h http.Handler, path string, body []byte) {
	b.ReportAllocs()
	r := &bytesReader{}
	req, _ := http.NewRequest("POST", path, r)
	req.Header.Set("Content-Type", "application/json")
	w := &discardWriter{h: make(http.Header)}
	for b.Loop() {
		r.reset(body)
		req.ContentLength = int64(len(body))
		clear(w.h)
		h.ServeHTTP(w, req)
	}
}

// bytesReader is a resettable request body.
type bytesReader struct{ strings.Reader }

func (r *bytesReader) reset(b []byte) { r.Reader.Reset(string(b)) }
func (r *bytesReader) Close() error   { return nil }

func BenchmarkHandler(b *testing.B) {
	b.Run("infer-canned", func(b *testing.B) {
		s := modelserver.NewServer(&cannedRuntime{}, modelserver.ServerConfig{Logger: quietLogger})
		benchHandler(b, s.Handler(), "/v2/models/mlp/infer", mlpInput)
	})
	b.Run("infer-onnx-mlp", func(b *testing.B) {
		s := modelserver.NewServer(startONNXBench(b), modelserver.ServerConfig{Logger: quietLogger})
		benchHandler(b, s.Handler(), "/v2/models/mlp/infer", mlpInput)
	})
	b.Run("score-python-trivial", func(b *testing.B) {
		s := modelserver.NewServer(startPythonBench(b), modelserver.ServerConfig{Logger: quietLogger})
		benchHandler(b, s.Handler(), "/score", []byte(`{"data":[[1,2,3,4]]}`))
	})
	b.Run("score-echo", func(b *testing.B) {
		s := modelserver.NewServer(&fakeRuntime{}, modelserver.ServerConfig{Logger: quietLogger})
		benchHandler(b, s.Handler(), "/score", []byte(`{"data":[[1,2,3,4]]}`))
	})
}

// trivialScorePy is the "trivial score.py" of the benchmark.
const trivialScorePy = `import json

def init():
    pass

def run(raw):
    data = json.loads(raw)
    return {"predictions": [len(data["data"])]}
`

// benchPythonWorkers and benchONNXConcurrency size the runtimes of the
// benchmark: one worker (or one concurrent inference) per core.
const (
	benchPythonWorkers   = 2
	benchONNXConcurrency = 2
)

// startPythonBench starts the Python runtime on trivialScorePy with
// /usr/bin/python3 and closes it at the end of the benchmark.
func startPythonBench(b *testing.B) *python.Runtime {
	b.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		b.Skip("/usr/bin/python3 is not installed")
	}
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "score.py"), []byte(trivialScorePy), 0o644); err != nil {
		b.Fatal(err)
	}
	rt, err := python.New(context.Background(), python.Config{
		Python: "/usr/bin/python3", EntryScript: "score.py", SourceDir: dir, ModelDir: dir,
		Workers: benchPythonWorkers, Logger: quietLogger, Stdout: io.Discard,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		rt.Close(ctx)
	})
	return rt
}
