package oip

import (
	"fmt"
	"math"
	"strings"
)

// The OIP v2 tensor datatypes.
const (
	BOOL   = "BOOL"
	UINT8  = "UINT8"
	UINT16 = "UINT16"
	UINT32 = "UINT32"
	UINT64 = "UINT64"
	INT8   = "INT8"
	INT16  = "INT16"
	INT32  = "INT32"
	INT64  = "INT64"
	FP16   = "FP16"
	FP32   = "FP32"
	FP64   = "FP64"
	BYTES  = "BYTES"
)

// Datatypes lists every datatype the codec handles, in the order of the spec.
var Datatypes = []string{BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BYTES}

// ValidDatatype reports whether dt is one of Datatypes.
func ValidDatatype(dt string) bool {
	switch dt {
	case BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BYTES:
		return true
	}
	return false
}

func unknownDatatype(dt string) error {
	return fmt.Errorf("datatype %q is unknown; use one of %s", dt, strings.Join(Datatypes, ", "))
}

// DataLen returns the number of elements in data and checks that its Go type
// is the one documented on Tensor for datatype.
func DataLen(datatype string, data any) (int, error) {
	n := -1
	switch d := data.(type) {
	case []bool:
		n = lenIf(datatype == BOOL, d)
	case []uint8:
		n = lenIf(datatype == UINT8, d)
	case []uint16:
		n = lenIf(datatype == UINT16, d)
	case []uint32:
		n = lenIf(datatype == UINT32, d)
	case []uint64:
		n = lenIf(datatype == UINT64, d)
	case []int8:
		n = lenIf(datatype == INT8, d)
	case []int16:
		n = lenIf(datatype == INT16, d)
	case []int32:
		n = lenIf(datatype == INT32, d)
	case []int64:
		n = lenIf(datatype == INT64, d)
	case []float32:
		n = lenIf(datatype == FP32 || datatype == FP16, d)
	case []float64:
		n = lenIf(datatype == FP64, d)
	case []string:
		n = lenIf(datatype == BYTES, d)
	}
	if n >= 0 {
		return n, nil
	}
	if !ValidDatatype(datatype) {
		return 0, unknownDatatype(datatype)
	}
	return 0, fmt.Errorf("data of Go type %T does not match datatype %s", data, datatype)
}

func lenIf[T any](ok bool, s []T) int {
	if ok {
		return len(s)
	}
	return -1
}

// maxElements bounds the element count of one tensor (2^40).
const maxElements = 1 << 40

// ShapeSize returns the product of shape's dimensions, or an error when a
// dimension is negative or the product overflows.
func ShapeSize(shape []int64) (int64, error) {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("shape %s has a negative dimension", FormatShape(shape))
		}
		if d != 0 && n > maxElements/d {
			return 0, fmt.Errorf("shape %s is too large", FormatShape(shape))
		}
		n *= d
	}
	return n, nil
}

// FormatShape formats a shape as in JSON, e.g. [1,64].
func FormatShape(shape []int64) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, d := range shape {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprint(&b, d)
	}
	b.WriteByte(']')
	return b.String()
}

// Float16 returns the IEEE 754 half-precision bits nearest to f (round to
// nearest even), as ONNX stores FP16 tensors.
func Float16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	switch {
	case exp == 0xff: // Inf or NaN
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	case exp-127 > 15: // overflow
		return sign | 0x7c00
	case exp-127 >= -14: // normal half
		e := uint32(exp-127+15) << 10
		m := mant >> 13
		h := e | m
		rest := mant & 0x1fff
		if rest > 0x1000 || (rest == 0x1000 && m&1 == 1) {
			h++ // may carry into the exponent, which is still correct (up to Inf)
		}
		return sign | uint16(h)
	case exp-127 >= -25: // subnormal half
		mant |= 0x800000
		shift := uint32(-14-(exp-127)) + 13
		m := mant >> shift
		rest := mant & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rest > half || (rest == half && m&1 == 1) {
			m++
		}
		return sign | uint16(m)
	}
	return sign
}

// Float16To32 converts IEEE 754 half-precision bits to float32 exactly.
func Float16To32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp != 0:
		return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
	case mant == 0:
		return math.Float32frombits(sign)
	}
	// Subnormal: normalise.
	e := uint32(113)
	for mant&0x400 == 0 {
		mant <<= 1
		e--
	}
	return math.Float32frombits(sign | e<<23 | (mant&0x3ff)<<13)
}
