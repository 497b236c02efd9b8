package onnx_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelship/modelship/modelserver"
	"github.com/modelship/modelship/modelserver/onnx"
	"github.com/modelship/modelship/oip"
)

func flatRows(rows [][]float32) []float32 {
	var out []float32
	for _, r := range rows {
		out = append(out, r...)
	}
	return out
}

// TestDigitsMatchScikitLearn checks ORT's outputs against scikit-learn's
// predict_proba and predict for the exported classifiers, batched and one row.
func TestDigitsMatchScikitLearn(t *testing.T) {
	rt := newRuntime(t, onnx.Config{}, "digits_lr", "digits_mlp")
	ex := fixture.expected
	tests := []struct {
		model string
		proba [][]float64
		label []int64
	}{
		{"digits_lr", ex.LRProba, ex.LRLabel},
		{"digits_mlp", ex.MLPProba, ex.MLPLabel},
	}
	for _, tt := range tests {
		for _, rows := range []int{len(ex.X), 1} {
			t.Run(fmt.Sprintf("%s/batch%d", tt.model, rows), func(t *testing.T) {
				req := &oip.InferRequest{ID: "r1", Inputs: []oip.Tensor{{
					Name: "input", Datatype: "FP32", Shape: []int64{int64(rows), 64}, Data: flatRows(ex.X[:rows]),
				}}}
				resp, err := rt.Infer(context.Background(), tt.model, "", req)
				if err != nil {
					t.Fatal(err)
				}
				if resp.ID != "r1" || resp.ModelName != tt.model || resp.ModelVersion != "1" {
					t.Errorf("response header fields: %+v", resp)
				}
				probs := resp.Outputs[0]
				if probs.Name != "probabilities" || !reflect.DeepEqual(probs.Shape, []int64{int64(rows), 10}) {
					t.Fatalf("output 0: %s %v", probs.Name, probs.Shape)
				}
				got := probs.Data.([]float32)
				worst := 0.0
				for i := range rows {
					for j := range 10 {
						worst = max(worst, math.Abs(float64(got[i*10+j])-tt.proba[i][j]))
					}
				}
				if worst > 1e-5 {
					t.Errorf("largest difference from scikit-learn's predict_proba: %g > 1e-5", worst)
				}
				if labels := resp.Outputs[1].Data.([]int64); !reflect.DeepEqual(labels, tt.label[:rows]) {
					t.Errorf("labels %v, scikit-learn predicts %v", labels, tt.label[:rows])
				}
			})
		}
	}
}

// typesRequest is a batch of 2 for types.onnx.
func typesRequest() *oip.InferRequest {
	return &oip.InferRequest{Inputs: []oip.Tensor{
		{Name: "x", Datatype: "FP64", Shape: []int64{2, 3}, Data: []float64{0.5, 1, 1.5, 2, 2.5, 3}},
		{Name: "i", Datatype: "INT64", Shape: []int64{2, 3}, Data: []int64{1, 2, 3, -4, 5, 1 << 40}},
		{Name: "b", Datatype: "BOOL", Shape: []int64{2, 3}, Data: []bool{true, false, true, false, false, true}},
		{Name: "j", Datatype: "INT32", Shape: []int64{2}, Data: []int32{7, -8}},
		{Name: "h", Datatype: "FP16", Shape: []int64{2, 2}, Data: []float32{0.5, -1.25, 2048, 0.099975586}},
		{Name: "s", Datatype: "BYTES", Shape: []int64{2}, Data: []string{"héllo", ""}},
	}}
}

func TestTypes(t *testing.T) {
	rt := newRuntime(t, onnx.Config{}, "types")
	resp, err := rt.Infer(context.Background(), "types", "1", typesRequest())
	if err != nil {
		t.Fatal(err)
	}
	want := []oip.Tensor{
		{Name: "sum", Datatype: "FP64", Shape: []int64{2, 3}, Data: []float64{1.5, 3, 4.5, -2, 7.5, 3 + 1<<40}},
		{Name: "twice", Datatype: "INT64", Shape: []int64{2, 3}, Data: []int64{2, 4, 6, -8, 10, 1 << 41}},
		{Name: "not_b", Datatype: "BOOL", Shape: []int64{2, 3}, Data: []bool{false, true, false, true, true, false}},
		{Name: "j_twice", Datatype: "INT32", Shape: []int64{2}, Data: []int32{14, -16}},
		{Name: "h_float", Datatype: "FP32", Shape: []int64{2, 2}, Data: []float32{0.5, -1.25, 2048, 0.099975586}},
		{Name: "s_same", Datatype: "BYTES", Shape: []int64{2}, Data: []string{"héllo", ""}},
		{Name: "total", Datatype: "FP64", Shape: []int64{}, Data: []float64{10.5}},
		{Name: "h_const", Datatype: "FP16", Shape: []int64{2}, Data: []float32{1.5, -2}},
	}
	if !reflect.DeepEqual(resp.Outputs, want) {
		t.Errorf("outputs\n got %+v\nwant %+v", resp.Outputs, want)
	}

	md := rt.Models()
	if len(md) != 1 || md[0].Platform != "onnx_onnxv1" || !reflect.DeepEqual(md[0].Versions, []string{"1"}) {
		t.Fatalf("metadata %+v", md)
	}
	if in := md[0].Inputs[0]; !reflect.DeepEqual(in, oip.TensorMetadata{Name: "x", Datatype: "FP64", Shape: []int64{-1, 3}}) {
		t.Errorf("input metadata %+v", in)
	}
	if out := md[0].Outputs[6]; out.Name != "total" || len(out.Shape) != 0 {
		t.Errorf("scalar output metadata %+v", out)
	}
	for _, out := range md[0].Outputs {
		if out.Name == "h_same" {
			t.Error("h_same (FP16 of dynamic shape) is listed; onnxruntime_go cannot return it")
		}
	}
}

func TestInferOutputsSelection(t *testing.T) {
	rt := newRuntime(t, onnx.Config{}, "types")
	req := typesRequest()
	req.Outputs = []oip.RequestedOutput{{Name: "total"}, {Name: "j_twice"}}
	resp, err := rt.Infer(context.Background(), "types", "", req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Outputs) != 2 || resp.Outputs[0].Name != "total" || resp.Outputs[1].Name != "j_twice" {
		t.Errorf("outputs %+v", resp.Outputs)
	}
}

func TestInferErrors(t *testing.T) {
	rt := newRuntime(t, onnx.Config{}, "digits_lr", "types")
	row := make([]float32, 64)
	input := func(mod func(*oip.Tensor)) *oip.InferRequest {
		in := oip.Tensor{Name: "input", Datatype: "FP32", Shape: []int64{1, 64}, Data: row}
		mod(&in)
		return &oip.InferRequest{Inputs: []oip.Tensor{in}}
	}
	same := func(*oip.Tensor) {}
	tests := []struct {
		name, model, version string
		req                  *oip.InferRequest
		status               int
		msg                  string
	}{
		{"UnknownModel", "nope", "", input(same), 404, `model "nope" is not served; models: digits_lr version 1, types version 1`},
		{"UnknownVersion", "digits_lr", "2", input(same), 404, `model "digits_lr" version "2" is not served`},
		{"UnknownInput", "digits_lr", "", input(func(t *oip.Tensor) { t.Name = "x" }), 400,
			`model "digits_lr" has no input "x"; its inputs are "input" (FP32 [-1,64])`},
		{"MissingInput", "digits_lr", "", &oip.InferRequest{}, 400, `input "input" is missing; model "digits_lr" needs "input" (FP32 [-1,64])`},
		{"TwiceInput", "digits_lr", "", &oip.InferRequest{Inputs: append(input(same).Inputs, input(same).Inputs...)}, 400, `input "input" is given twice`},
		{"Datatype", "digits_lr", "", input(func(t *oip.Tensor) { t.Datatype, t.Data = "FP64", make([]float64, 64) }), 400,
			`input "input": datatype FP64 does not match the model's FP32`},
		{"Rank", "digits_lr", "", input(func(t *oip.Tensor) { t.Shape = []int64{64} }), 400,
			`input "input": shape [64] does not fit the model's [-1,64] (-1 is any size)`},
		{"FixedDim", "digits_lr", "", input(func(t *oip.Tensor) { t.Shape, t.Data = []int64{1, 63}, row[:63] }), 400,
			`input "input": shape [1,63] does not fit the model's [-1,64]`},
		{"Count", "digits_lr", "", input(func(t *oip.Tensor) { t.Shape = []int64{2, 64} }), 400,
			`input "input": shape [2,64] needs 128 values, got 64`},
		{"GoType", "digits_lr", "", input(func(t *oip.Tensor) { t.Data = make([]float64, 64) }), 400,
			`input "input": data of Go type []float64 does not match datatype FP32`},
		{"UnknownOutput", "digits_lr", "", &oip.InferRequest{Inputs: input(same).Inputs, Outputs: []oip.RequestedOutput{{Name: "p"}}}, 400,
			`model "digits_lr" has no output "p"; its outputs are "probabilities" (FP32 [-1,10]), "label" (INT64 [-1])`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := rt.Infer(context.Background(), tt.model, tt.version, tt.req)
			var ie *modelserver.InferError
			if !errors.As(err, &ie) {
				t.Fatalf("error %v (%T), want an *InferError", err, err)
			}
			if ie.Status != tt.status || !strings.Contains(ie.Message, tt.msg) {
				t.Errorf("got %d %q\nwant %d %q", ie.Status, ie.Message, tt.status, tt.msg)
			}
		})
	}
}

func TestInferTimeoutAndClose(t *testing.T) {
	needModels(t)
	rt, err := onnx.New(onnx.Config{Models: []onnx.Model{{Name: "m", Path: filepath.Join(fixture.dir, "digits_mlp.onnx")}}})
	if err != nil {
		t.Fatal(err)
	}
	req := &oip.InferRequest{Inputs: []oip.Tensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, 64}, Data: make([]float32, 64)}}}
	ctx, cancel := context.WithTimeout(context.Background(), -time.Second)
	defer cancel()
	if _, err := rt.Infer(ctx, "m", "", req); !errors.Is(err, modelserver.ErrScoringTimeout) {
		t.Errorf("expired deadline: %v, want ErrScoringTimeout", err)
	}
	if !rt.Ready() {
		t.Error("not ready before Close")
	}
	if err := rt.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rt.Ready() {
		t.Error("ready after Close")
	}
	var ie *modelserver.InferError
	if _, err := rt.Infer(context.Background(), "m", "", req); !errors.As(err, &ie) || ie.Status != 503 {
		t.Errorf("Infer after Close: %v, want a 503 InferError", err)
	}
}

// TestConcurrency runs many requests at once through a model limited to 2
// concurrent runs and checks every answer and the Busy counters.
func TestConcurrency(t *testing.T) {
	rt := newRuntime(t, onnx.Config{MaxConcurrency: 2}, "digits_lr")
	ex := fixture.expected
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Go(func() {
			for i := range 8 {
				row := (g*8 + i) % len(ex.X)
				req := &oip.InferRequest{Inputs: []oip.Tensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, 64}, Data: ex.X[row]}}}
				resp, err := rt.Infer(context.Background(), "digits_lr", "", req)
				if err != nil {
					errs <- err
					return
				}
				if got := resp.Outputs[1].Data.([]int64)[0]; got != ex.LRLabel[row] {
					errs <- errors.New("wrong label")
				}
				if active, _ := rt.Busy(); active > 2 {
					errs <- errors.New("more than MaxConcurrency runs")
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if active, queued := rt.Busy(); active != 0 || queued != 0 {
		t.Errorf("Busy() = %d, %d after all requests", active, queued)
	}
}

func TestScore(t *testing.T) {
	rt := newRuntime(t, onnx.Config{}, "digits_lr")
	ex := fixture.expected
	row, _ := json.Marshal(ex.X[0])
	tests := []struct {
		name, method, query, body string
		status                    int
		want                      string // substring of the body
	}{
		{"Data", "POST", "", `{"data": [` + string(row) + `]}`, 200, `"label":[` + itoa(ex.LRLabel[0]) + `]`},
		{"FlatRowGetsBatch", "POST", "", `{"data": ` + string(row) + `}`, 200, `"probabilities":[[`},
		{"NamedInput", "POST", "", `{"input": [` + string(row) + `,` + string(row) + `]}`, 200, `"label":[` + itoa(ex.LRLabel[0]) + `,` + itoa(ex.LRLabel[0]) + `]`},
		{"ModelQuery", "POST", "model=digits_lr&version=1", `{"data": [` + string(row) + `]}`, 200, `"label"`},
		{"UnknownKey", "POST", "", `{"rows": [[1]]}`, 400, `model \"digits_lr\" has one input, \"input\" (FP32 [-1,64]); send {\"data\": [...]} or {\"input\": [...]}`},
		{"BadJSON", "POST", "", `{"data": [[1,2]`, 400, `the body must be a JSON object such as`},
		{"WrongShape", "POST", "", `{"data": [[1,2]]}`, 400, `input \"input\": shape [1,2] does not fit the model's [-1,64]`},
		{"Ragged", "POST", "", `{"data": [[1,2],[3]]}`, 400, `nested arrays are ragged`},
		{"Missing", "POST", "", `{}`, 400, `input \"input\" is missing`},
		{"UnknownModel", "POST", "model=x", `{"data": [[1]]}`, 404, `model \"x\" is not served`},
		{"Get", "GET", "", ``, 405, `ONNX models are scored with POST`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := rt.Score(context.Background(), &modelserver.ScoreRequest{Method: tt.method, Path: "/score", RawQuery: tt.query, Body: []byte(tt.body)})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != tt.status || !strings.Contains(string(resp.Body), tt.want) {
				t.Errorf("got %d %s\nwant %d with %s", resp.Status, resp.Body, tt.status, tt.want)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var v map[string]any
			if err := json.Unmarshal(resp.Body, &v); err != nil {
				t.Errorf("body is not a JSON object: %v", err)
			}
		})
	}
}

func itoa(i int64) string { b, _ := json.Marshal(i); return string(b) }

func TestScoreSeveralModels(t *testing.T) {
	rt := newRuntime(t, onnx.Config{}, "digits_lr", "digits_mlp")
	body := []byte(`{"data": [` + strings.Repeat("0,", 63) + `0]}`)
	resp, err := rt.Score(context.Background(), &modelserver.ScoreRequest{Method: "POST", Body: body})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 400 || !strings.Contains(string(resp.Body), "several models are served (digits_lr version 1, digits_mlp version 1); say which one") {
		t.Errorf("got %d %s", resp.Status, resp.Body)
	}
	resp, err = rt.Score(context.Background(), &modelserver.ScoreRequest{Method: "POST", RawQuery: "model=digits_mlp", Body: body})
	if err != nil || resp.Status != 200 {
		t.Errorf("with ?model=: %v %d %s", err, resp.Status, resp.Body)
	}
}

func TestSwagger(t *testing.T) {
	rt := newRuntime(t, onnx.Config{}, "digits_lr")
	tests := []struct {
		version string
		schemas []string // path to the schemas object
	}{
		{"2", []string{"definitions"}},
		{"3", []string{"components", "schemas"}},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			b, err := rt.Swagger(context.Background(), tt.version)
			if err != nil {
				t.Fatal(err)
			}
			var doc map[string]any
			if err := json.Unmarshal(b, &doc); err != nil {
				t.Fatal(err)
			}
			if _, ok := doc["paths"].(map[string]any)["/score"]; !ok {
				t.Error("no /score path")
			}
			schemas := doc
			for _, k := range tt.schemas {
				schemas = schemas[k].(map[string]any)
			}
			in := schemas["ServiceInput"].(map[string]any)["properties"].(map[string]any)["data"].(map[string]any)
			inner := in["items"].(map[string]any)
			if in["type"] != "array" || inner["maxItems"] != 64.0 || inner["items"].(map[string]any)["format"] != "float" {
				t.Errorf("ServiceInput.data schema %v", in)
			}
			out := schemas["ServiceOutput"].(map[string]any)["properties"].(map[string]any)
			if out["label"].(map[string]any)["items"].(map[string]any)["format"] != "int64" {
				t.Errorf("ServiceOutput schema %v", out)
			}
		})
	}
	if _, err := rt.Swagger(context.Background(), "3.1"); !errors.Is(err, modelserver.ErrNoSwagger) {
		t.Errorf("version 3.1: %v, want ErrNoSwagger", err)
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  onnx.Config
		want string
	}{
		{"NoModels", onnx.Config{}, "onnx: no models to serve"},
		{"MissingLibrary", onnx.Config{LibraryPath: "/nonexistent/libonnxruntime.so", Models: []onnx.Model{{Name: "m", Path: "x.onnx"}}},
			"ONNX Runtime library not found at /nonexistent/libonnxruntime.so; run scripts/setup.sh or set MODELSHIP_ORT_LIB / --onnxruntime-lib"},
		{"MissingModel", onnx.Config{Models: []onnx.Model{{Name: "m", Path: "/nonexistent.onnx"}}}, `onnx: loading model "m" from /nonexistent.onnx`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "MissingModel" {
				needModels(t)
			}
			_, err := onnx.New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestFindModels(t *testing.T) {
	touch := func(t *testing.T, root string, files ...string) {
		for _, f := range files {
			p := filepath.Join(root, f)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name  string
		files []string
		want  []onnx.Model // paths relative to the root
		err   string
	}{
		{"Single", []string{"model.onnx", "README.md"}, []onnx.Model{{Name: "digits", Version: "3", Path: "model.onnx"}}, ""},
		{"SingleNested", []string{"sub/net.ONNX"}, []onnx.Model{{Name: "digits", Version: "3", Path: "sub/net.ONNX"}}, ""},
		{"Azure", []string{"b/2/m.onnx", "a/1/x/m.onnx", "b/10/m.onnx"}, []onnx.Model{
			{Name: "a", Version: "1", Path: "a/1/x/m.onnx"}, {Name: "b", Version: "2", Path: "b/2/m.onnx"}, {Name: "b", Version: "10", Path: "b/10/m.onnx"}}, ""},
		{"AzureTwoFiles", []string{"a/1/m.onnx", "a/1/n.onnx"}, nil, "model a version 1 under"},
		{"SeveralLoose", []string{"m.onnx", "n.onnx"}, nil, "found 2 .onnx files under"},
		{"None", []string{"model.pkl"}, nil, "no .onnx model file found under"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			touch(t, root, tt.files...)
			got, err := onnx.FindModels(root, "digits", "3")
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), root) {
					t.Fatalf("error %v, want %q naming %s", err, tt.err, root)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i := range tt.want {
				tt.want[i].Path = filepath.Join(root, tt.want[i].Path)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestDefaultLibraryPath(t *testing.T) {
	t.Setenv("MODELSHIP_ORT_LIB", "")
	t.Setenv("MODELSHIP_CACHE_DIR", "/c")
	if got := onnx.DefaultLibraryPath(); got != "/c/onnxruntime/1.24.1/libonnxruntime.so" {
		t.Errorf("with MODELSHIP_CACHE_DIR: %s", got)
	}
	t.Setenv("MODELSHIP_CACHE_DIR", "")
	t.Setenv("XDG_CACHE_HOME", "/x")
	if got := onnx.DefaultLibraryPath(); got != "/x/modelship/onnxruntime/1.24.1/libonnxruntime.so" {
		t.Errorf("with XDG_CACHE_HOME: %s", got)
	}
	// Without a cache setting and nothing under HOME, the system-wide copy.
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", t.TempDir())
	sys := filepath.Join(t.TempDir(), "libonnxruntime.so")
	os.WriteFile(sys, []byte("x"), 0o644)
	old := onnx.SystemLibraryPath
	onnx.SystemLibraryPath = sys
	defer func() { onnx.SystemLibraryPath = old }()
	if got := onnx.DefaultLibraryPath(); got != sys {
		t.Errorf("with nothing under HOME: %s, want the system copy %s", got, sys)
	}
	t.Setenv("MODELSHIP_ORT_LIB", "/lib/ort.so")
	if got := onnx.DefaultLibraryPath(); got != "/lib/ort.so" {
		t.Errorf("with MODELSHIP_ORT_LIB: %s", got)
	}
}

// A model without inputs (only constants) cannot be run through
// onnxruntime_go; /score answers a clear error instead of crashing the
// handler.
func TestModelWithoutInputs(t *testing.T) {
	rt := newRuntime(t, onnx.Config{}, "constant")
	resp, err := rt.Score(context.Background(), &modelserver.ScoreRequest{Method: "POST", Body: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 501 || !strings.Contains(string(resp.Body), "has no inputs") {
		t.Errorf("got %d %s", resp.Status, resp.Body)
	}
}

// A model whose only output is FP16 of dynamic shape cannot be served; the
// error says which output and why.
func TestFP16DynamicOutputExplained(t *testing.T) {
	needModels(t)
	_, err := onnx.New(onnx.Config{Models: []onnx.Model{{Name: "fp16dyn", Version: "1", Path: filepath.Join(fixture.dir, "fp16dyn.onnx")}}})
	if err == nil || !strings.Contains(err.Error(), `"y" (FP16 of shape [-1,2]: onnxruntime_go cannot copy FP16 outputs of dynamic shape`) {
		t.Fatalf("err = %v", err)
	}
}
