package onnx_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/modelship/modelship/modelserver/onnx"
	"github.com/modelship/modelship/oip"
)

// nodeCasesDir holds Debian's libonnx-testdata node cases.
const nodeCasesDir = "/usr/share/libonnx-testdata/data/node"

// nodeCases is a sample of the ONNX backend node tests covering common
// operators and every datatype the runtime handles.
var nodeCases = []string{
	"test_abs", "test_add", "test_add_bcast", "test_add_uint8", "test_and2d", "test_argmax_no_keepdims_example",
	"test_averagepool_2d_default", "test_basic_conv_with_padding", "test_batchnorm_example", "test_bitshift_left_uint32", "test_bitshift_right_uint64", "test_cast_FLOAT_to_FLOAT16",
	"test_cast_FLOAT16_to_FLOAT", "test_cast_FLOAT_to_DOUBLE", "test_ceil", "test_clip_default_int8_inbounds",
	"test_concat_2d_axis_1", "test_conv_with_strides_padding", "test_cos", "test_cumsum_2d_axis_1", "test_div",
	"test_equal", "test_exp", "test_gather_0", "test_gemm_default_matrix_bias", "test_greater", "test_leakyrelu",
	"test_log", "test_matmul_2d", "test_max_example", "test_maxpool_2d_default", "test_mod_mixed_sign_int32",
	"test_mul", "test_neg", "test_not_2d", "test_range_int32_type_negative_delta", "test_reduce_sum_default_axes_keepdims_example",
	"test_relu", "test_reshape_reordered_all_dims", "test_shape", "test_sigmoid", "test_size", "test_slice",
	"test_softmax_axis_1", "test_sqrt", "test_sub", "test_tanh", "test_transpose_default", "test_where_example", "test_xor2d",
}

// TestNodeCases runs a sample of libonnx-testdata's node cases through Infer,
// with the request decoded by the oip codec and the response encoded and
// decoded again, as the HTTP /infer route does.
func TestNodeCases(t *testing.T) {
	needModels(t)
	if _, err := os.Stat(nodeCasesDir); err != nil {
		t.Skip("Debian's libonnx-testdata is not installed; run scripts/setup.sh")
	}
	out := filepath.Join(t.TempDir(), "cases.json")
	args := []string{"testdata/node_cases.py", out}
	for _, c := range nodeCases {
		args = append(args, filepath.Join(nodeCasesDir, c))
	}
	if b, err := exec.Command(python, args...).CombinedOutput(); err != nil || len(b) > 0 {
		t.Fatalf("testdata/node_cases.py: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Name    string          `json:"name"`
		Model   string          `json:"model"`
		Request json.RawMessage `json:"request"`
		Outputs json.RawMessage `json:"outputs"`
	}
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) != len(nodeCases) {
		t.Fatalf("converted %d cases of %d", len(cases), len(nodeCases))
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			rt, err := onnx.New(onnx.Config{Models: []onnx.Model{{Name: c.Name, Path: c.Model}}})
			if err != nil {
				t.Fatal(err)
			}
			defer rt.Close(context.Background())
			req, err := oip.DecodeInferRequest(c.Request)
			if err != nil {
				t.Fatalf("decoding the request: %v", err)
			}
			resp, err := rt.Infer(context.Background(), c.Name, "", req)
			if err != nil {
				t.Fatalf("Infer: %v", err)
			}
			enc, err := oip.AppendInferResponse(nil, resp)
			if err != nil {
				t.Fatalf("encoding the response: %v", err)
			}
			got, err := oip.DecodeInferResponse(enc)
			if err != nil {
				t.Fatalf("decoding the response: %v", err)
			}
			want, err := oip.DecodeInferResponse([]byte(`{"model_name":"","outputs":` + string(c.Outputs) + `}`))
			if err != nil {
				t.Fatalf("decoding the expected outputs: %v", err)
			}
			if len(got.Outputs) != len(want.Outputs) {
				t.Fatalf("%d outputs, want %d", len(got.Outputs), len(want.Outputs))
			}
			for i, w := range want.Outputs {
				g := got.Outputs[i]
				if g.Name != w.Name || g.Datatype != w.Datatype || !reflect.DeepEqual(g.Shape, w.Shape) {
					t.Errorf("output %d: %s %s %v, want %s %s %v", i, g.Name, g.Datatype, g.Shape, w.Name, w.Datatype, w.Shape)
					continue
				}
				if !allCloseData(g.Data, w.Data) {
					t.Errorf("output %q: got %v\nwant %v", w.Name, g.Data, w.Data)
				}
			}
		})
	}
}

// allCloseData compares tensor data, floats within 1e-5 absolute plus 1e-4 relative
// (ONNX's own backend tests use looser bounds).
func allCloseData(got, want any) bool {
	switch w := want.(type) {
	case []float32:
		g := got.([]float32)
		return len(g) == len(w) && allClose(len(w), func(i int) (float64, float64) { return float64(g[i]), float64(w[i]) })
	case []float64:
		g := got.([]float64)
		return len(g) == len(w) && allClose(len(w), func(i int) (float64, float64) { return g[i], w[i] })
	}
	return reflect.DeepEqual(got, want)
}

func allClose(n int, at func(int) (float64, float64)) bool {
	for i := range n {
		g, w := at(i)
		if math.IsNaN(w) && math.IsNaN(g) || g == w {
			continue
		}
		if math.Abs(g-w) > 1e-5+1e-4*math.Abs(w) {
			return false
		}
	}
	return true
}
