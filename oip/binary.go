package oip

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// HeaderContentLength is the header of the binary tensor data extension
// (Triton's, which KServe's and Triton's clients use by default): the body
// is this many bytes of JSON followed by the raw tensor data.
const HeaderContentLength = "Inference-Header-Content-Length"

// DecodeInferRequestBinary decodes a request of the binary tensor data
// extension: jsonLen bytes of JSON, then the data of every input whose
// parameters give binary_data_size, in input order, little endian (BYTES:
// each element a 4-byte length and its bytes; FP16: IEEE half floats,
// decoded to float32). Inputs may also carry JSON data.
func DecodeInferRequestBinary(b []byte, jsonLen int) (*InferRequest, error) {
	if jsonLen < 0 || jsonLen > len(b) {
		return nil, fmt.Errorf("%s is %d but the body has %d bytes", HeaderContentLength, jsonLen, len(b))
	}
	r := new(InferRequest)
	if err := r.unmarshal(b[:jsonLen], true); err != nil {
		return nil, err
	}
	rest := b[jsonLen:]
	for i := range r.Inputs {
		t := &r.Inputs[i]
		if t.Data != nil {
			continue
		}
		size, err := binarySize(t.Parameters["binary_data_size"])
		if err != nil {
			return nil, fmt.Errorf("input %q: parameters.binary_data_size: %w", t.Name, err)
		}
		if size > len(rest) {
			return nil, fmt.Errorf("input %q: binary_data_size %d but only %d bytes of binary data are left", t.Name, size, len(rest))
		}
		n, err := ShapeSize(t.Shape)
		if err != nil {
			return nil, fmt.Errorf("input %q: %w", t.Name, err)
		}
		if t.Data, err = decodeBinary(t.Datatype, rest[:size], int(n)); err != nil {
			return nil, fmt.Errorf("input %q: %w", t.Name, err)
		}
		rest = rest[size:]
	}
	if len(rest) > 0 {
		return nil, fmt.Errorf("%d bytes of binary data are left over after the inputs' binary_data_size", len(rest))
	}
	return r, nil
}

func binarySize(v any) (int, error) {
	f, ok := v.(float64)
	if !ok || f < 0 || f != math.Trunc(f) || f > math.MaxInt32*4 {
		return 0, fmt.Errorf("want a whole number of bytes, got %v", v)
	}
	return int(f), nil
}

// decodeBinary turns raw little-endian tensor data into the typed slice
// documented on Tensor; n is the element count the shape asks for.
func decodeBinary(dt string, b []byte, n int) (any, error) {
	width := map[string]int{BOOL: 1, UINT8: 1, INT8: 1, UINT16: 2, INT16: 2, FP16: 2, UINT32: 4, INT32: 4, FP32: 4, UINT64: 8, INT64: 8, FP64: 8}[dt]
	if dt == BYTES {
		out := make([]string, 0, n)
		for len(b) > 0 {
			if len(b) < 4 {
				return nil, errors.New("BYTES data: an element's 4-byte length is cut short")
			}
			l := int(binary.LittleEndian.Uint32(b))
			if l > len(b)-4 {
				return nil, fmt.Errorf("BYTES data: an element of %d bytes, %d left", l, len(b)-4)
			}
			out = append(out, string(b[4:4+l]))
			b = b[4+l:]
		}
		if len(out) != n {
			return nil, fmt.Errorf("the shape needs %d values, the binary data holds %d", n, len(out))
		}
		return out, nil
	}
	if width == 0 {
		return nil, unknownDatatype(dt)
	}
	if len(b) != n*width {
		return nil, fmt.Errorf("the shape needs %d values of %s (%d bytes), binary_data_size is %d", n, dt, n*width, len(b))
	}
	le := binary.LittleEndian
	switch dt {
	case BOOL:
		out := make([]bool, n)
		for i := range out {
			out[i] = b[i] != 0
		}
		return out, nil
	case UINT8:
		return append([]uint8(nil), b...), nil
	case INT8:
		out := make([]int8, n)
		for i := range out {
			out[i] = int8(b[i])
		}
		return out, nil
	case UINT16:
		out := make([]uint16, n)
		for i := range out {
			out[i] = le.Uint16(b[2*i:])
		}
		return out, nil
	case INT16:
		out := make([]int16, n)
		for i := range out {
			out[i] = int16(le.Uint16(b[2*i:]))
		}
		return out, nil
	case FP16:
		out := make([]float32, n)
		for i := range out {
			out[i] = Float16To32(le.Uint16(b[2*i:]))
		}
		return out, nil
	case UINT32:
		out := make([]uint32, n)
		for i := range out {
			out[i] = le.Uint32(b[4*i:])
		}
		return out, nil
	case INT32:
		out := make([]int32, n)
		for i := range out {
			out[i] = int32(le.Uint32(b[4*i:]))
		}
		return out, nil
	case FP32:
		out := make([]float32, n)
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(b[4*i:]))
		}
		return out, nil
	case UINT64:
		out := make([]uint64, n)
		for i := range out {
			out[i] = le.Uint64(b[8*i:])
		}
		return out, nil
	case INT64:
		out := make([]int64, n)
		for i := range out {
			out[i] = int64(le.Uint64(b[8*i:]))
		}
		return out, nil
	case FP64:
		out := make([]float64, n)
		for i := range out {
			out[i] = math.Float64frombits(le.Uint64(b[8*i:]))
		}
		return out, nil
	}
	return nil, unknownDatatype(dt)
}
