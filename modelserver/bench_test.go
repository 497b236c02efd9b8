package modelserver_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelship/modelship/modelserver"
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

// mlpOutput is an answer of the same size as the MLP's.
const mlpOutput = `{"model_name":"mlp","model_version":"1","outputs":[{"name":"probabilities","shape":[1,10],"datatype":"FP32",` +
	`"data":[0.012345678,0.023456789,0.034567891,0.045678912,0.056789123,0.067891234,0.078912345,0.089123456,0.091234567,0.5]}]}`

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

// benchLoad runs b.N requests of req against addr and reports req/s and
// latency percentiles.
func benchLoad(b *testing.B, addr string, req []byte) {
	b.Helper()
	// Warm up connections and code paths.
	if _, err := runLoad(addr, req, benchConns, 2*benchConns, benchMaxTime); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	res, err := runLoad(addr, req, benchConns, b.N, benchMaxTime)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(res.rps(), "req/s")
	b.ReportMetric(float64(res.p50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(res.p99.Microseconds()), "p99-µs")
	b.ReportMetric(0, "ns/op")
	b.Logf("%s", res)
}

// noopHandler reads the body and answers a fixed JSON: the ceiling of any
// Go HTTP server on this machine.
func noopHandler() http.Handler {
	body := []byte(mlpOutput)
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

// BenchmarkLoopback load-tests the replica server over loopback HTTP with
// the same client in one run, so the ratios between sub-benchmarks are
// meaningful. Run it with a fixed count, e.g.
//
//	go test ./modelserver/ -run '^$' -bench Loopback -benchtime 20000x
func BenchmarkLoopback(b *testing.B) {
	b.Run("noop-handler", func(b *testing.B) {
		addr, stop := serveBench(b, noopHandler())
		defer stop()
		benchLoad(b, addr, rawPost("/v2/models/mlp/infer", "application/json", mlpInput))
	})
	b.Run("server-canned-infer", func(b *testing.B) {
		s := modelserver.NewServer(&cannedRuntime{}, modelserver.ServerConfig{Logger: quietLogger})
		addr, stop := serveBench(b, s.Handler())
		defer stop()
		benchLoad(b, addr, rawPost("/v2/models/mlp/infer", "application/json", mlpInput))
	})
	b.Run("scorepy-trivial", func(b *testing.B) {
		rt := startPythonBench(b)
		s := modelserver.NewServer(rt, modelserver.ServerConfig{Logger: quietLogger})
		addr, stop := serveBench(b, s.Handler())
		defer stop()
		benchLoad(b, addr, rawPost("/score", "application/json", []byte(`{"data":[[1,2,3,4]]}`)))
	})
	b.Run("server-echo-score", func(b *testing.B) {
		s := modelserver.NewServer(&fakeRuntime{}, modelserver.ServerConfig{Logger: quietLogger})
		addr, stop := serveBench(b, s.Handler())
		defer stop()
		benchLoad(b, addr, rawPost("/score", "application/json", []byte(`{"data":[[1,2,3,4]]}`)))
	})
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

// benchPythonWorkers is the Python pool size of the benchmark: one worker
// per core.
const benchPythonWorkers = 1

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
