package python

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
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
