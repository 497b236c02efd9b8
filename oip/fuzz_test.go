package oip_test

import (
	"testing"

	"github.com/modelship/modelship/oip"
)

// FuzzDecodeInferRequest checks that the decoder never panics, and that what
// it accepts re-encodes and decodes to the same element counts.
func FuzzDecodeInferRequest(f *testing.F) {
	f.Add([]byte(`{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[[1,2]]}]}`))
	f.Add([]byte(`{"id":"a","inputs":[{"data":["s"],"name":"x","shape":[1],"datatype":"BYTES"}],"outputs":[{"name":"y"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := oip.DecodeInferRequest(b)
		if err != nil {
			return
		}
		enc, err := oip.AppendInferRequest(nil, r)
		if err != nil {
			t.Fatalf("re-encoding an accepted request: %v", err)
		}
		back, err := oip.DecodeInferRequest(enc)
		if err != nil {
			t.Fatalf("decoding the re-encoded request %s: %v", enc, err)
		}
		for i, in := range r.Inputs {
			n, _ := oip.DataLen(in.Datatype, in.Data)
			m, _ := oip.DataLen(back.Inputs[i].Datatype, back.Inputs[i].Data)
			if n != m {
				t.Fatalf("input %d: %d values became %d", i, n, m)
			}
		}
	})
}
