package oip

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// AppendInferResponse appends the JSON encoding of r to dst. Tensor data is
// written flat. Non-finite floats are written as NaN, Infinity and
// -Infinity, as Python's json module does (plain JSON has no such numbers).
func AppendInferResponse(dst []byte, r *InferResponse) ([]byte, error) {
	dst = append(dst, `{"model_name":`...)
	dst = appendString(dst, r.ModelName)
	if r.ModelVersion != "" {
		dst = append(dst, `,"model_version":`...)
		dst = appendString(dst, r.ModelVersion)
	}
	if r.ID != "" {
		dst = append(dst, `,"id":`...)
		dst = appendString(dst, r.ID)
	}
	dst, err := appendParams(dst, r.Parameters)
	if err != nil {
		return nil, err
	}
	dst = append(dst, `,"outputs":`...)
	if dst, err = appendTensors(dst, r.Outputs, "output"); err != nil {
		return nil, err
	}
	return append(dst, '}'), nil
}

// MarshalJSON implements json.Marshaler with AppendInferResponse.
func (r *InferResponse) MarshalJSON() ([]byte, error) {
	return AppendInferResponse(nil, r)
}

// AppendInferRequest appends the JSON encoding of r to dst, as a client sends it.
func AppendInferRequest(dst []byte, r *InferRequest) ([]byte, error) {
	dst = append(dst, `{"inputs":`...)
	dst, err := appendTensors(dst, r.Inputs, "input")
	if err != nil {
		return nil, err
	}
	if r.ID != "" {
		dst = append(dst, `,"id":`...)
		dst = appendString(dst, r.ID)
	}
	if dst, err = appendParams(dst, r.Parameters); err != nil {
		return nil, err
	}
	if len(r.Outputs) > 0 {
		b, err := json.Marshal(r.Outputs)
		if err != nil {
			return nil, fmt.Errorf("outputs: %w", err)
		}
		dst = append(dst, `,"outputs":`...)
		dst = append(dst, b...)
	}
	return append(dst, '}'), nil
}

// MarshalJSON implements json.Marshaler with AppendInferRequest.
func (r *InferRequest) MarshalJSON() ([]byte, error) {
	return AppendInferRequest(nil, r)
}

// appendParams writes `,"parameters":{...}` when params is not empty.
func appendParams(dst []byte, params map[string]any) ([]byte, error) {
	if len(params) == 0 {
		return dst, nil
	}
	b, err := json.Marshal(params)
	if err != nil {
		return nil, fmt.Errorf("parameters: %w", err)
	}
	dst = append(dst, `,"parameters":`...)
	return append(dst, b...), nil
}

func appendTensors(dst []byte, ts []Tensor, kind string) ([]byte, error) {
	dst = append(dst, '[')
	for i := range ts {
		if i > 0 {
			dst = append(dst, ',')
		}
		t := &ts[i]
		dst = append(dst, `{"name":`...)
		dst = appendString(dst, t.Name)
		dst = append(dst, `,"datatype":`...)
		dst = appendString(dst, t.Datatype)
		dst = append(dst, `,"shape":[`...)
		for j, n := range t.Shape {
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = strconv.AppendInt(dst, n, 10)
		}
		dst = append(dst, ']')
		var err error
		if dst, err = appendParams(dst, t.Parameters); err != nil {
			return nil, fmt.Errorf("%s %q: %w", kind, t.Name, err)
		}
		dst = append(dst, `,"data":`...)
		if dst, err = AppendTensorData(dst, t, false); err != nil {
			return nil, fmt.Errorf("%s %q: %w", kind, t.Name, err)
		}
		dst = append(dst, '}')
	}
	return append(dst, ']'), nil
}

// AppendTensorData appends t.Data as a JSON array: flat, or nested following
// t.Shape (a scalar for an empty shape). The data's Go type must match
// t.Datatype and its length the product of t.Shape.
func AppendTensorData(dst []byte, t *Tensor, nested bool) ([]byte, error) {
	n, err := DataLen(t.Datatype, t.Data)
	if err != nil {
		return nil, err
	}
	want, err := ShapeSize(t.Shape)
	if err != nil {
		return nil, err
	}
	if int64(n) != want {
		return nil, fmt.Errorf("shape %s needs %d values, got %d", FormatShape(t.Shape), want, n)
	}
	shape := t.Shape
	if !nested {
		shape = []int64{int64(n)}
	}
	switch v := t.Data.(type) {
	case []bool:
		return appendNested(dst, v, shape, appendBool), nil
	case []uint8:
		return appendNested(dst, v, shape, appendUint[uint8]), nil
	case []uint16:
		return appendNested(dst, v, shape, appendUint[uint16]), nil
	case []uint32:
		return appendNested(dst, v, shape, appendUint[uint32]), nil
	case []uint64:
		return appendNested(dst, v, shape, appendUint[uint64]), nil
	case []int8:
		return appendNested(dst, v, shape, appendInt[int8]), nil
	case []int16:
		return appendNested(dst, v, shape, appendInt[int16]), nil
	case []int32:
		return appendNested(dst, v, shape, appendInt[int32]), nil
	case []int64:
		return appendNested(dst, v, shape, appendInt[int64]), nil
	case []float32:
		return appendNested(dst, v, shape, appendFloat32), nil
	case []float64:
		return appendNested(dst, v, shape, appendFloat64), nil
	case []string:
		return appendNested(dst, v, shape, appendString), nil
	}
	return nil, fmt.Errorf("data of Go type %T cannot be encoded", t.Data)
}

// appendNested writes data as arrays nested along shape.
func appendNested[T any](dst []byte, data []T, shape []int64, one func([]byte, T) []byte) []byte {
	if len(shape) == 0 {
		return one(dst, data[0])
	}
	if len(shape) == 1 {
		dst = append(dst, '[')
		for i, v := range data {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = one(dst, v)
		}
		return append(dst, ']')
	}
	dst = append(dst, '[')
	if shape[0] > 0 {
		step := len(data) / int(shape[0])
		for i := range int(shape[0]) {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendNested(dst, data[i*step:(i+1)*step], shape[1:], one)
		}
	}
	return append(dst, ']')
}

func appendBool(dst []byte, v bool) []byte { return strconv.AppendBool(dst, v) }

func appendInt[T signed](dst []byte, v T) []byte { return strconv.AppendInt(dst, int64(v), 10) }

func appendUint[T unsigned](dst []byte, v T) []byte { return strconv.AppendUint(dst, uint64(v), 10) }

func appendFloat32(dst []byte, v float32) []byte {
	f := float64(v)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return appendNonFinite(dst, f)
	}
	return strconv.AppendFloat(dst, f, 'g', -1, 32)
}

func appendFloat64(dst []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return appendNonFinite(dst, v)
	}
	return strconv.AppendFloat(dst, v, 'g', -1, 64)
}

func appendNonFinite(dst []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "NaN"...)
	case f > 0:
		return append(dst, "Infinity"...)
	}
	return append(dst, "-Infinity"...)
}

// appendString writes s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			b, _ := json.Marshal(s) // never fails for a string
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}
