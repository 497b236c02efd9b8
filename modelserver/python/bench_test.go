package python

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/modelship/modelship/modelserver"
)

func benchScore(b *testing.B, r *Runtime, req *modelserver.ScoreRequest, parallel bool) {
	b.Helper()
	one := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := r.Score(ctx, req)
		cancel()
		if err != nil || resp.Status != 200 {
			b.Fatalf("score: %v %v", resp, err)
		}
	}
	one()
	b.ReportAllocs()
	b.ResetTimer()
	if !parallel {
		for b.Loop() {
			one()
		}
		return
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			one()
		}
	})
}

func benchRuntime(b *testing.B, cfg Config) *Runtime {
	b.Helper()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Stdout = io.Discard
	r, _ := start(b, cfg)
	return r
}

// BenchmarkTrivialScore is one run() round trip (Go -> Python -> Go) on one worker.
func BenchmarkTrivialScore(b *testing.B) {
	r := benchRuntime(b, Config{EntryScript: "echo.py", SourceDir: testdata(b)})
	benchScore(b, r, &modelserver.ScoreRequest{RequestID: "bench", Method: "POST", Path: "/score",
		Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(`{"data": [[1, 2, 3]]}`)}, false)
}

// BenchmarkTrivialScoreParallel drives two workers from concurrent callers.
func BenchmarkTrivialScoreParallel(b *testing.B) {
	r := benchRuntime(b, Config{EntryScript: "echo.py", SourceDir: testdata(b), Workers: 2})
	benchScore(b, r, &modelserver.ScoreRequest{RequestID: "bench", Method: "POST", Path: "/score",
		Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(`{"data": [[1, 2, 3]]}`)}, true)
}

// BenchmarkSklearnOneRow is a one-row Ridge predict through the Azure-style
// decorated score.py (inference-schema numpy conversion included).
func BenchmarkSklearnOneRow(b *testing.B) {
	modelDir, rows, _ := trainSklearn(b)
	r := benchRuntime(b, Config{EntryScript: "sklearn_score.py", SourceDir: testdata(b), ModelDir: modelDir})
	body, _ := json.Marshal(map[string]any{"data": rows[:1]})
	benchScore(b, r, &modelserver.ScoreRequest{RequestID: "bench", Method: "POST", Path: "/score",
		Header: http.Header{"Content-Type": {"application/json"}}, Body: body}, false)
}

// BenchmarkNoCodeSklearnOneRow is the same predict through the built-in no-code script.
func BenchmarkNoCodeSklearnOneRow(b *testing.B) {
	modelDir, rows, _ := trainSklearn(b)
	r := benchRuntime(b, Config{NoCodeModel: "model.pkl", ModelDir: modelDir})
	body, _ := json.Marshal(map[string]any{"data": rows[:1]})
	benchScore(b, r, &modelserver.ScoreRequest{RequestID: "bench", Method: "POST", Path: "/score",
		Header: http.Header{"Content-Type": {"application/json"}}, Body: body}, false)
}

// floorScript is the least a Python process can do per frame: read a frame
// from fd 3 and answer a fixed frame on fd 4.
const floorScript = `
import os, struct
r = os.fdopen(3, "rb", buffering=65536)
H = struct.Struct("<II")
reply = H.pack(2, 0) + b"{}"
while True:
    h = r.read(8)
    if len(h) < 8:
        break
    ml, bl = H.unpack(h)
    r.read(ml + bl)
    os.write(4, reply)
`

// BenchmarkPipeFloor measures the bare Go<->Python pipe ping-pong on this
// machine, the floor under BenchmarkTrivialScore (same-run comparison).
func BenchmarkPipeFloor(b *testing.B) {
	reqR, reqW, _ := os.Pipe()
	respR, respW, _ := os.Pipe()
	cmd := exec.Command(pythonBin(b), "-c", floorScript)
	cmd.ExtraFiles = []*os.File{reqR, respW}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	reqR.Close()
	respW.Close()
	defer func() { reqW.Close(); cmd.Wait(); respR.Close() }()
	frame := append([]byte{2, 0, 0, 0, 21, 0, 0, 0}, `{}{"data": [[1, 2, 3]]}`...)
	buf := make([]byte, 10)
	b.ResetTimer()
	for b.Loop() {
		if _, err := reqW.Write(frame); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(respR, buf); err != nil {
			b.Fatal(err)
		}
	}
}
