package oip_test

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/modelship/modelship/oip"
)

func TestDecodeInferRequest(t *testing.T) {
	tests := []struct {
		name string
		body string
		want oip.Tensor
	}{
		{"FlatFP32", `{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[1,2.5,-3e2,4]}]}`,
			oip.Tensor{Name: "x", Shape: []int64{2, 2}, Datatype: "FP32", Data: []float32{1, 2.5, -300, 4}}},
		{"NestedFP32", `{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2],[3,4]]}]}`,
			oip.Tensor{Name: "x", Shape: []int64{2, 2}, Datatype: "FP32", Data: []float32{1, 2, 3, 4}}},
		{"DataBeforeDatatype", `{"inputs":[{"data":[[true],[false]],"name":"b","shape":[2,1],"datatype":"BOOL"}]}`,
			oip.Tensor{Name: "b", Shape: []int64{2, 1}, Datatype: "BOOL", Data: []bool{true, false}}},
		{"FP64", `{"inputs":[{"name":"x","shape":[3],"datatype":"FP64","data":[0.1,1e-300,-12345678901234567890]}]}`,
			oip.Tensor{Name: "x", Shape: []int64{3}, Datatype: "FP64", Data: []float64{0.1, 1e-300, -12345678901234567890}}},
		{"FP16AsFloat32", `{"inputs":[{"name":"h","shape":[2],"datatype":"FP16","data":[0.5,-2]}]}`,
			oip.Tensor{Name: "h", Shape: []int64{2}, Datatype: "FP16", Data: []float32{0.5, -2}}},
		{"NonFinite", `{"inputs":[{"name":"x","shape":[3],"datatype":"FP32","data":[NaN,Infinity,-Infinity]}]}`,
			oip.Tensor{Name: "x", Shape: []int64{3}, Datatype: "FP32", Data: []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))}}},
		{"INT8", `{"inputs":[{"name":"i","shape":[2],"datatype":"INT8","data":[-128,127]}]}`,
			oip.Tensor{Name: "i", Shape: []int64{2}, Datatype: "INT8", Data: []int8{-128, 127}}},
		{"INT64FromFloatSyntax", `{"inputs":[{"name":"i","shape":[2],"datatype":"INT64","data":[1.0,2e3]}]}`,
			oip.Tensor{Name: "i", Shape: []int64{2}, Datatype: "INT64", Data: []int64{1, 2000}}},
		{"UINT64Max", `{"inputs":[{"name":"u","shape":[1],"datatype":"UINT64","data":[18446744073709551615]}]}`,
			oip.Tensor{Name: "u", Shape: []int64{1}, Datatype: "UINT64", Data: []uint64{math.MaxUint64}}},
		{"UINT8", `{"inputs":[{"name":"u","shape":[1,1],"datatype":"UINT8","data":[[255]]}]}`,
			oip.Tensor{Name: "u", Shape: []int64{1, 1}, Datatype: "UINT8", Data: []uint8{255}}},
		{"INT16", `{"inputs":[{"name":"i","shape":[1],"datatype":"INT16","data":[-32768]}]}`,
			oip.Tensor{Name: "i", Shape: []int64{1}, Datatype: "INT16", Data: []int16{-32768}}},
		{"INT32", `{"inputs":[{"name":"i","shape":[1],"datatype":"INT32","data":[2147483647]}]}`,
			oip.Tensor{Name: "i", Shape: []int64{1}, Datatype: "INT32", Data: []int32{2147483647}}},
		{"UINT16", `{"inputs":[{"name":"u","shape":[1],"datatype":"UINT16","data":[65535]}]}`,
			oip.Tensor{Name: "u", Shape: []int64{1}, Datatype: "UINT16", Data: []uint16{65535}}},
		{"UINT32", `{"inputs":[{"name":"u","shape":[1],"datatype":"UINT32","data":[4294967295]}]}`,
			oip.Tensor{Name: "u", Shape: []int64{1}, Datatype: "UINT32", Data: []uint32{4294967295}}},
		{"BYTES", `{"inputs":[{"name":"s","shape":[2],"datatype":"BYTES","data":["a\"b\u00e9","plain"]}]}`,
			oip.Tensor{Name: "s", Shape: []int64{2}, Datatype: "BYTES", Data: []string{"a\"bé", "plain"}}},
		{"Scalar", `{"inputs":[{"name":"x","shape":[],"datatype":"FP32","data":[7]}]}`,
			oip.Tensor{Name: "x", Shape: []int64{}, Datatype: "FP32", Data: []float32{7}}},
		{"EmptyTensor", `{"inputs":[{"name":"x","shape":[0,3],"datatype":"FP32","data":[]}]}`,
			oip.Tensor{Name: "x", Shape: []int64{0, 3}, Datatype: "FP32", Data: []float32{}}},
		{"WhiteSpaceAndUnknownKeys", " {\n\"extra\": {\"a\": [1, {\"b\": null}]},\t\"inputs\" : [ {\"name\" : \"x\" , \"shape\" : [ 1 ] , \"datatype\" : \"INT32\" , \"data\" : [ 5 ] , \"more\": true } ] } ",
			oip.Tensor{Name: "x", Shape: []int64{1}, Datatype: "INT32", Data: []int32{5}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := oip.DecodeInferRequest([]byte(tt.body))
			if err != nil {
				t.Fatalf("DecodeInferRequest: %v", err)
			}
			if len(r.Inputs) != 1 {
				t.Fatalf("got %d inputs, want 1", len(r.Inputs))
			}
			if got := r.Inputs[0]; !tensorEqual(got, tt.want) {
				t.Errorf("got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestDecodeInferRequestFields(t *testing.T) {
	body := `{"id":"42","parameters":{"p":1},"inputs":[{"name":"a","shape":[1],"datatype":"FP32","data":[1],"parameters":{"q":"s"}},
		{"name":"b","shape":[1],"datatype":"INT64","data":[2]}],"outputs":[{"name":"y"},{"name":"z","parameters":{"binary_data":false}}]}`
	r, err := oip.DecodeInferRequest([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	want := &oip.InferRequest{
		ID:         "42",
		Parameters: map[string]any{"p": 1.0},
		Inputs: []oip.Tensor{
			{Name: "a", Shape: []int64{1}, Datatype: "FP32", Data: []float32{1}, Parameters: map[string]any{"q": "s"}},
			{Name: "b", Shape: []int64{1}, Datatype: "INT64", Data: []int64{2}},
		},
		Outputs: []oip.RequestedOutput{{Name: "y"}, {Name: "z", Parameters: map[string]any{"binary_data": false}}},
	}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("got %#v\nwant %#v", r, want)
	}
	// encoding/json uses the same decoder through UnmarshalJSON.
	var viaStd oip.InferRequest
	if err := json.Unmarshal([]byte(body), &viaStd); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&viaStd, want) {
		t.Errorf("json.Unmarshal got %#v", viaStd)
	}
}

func TestDecodeInferRequestErrors(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"CountMismatch", `{"inputs":[{"name":"x","shape":[1,64],"datatype":"FP32","data":[1,2,3]}]}`,
			`input "x": shape [1,64] needs 64 values, got 3`},
		{"UnknownDatatype", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP33","data":[1]}]}`,
			`input "x": datatype "FP33" is unknown; use one of BOOL, UINT8`},
		{"UnknownDatatypeDataFirst", `{"inputs":[{"data":[1],"name":"x","shape":[1],"datatype":"fp32"}]}`,
			`input "x": datatype "fp32" is unknown`},
		{"BadNumber", `{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","data":[1,"a"]}]}`,
			`input "x": data[1]: invalid JSON at offset 63: unexpected '"', want a FP32 value`},
		{"IntOverflow", `{"inputs":[{"name":"x","shape":[1],"datatype":"INT8","data":[128]}]}`,
			`input "x": data[0]: 128 is not a valid INT8 value`},
		{"NegativeUint", `{"inputs":[{"name":"x","shape":[1],"datatype":"UINT32","data":[-1]}]}`,
			`input "x": data[0]: -1 is not a valid UINT32 value`},
		{"Fraction", `{"inputs":[{"name":"x","shape":[1],"datatype":"INT32","data":[1.5]}]}`,
			`input "x": data[0]: 1.5 is not a valid INT32 value`},
		{"BoolNumber", `{"inputs":[{"name":"x","shape":[1],"datatype":"BOOL","data":[1]}]}`,
			`input "x": data[0]: 1 is not a valid BOOL value`},
		{"Ragged", `{"inputs":[{"name":"x","shape":[3],"datatype":"FP32","data":[[1,2],[3]]}]}`,
			`input "x": data: nested arrays are ragged`},
		{"MixedNesting", `{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","data":[[1],2]}]}`,
			`input "x": data: nested arrays are ragged`},
		{"MissingName", `{"inputs":[{"shape":[1],"datatype":"FP32","data":[1]}]}`,
			`inputs[0]: name is missing`},
		{"MissingShape", `{"inputs":[{"name":"x","datatype":"FP32","data":[1]}]}`,
			`input "x": shape is missing`},
		{"MissingData", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32"}]}`,
			`input "x": data is missing`},
		{"NegativeDim", `{"inputs":[{"name":"x","shape":[-1],"datatype":"FP32","data":[1]}]}`,
			`input "x": shape: "-1" is not a non-negative integer`},
		{"NoInputs", `{"id":"1"}`, `request has no inputs`},
		{"Truncated", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1`,
			`input "x": data: invalid JSON: unexpected end of input`},
		{"TrailingGarbage", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]} x`,
			`invalid JSON at offset 67: unexpected 'x', want end of input`},
		{"NotAnObject", `[1]`, `invalid JSON at offset 0: unexpected '[', want '{'`},
		{"Empty", ``, `invalid JSON: unexpected end of input, want '{'`},
		{"BadOutput", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],"outputs":[{}]}`,
			`outputs[0]: name is missing`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := oip.DecodeInferRequest([]byte(tt.body))
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q\ndoes not contain %q", err, tt.want)
			}
		})
	}
}

func TestDecodeTensorData(t *testing.T) {
	tests := []struct {
		name, body, datatype string
		wantData             any
		wantShape            []int64
	}{
		{"Matrix", `[[1,2,3],[4,5,6]]`, "FP32", []float32{1, 2, 3, 4, 5, 6}, []int64{2, 3}},
		{"Vector", `[1,2]`, "INT64", []int64{1, 2}, []int64{2}},
		{"Scalar", `3.5`, "FP64", []float64{3.5}, []int64{}},
		{"Empty", `[]`, "FP32", []float32{}, []int64{0}},
		{"EmptyRows", `[[],[]]`, "FP32", []float32{}, []int64{2, 0}},
		{"Rank3", `[[[true],[false]]]`, "BOOL", []bool{true, false}, []int64{1, 2, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, shape, err := oip.DecodeTensorData([]byte(tt.body), tt.datatype)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(data, tt.wantData) || !reflect.DeepEqual(shape, tt.wantShape) {
				t.Errorf("got %v %v, want %v %v", data, shape, tt.wantData, tt.wantShape)
			}
		})
	}
	if _, _, err := oip.DecodeTensorData([]byte(`[[1,2],[3]]`), "FP32"); err == nil {
		t.Error("ragged array: no error")
	}
}

func TestScanObject(t *testing.T) {
	got := map[string]string{}
	err := oip.ScanObject([]byte(` {"a": [1, 2], "b\u0021": {"c": "d"}} `), func(k string, v []byte) error {
		got[k] = string(v)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "[1, 2]", "b!": `{"c": "d"}`}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	resp := &oip.InferResponse{
		ModelName: "m", ModelVersion: "1", ID: "id-\"1\"",
		Outputs: []oip.Tensor{
			{Name: "f32", Shape: []int64{2, 2}, Datatype: "FP32", Data: []float32{0.1, -1e-7, 3.4028235e38, 0}},
			{Name: "f64", Shape: []int64{3}, Datatype: "FP64", Data: []float64{math.Pi, math.Inf(1), 5e-324}},
			{Name: "i8", Shape: []int64{2}, Datatype: "INT8", Data: []int8{-128, 127}},
			{Name: "i16", Shape: []int64{1}, Datatype: "INT16", Data: []int16{-3}},
			{Name: "i32", Shape: []int64{1}, Datatype: "INT32", Data: []int32{-4}},
			{Name: "i64", Shape: []int64{1}, Datatype: "INT64", Data: []int64{math.MinInt64}},
			{Name: "u8", Shape: []int64{1}, Datatype: "UINT8", Data: []uint8{200}},
			{Name: "u16", Shape: []int64{1}, Datatype: "UINT16", Data: []uint16{60000}},
			{Name: "u32", Shape: []int64{1}, Datatype: "UINT32", Data: []uint32{4e9}},
			{Name: "u64", Shape: []int64{1}, Datatype: "UINT64", Data: []uint64{math.MaxUint64}},
			{Name: "b", Shape: []int64{2}, Datatype: "BOOL", Data: []bool{true, false}},
			{Name: "s", Shape: []int64{2}, Datatype: "BYTES", Data: []string{"x\n\"y\"", "é"}},
			{Name: "h", Shape: []int64{1}, Datatype: "FP16", Data: []float32{0.5}},
		},
	}
	b, err := oip.AppendInferResponse(nil, resp)
	if err != nil {
		t.Fatal(err)
	}
	got, err := oip.DecodeInferResponse(b)
	if err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	if !reflect.DeepEqual(got, resp) {
		t.Errorf("round trip of %s\ngot  %#v\nwant %#v", b, got, resp)
	}

	req := &oip.InferRequest{ID: "r", Parameters: map[string]any{"k": "v"},
		Inputs:  []oip.Tensor{{Name: "x", Shape: []int64{1, 2}, Datatype: "FP32", Data: []float32{1.5, 2}}},
		Outputs: []oip.RequestedOutput{{Name: "y"}}}
	b, err = json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	back, err := oip.DecodeInferRequest(b)
	if err != nil || !reflect.DeepEqual(back, req) {
		t.Errorf("request round trip of %s: %v, %#v", b, err, back)
	}
}

func TestAppendTensorDataNested(t *testing.T) {
	tests := []struct {
		name string
		t    oip.Tensor
		want string
	}{
		{"Matrix", oip.Tensor{Shape: []int64{2, 3}, Datatype: "INT32", Data: []int32{1, 2, 3, 4, 5, 6}}, `[[1,2,3],[4,5,6]]`},
		{"Scalar", oip.Tensor{Shape: []int64{}, Datatype: "FP64", Data: []float64{2.5}}, `2.5`},
		{"Empty", oip.Tensor{Shape: []int64{0, 2}, Datatype: "FP32", Data: []float32{}}, `[]`},
		{"Rank3", oip.Tensor{Shape: []int64{1, 2, 1}, Datatype: "BOOL", Data: []bool{true, false}}, `[[[true],[false]]]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := oip.AppendTensorData(nil, &tt.t, true)
			if err != nil || string(b) != tt.want {
				t.Errorf("got %s, %v; want %s", b, err, tt.want)
			}
		})
	}
	bad := oip.Tensor{Shape: []int64{3}, Datatype: "FP32", Data: []float64{1, 2, 3}}
	if _, err := oip.AppendTensorData(nil, &bad, false); err == nil {
		t.Error("mismatched Go type: no error")
	}
}

func TestFloat16(t *testing.T) {
	tests := []struct {
		f float32
		h uint16
	}{
		{0, 0}, {1, 0x3c00}, {-2, 0xc000}, {65504, 0x7bff}, {1e6, 0x7c00},
		{float32(math.Inf(-1)), 0xfc00}, {5.960464477539063e-08, 0x0001}, {6.103515625e-05, 0x0400},
		{0.333251953125, 0x3555},
	}
	for _, tt := range tests {
		if got := oip.Float16(tt.f); got != tt.h {
			t.Errorf("Float16(%g) = %#04x, want %#04x", tt.f, got, tt.h)
		}
		if tt.h != 0x7c00 {
			if back := oip.Float16To32(tt.h); back != tt.f {
				t.Errorf("Float16To32(%#04x) = %g, want %g", tt.h, back, tt.f)
			}
		}
	}
	// Every finite half survives a round trip.
	for h := range 1 << 16 {
		if h&0x7c00 == 0x7c00 {
			continue
		}
		if back := oip.Float16(oip.Float16To32(uint16(h))); back != uint16(h) {
			t.Fatalf("round trip of %#04x gave %#04x", h, back)
		}
	}
}

// TestFloatParsingMatchesStrconv checks the decimal fast paths against strconv.
func TestFloatParsingMatchesStrconv(t *testing.T) {
	for _, s := range []string{"0.1", "0.123456789", "1234567", "16777217", "0.30000001192092896", "-0.0",
		"9.999999999", "123456789012345", "0.000001", "3.4028235e38", "1e-45", "0.9999999999999999", "99999999.5"} {
		body := `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[` + s + `]},` +
			`{"name":"y","shape":[1],"datatype":"FP64","data":[` + s + `]}]}`
		r, err := oip.DecodeInferRequest([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		var want64 float64
		if err := json.Unmarshal([]byte(s), &want64); err != nil {
			t.Fatal(err)
		}
		var want32 float32
		if err := json.Unmarshal([]byte(s), &want32); err != nil {
			t.Fatal(err)
		}
		if got := r.Inputs[0].Data.([]float32)[0]; math.Float32bits(got) != math.Float32bits(want32) {
			t.Errorf("FP32 %s: got %g, want %g", s, got, want32)
		}
		if got := r.Inputs[1].Data.([]float64)[0]; math.Float64bits(got) != math.Float64bits(want64) {
			t.Errorf("FP64 %s: got %g, want %g", s, got, want64)
		}
	}
}

func tensorEqual(a, b oip.Tensor) bool {
	if a.Name != b.Name || a.Datatype != b.Datatype || !reflect.DeepEqual(a.Shape, b.Shape) {
		return false
	}
	af, aok := a.Data.([]float32)
	bf, bok := b.Data.([]float32)
	if aok && bok && len(af) == len(bf) {
		for i := range af {
			if math.Float32bits(af[i]) != math.Float32bits(bf[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a.Data, b.Data)
}
