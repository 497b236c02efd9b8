package onnx_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/modelship/modelship/modelserver/onnx"
	"github.com/modelship/modelship/oip"
)

// BenchmarkMLP compares, for the MLP 64→256→10 at batch 1, a bare
// onnxruntime_go loop (input tensor, Run with ORT-allocated outputs, read
// them, free everything) with Runtime.Infer, with and without a deadline
// (the HTTP route always sets one), and the whole in-process request:
// decode the JSON body, Infer, encode the JSON answer.
func BenchmarkMLP(b *testing.B) {
	rt := newRuntime(b, onnx.Config{}, "digits_mlp")
	row := fixture.expected.X[0]
	path := filepath.Join(fixture.dir, "digits_mlp.onnx")

	bare := bareMLP(b, path, row)
	b.Run("bare_onnxruntime_go", func(b *testing.B) {
		for b.Loop() {
			bare()
		}
	})

	req := &oip.InferRequest{Inputs: []oip.Tensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, 64}, Data: row}}}
	b.Run("Infer", func(b *testing.B) {
		for b.Loop() {
			if _, err := rt.Infer(context.Background(), "digits_mlp", "", req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Infer_with_deadline", func(b *testing.B) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		for b.Loop() {
			if _, err := rt.Infer(ctx, "digits_mlp", "", req); err != nil {
				b.Fatal(err)
			}
		}
	})
	body, err := oip.AppendInferRequest(nil, req)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("decode_Infer_encode", func(b *testing.B) {
		var out []byte
		for b.Loop() {
			r, err := oip.DecodeInferRequest(body)
			if err != nil {
				b.Fatal(err)
			}
			resp, err := rt.Infer(context.Background(), "digits_mlp", "", r)
			if err != nil {
				b.Fatal(err)
			}
			if out, err = oip.AppendInferResponse(out[:0], resp); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// bareMLP returns one batch-1 call of the MLP through onnxruntime_go alone:
// input tensor, Run with ORT-allocated outputs, read them, free everything.
func bareMLP(b *testing.B, path string, row []float32) func() {
	opts, err := ort.NewSessionOptions()
	if err != nil {
		b.Fatal(err)
	}
	defer opts.Destroy()
	opts.SetIntraOpNumThreads(1)
	opts.SetInterOpNumThreads(1)
	s, err := ort.NewDynamicAdvancedSession(path, []string{"input"}, []string{"probabilities", "label"}, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Destroy() })
	return func() {
		in, err := ort.NewTensor(ort.NewShape(1, 64), row)
		if err != nil {
			b.Fatal(err)
		}
		outs := []ort.Value{nil, nil}
		if err := s.Run([]ort.Value{in}, outs); err != nil {
			b.Fatal(err)
		}
		_ = outs[0].(*ort.Tensor[float32]).GetData()
		_ = outs[1].(*ort.Tensor[int64]).GetData()
		in.Destroy()
		outs[0].Destroy()
		outs[1].Destroy()
	}
}

// BenchmarkMLPOverhead interleaves blocks of bare onnxruntime_go calls and
// Runtime.Infer calls so that both see the same machine load, and reports
// each one's time per call and Infer's overhead in percent: with a deadline
// (as the HTTP route calls it, so a Run can be terminated) and without.
func BenchmarkMLPOverhead(b *testing.B) {
	rt := newRuntime(b, onnx.Config{}, "digits_mlp")
	row := fixture.expected.X[0]
	bare := bareMLP(b, filepath.Join(fixture.dir, "digits_mlp.onnx"), row)
	req := &oip.InferRequest{Inputs: []oip.Tensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, 64}, Data: row}}}
	withDeadline, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	for _, c := range []struct {
		name string
		ctx  context.Context
	}{{"deadline", withDeadline}, {"background", context.Background()}} {
		b.Run(c.name, func(b *testing.B) {
			const block = 32
			var tBare, tInfer time.Duration
			n := 0
			timeBare := func() {
				start := time.Now()
				for range block {
					bare()
				}
				tBare += time.Since(start)
			}
			timeInfer := func() {
				start := time.Now()
				for range block {
					if _, err := rt.Infer(c.ctx, "digits_mlp", "", req); err != nil {
						b.Fatal(err)
					}
				}
				tInfer += time.Since(start)
			}
			for b.Loop() {
				// Alternate the order so that neither side always runs second.
				if n%(2*block) == 0 {
					timeBare()
					timeInfer()
				} else {
					timeInfer()
					timeBare()
				}
				n += block
			}
			b.ReportMetric(float64(tBare.Nanoseconds())/float64(n), "bare-ns/call")
			b.ReportMetric(float64(tInfer.Nanoseconds())/float64(n), "infer-ns/call")
			b.ReportMetric(100*(float64(tInfer)/float64(tBare)-1), "overhead-%")
		})
	}
}
