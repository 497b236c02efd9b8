package oip

import (
	"encoding/binary"
	"math"
	"reflect"
	"strings"
	"testing"
)

// A request as tritonclient / KServe's client send it with binary_data=True.
func TestDecodeInferRequestBinary(t *testing.T) {
	js := `{"id":"b1","inputs":[` +
		`{"name":"x","shape":[1,3],"datatype":"FP32","parameters":{"binary_data_size":12}},` +
		`{"name":"n","shape":[2],"datatype":"INT64","data":[7,8]},` +
		`{"name":"s","shape":[2],"datatype":"BYTES","parameters":{"binary_data_size":13}},` +
		`{"name":"h","shape":[1],"datatype":"FP16","parameters":{"binary_data_size":2}}],` +
		`"parameters":{"binary_data_output":true},"outputs":null}`
	body := []byte(js)
	for _, f := range []float32{1.5, -2, 3.25} {
		body = binary.LittleEndian.AppendUint32(body, math.Float32bits(f))
	}
	for _, s := range []string{"abc", "\x00\xff"} {
		body = binary.LittleEndian.AppendUint32(body, uint32(len(s)))
		body = append(body, s...)
	}
	body = binary.LittleEndian.AppendUint16(body, Float16(0.5))
	r, err := DecodeInferRequestBinary(body, len(js))
	if err != nil {
		t.Fatal(err)
	}
	want := []any{[]float32{1.5, -2, 3.25}, []int64{7, 8}, []string{"abc", "\x00\xff"}, []float32{0.5}}
	for i, w := range want {
		if !reflect.DeepEqual(r.Inputs[i].Data, w) {
			t.Errorf("input %d data = %#v, want %#v", i, r.Inputs[i].Data, w)
		}
	}
	if r.ID != "b1" || r.Outputs != nil {
		t.Errorf("request = %+v", r)
	}

	for _, tc := range []struct {
		name    string
		body    []byte
		jsonLen int
		want    string
	}{
		{"short", body[:len(body)-1], len(js), "binary data"},
		{"extra", append(append([]byte(nil), body...), 0), len(js), "left over"},
		{"header too long", body, len(body) + 1, "Inference-Header-Content-Length is"},
		{"size mismatch", []byte(`{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":4}}]}` + "abcd"), 91, "needs 2 values of FP32 (8 bytes)"},
	} {
		if _, err := DecodeInferRequestBinary(tc.body, tc.jsonLen); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
	// Without the header, binary_data_size says what is missing.
	if _, err := DecodeInferRequest([]byte(js)); err == nil || !strings.Contains(err.Error(), "binary tensor extension") {
		t.Errorf("JSON only: err = %v", err)
	}
}
