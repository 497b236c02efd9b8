package oip

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unsafe"
)

// maxDepth bounds the nesting of JSON values the decoder accepts.
const maxDepth = 64

// DecodeInferRequest decodes the JSON body of POST .../infer. Tensor data is
// parsed straight into the typed slices documented on Tensor; nested data is
// flattened row-major and its element count must equal the product of the
// tensor's shape. Every error describes a problem with the request (a client
// error) and names the input concerned.
func DecodeInferRequest(b []byte) (*InferRequest, error) {
	r := new(InferRequest)
	if err := r.UnmarshalJSON(b); err != nil {
		return nil, err
	}
	return r, nil
}

// UnmarshalJSON implements json.Unmarshaler with the fast decoder.
func (r *InferRequest) UnmarshalJSON(b []byte) error {
	return r.unmarshal(b, false)
}

// unmarshal decodes the JSON part of a request; with binary, an input may
// leave out data and give parameters.binary_data_size instead.
func (r *InferRequest) unmarshal(b []byte, binary bool) error {
	*r = InferRequest{}
	d := &decoder{b: b}
	err := d.object(func(key []byte) error {
		var err error
		if d.null() { // null is "not given" for every field
			return nil
		}
		switch string(key) {
		case "id":
			r.ID, err = d.str()
		case "parameters":
			r.Parameters, err = d.params()
		case "inputs":
			err = d.array(func() error {
				var t Tensor
				if err := d.tensor(&t, "input", len(r.Inputs), binary); err != nil {
					return err
				}
				r.Inputs = append(r.Inputs, t)
				return nil
			})
		case "outputs":
			err = d.array(func() error {
				o, err := d.requestedOutput(len(r.Outputs))
				r.Outputs = append(r.Outputs, o)
				return err
			})
		default:
			err = d.skip(0)
		}
		return err
	})
	if err != nil {
		return err
	}
	if err := d.end(); err != nil {
		return err
	}
	if r.Inputs == nil {
		return errors.New("request has no inputs")
	}
	return nil
}

// DecodeInferResponse decodes the JSON body of a 200 answer of .../infer,
// with the same rules as DecodeInferRequest.
func DecodeInferResponse(b []byte) (*InferResponse, error) {
	r := new(InferResponse)
	if err := r.UnmarshalJSON(b); err != nil {
		return nil, err
	}
	return r, nil
}

// UnmarshalJSON implements json.Unmarshaler with the fast decoder.
func (r *InferResponse) UnmarshalJSON(b []byte) error {
	*r = InferResponse{}
	d := &decoder{b: b}
	err := d.object(func(key []byte) error {
		var err error
		switch string(key) {
		case "model_name":
			r.ModelName, err = d.str()
		case "model_version":
			r.ModelVersion, err = d.str()
		case "id":
			r.ID, err = d.str()
		case "parameters":
			r.Parameters, err = d.params()
		case "outputs":
			err = d.array(func() error {
				var t Tensor
				if err := d.tensor(&t, "output", len(r.Outputs), false); err != nil {
					return err
				}
				r.Outputs = append(r.Outputs, t)
				return nil
			})
		default:
			err = d.skip(0)
		}
		return err
	})
	if err != nil {
		return err
	}
	return d.end()
}

// DecodeTensorData parses one JSON value of the given datatype: a scalar or a
// (nested) array. It returns the flat row-major data (typed as documented on
// Tensor) and the shape given by the nesting; ragged arrays are an error.
// Azure-style /score bodies such as {"data": [[1, 2], [3, 4]]} use it.
func DecodeTensorData(b []byte, datatype string) (data any, shape []int64, err error) {
	d := &decoder{b: b}
	data, shape, err = d.tensorData(datatype, 0, true)
	if err != nil {
		return nil, nil, err
	}
	return data, shape, d.end()
}

// ScanObject calls fn with each member of the JSON object in b: its key and
// the raw bytes of its value.
func ScanObject(b []byte, fn func(key string, value []byte) error) error {
	d := &decoder{b: b}
	err := d.object(func(key []byte) error {
		d.ws()
		start := d.i
		if err := d.skip(0); err != nil {
			return err
		}
		return fn(string(key), d.b[start:d.i])
	})
	if err != nil {
		return err
	}
	return d.end()
}

// decoder is a small JSON scanner over a byte slice.
type decoder struct {
	b []byte
	i int
}

func (d *decoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// peek skips white space and returns the next byte, or 0 at the end.
func (d *decoder) peek() byte {
	d.ws()
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

// null consumes a JSON null, if that is what comes next.
func (d *decoder) null() bool {
	d.ws()
	if bytes.HasPrefix(d.b[d.i:], []byte("null")) {
		d.i += 4
		return true
	}
	return false
}

func (d *decoder) consume(c byte) bool {
	if d.peek() == c {
		d.i++
		return true
	}
	return false
}

func (d *decoder) expect(c byte) error {
	if d.consume(c) {
		return nil
	}
	return d.unexpected(strconv.QuoteRune(rune(c)))
}

func (d *decoder) unexpected(want string) error {
	if d.i >= len(d.b) {
		return fmt.Errorf("invalid JSON: unexpected end of input, want %s", want)
	}
	return fmt.Errorf("invalid JSON at offset %d: unexpected %q, want %s", d.i, d.b[d.i], want)
}

// end checks that only white space follows.
func (d *decoder) end() error {
	if d.peek() != 0 || d.i < len(d.b) {
		return d.unexpected("end of input")
	}
	return nil
}

// object scans an object, calling field with each key; field must consume the value.
func (d *decoder) object(field func(key []byte) error) error {
	if err := d.expect('{'); err != nil {
		return err
	}
	if d.consume('}') {
		return nil
	}
	for {
		d.ws()
		start := d.i
		key, escaped, err := d.rawString()
		if err != nil {
			return err
		}
		if escaped {
			var s string
			if err := json.Unmarshal(d.b[start:d.i], &s); err != nil {
				return fmt.Errorf("invalid JSON string at offset %d: %w", start, err)
			}
			key = []byte(s)
		}
		if err := d.expect(':'); err != nil {
			return err
		}
		if err := field(key); err != nil {
			return err
		}
		if d.consume(',') {
			continue
		}
		return d.expect('}')
	}
}

// array scans an array, calling elem for each element; elem must consume it.
func (d *decoder) array(elem func() error) error {
	if err := d.expect('['); err != nil {
		return err
	}
	if d.consume(']') {
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		if d.consume(',') {
			continue
		}
		return d.expect(']')
	}
}

// rawString scans a string and returns its bytes between the quotes.
func (d *decoder) rawString() (s []byte, escaped bool, err error) {
	if d.peek() != '"' {
		return nil, false, d.unexpected("a string")
	}
	start := d.i + 1
	for j := start; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			d.i = j + 1
			return d.b[start:j], escaped, nil
		case c == '\\':
			escaped = true
			j++
		case c < 0x20:
			d.i = j
			return nil, false, d.unexpected("no control character in a string")
		}
	}
	d.i = len(d.b)
	return nil, false, d.unexpected(`'"'`)
}

// str decodes a string value.
func (d *decoder) str() (string, error) {
	d.ws()
	start := d.i
	raw, escaped, err := d.rawString()
	if err != nil {
		return "", err
	}
	if !escaped {
		return string(raw), nil
	}
	var s string
	if err := json.Unmarshal(d.b[start:d.i], &s); err != nil {
		return "", fmt.Errorf("invalid JSON string at offset %d: %w", start, err)
	}
	return s, nil
}

// params decodes a parameters object (rare, so encoding/json does it).
func (d *decoder) params() (map[string]any, error) {
	d.ws()
	start := d.i
	if err := d.skip(0); err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(d.b[start:d.i], &m); err != nil {
		return nil, fmt.Errorf("parameters: %w", err)
	}
	return m, nil
}

// skip scans over any value.
func (d *decoder) skip(depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("invalid JSON at offset %d: nested deeper than %d", d.i, maxDepth)
	}
	switch c := d.peek(); c {
	case '"':
		_, _, err := d.rawString()
		return err
	case '{':
		return d.object(func([]byte) error { return d.skip(depth + 1) })
	case '[':
		return d.array(func() error { return d.skip(depth + 1) })
	case 't':
		return d.literal("true")
	case 'f':
		return d.literal("false")
	case 'n':
		return d.literal("null")
	default:
		if len(d.number()) == 0 {
			return d.unexpected("a value")
		}
		return nil
	}
}

func (d *decoder) literal(lit string) error {
	if len(d.b)-d.i >= len(lit) && string(d.b[d.i:d.i+len(lit)]) == lit {
		d.i += len(lit)
		return nil
	}
	return d.unexpected(lit)
}

// numChar marks the bytes that can appear in a JSON number.
var numChar = [256]bool{'0': true, '1': true, '2': true, '3': true, '4': true, '5': true, '6': true,
	'7': true, '8': true, '9': true, '-': true, '+': true, '.': true, 'e': true, 'E': true}

// number scans a number token (possibly empty) after white space.
func (d *decoder) number() []byte {
	d.ws()
	start := d.i
	for d.i < len(d.b) && numChar[d.b[d.i]] {
		d.i++
	}
	return d.b[start:d.i]
}

// shape decodes a shape array of non-negative integers.
func (d *decoder) shape() ([]int64, error) {
	shape := make([]int64, 0, 4)
	err := d.array(func() error {
		tok := d.number()
		v, err := strconv.ParseInt(bytesString(tok), 10, 64)
		if err != nil || v < 0 {
			if len(tok) == 0 {
				return d.unexpected("a dimension")
			}
			return fmt.Errorf("shape: %q is not a non-negative integer", tok)
		}
		shape = append(shape, v)
		return nil
	})
	return shape, err
}

func (d *decoder) requestedOutput(i int) (RequestedOutput, error) {
	var o RequestedOutput
	err := d.object(func(key []byte) error {
		var err error
		switch string(key) {
		case "name":
			o.Name, err = d.str()
		case "parameters":
			o.Parameters, err = d.params()
		default:
			err = d.skip(0)
		}
		return err
	})
	if err != nil {
		return o, fmt.Errorf("outputs[%d]: %w", i, err)
	}
	if o.Name == "" {
		return o, fmt.Errorf("outputs[%d]: name is missing", i)
	}
	return o, nil
}

// tensor decodes one tensor object; kind ("input" or "output") and index
// name it in errors.
func (d *decoder) tensor(t *Tensor, kind string, index int, binary bool) (err error) {
	defer func() {
		if err != nil {
			if t.Name != "" {
				err = fmt.Errorf("%s %q: %w", kind, t.Name, err)
			} else {
				err = fmt.Errorf("%ss[%d]: %w", kind, index, err)
			}
		}
	}()
	hasShape := false
	dataStart, dataEnd := -1, -1
	err = d.object(func(key []byte) error {
		var err error
		switch string(key) {
		case "name":
			t.Name, err = d.str()
		case "shape":
			t.Shape, err = d.shape()
			hasShape = true
		case "datatype":
			t.Datatype, err = d.str()
		case "parameters":
			t.Parameters, err = d.params()
		case "data":
			if ValidDatatype(t.Datatype) {
				// The common order: datatype (and shape) first, so parse now.
				hint := -1
				if hasShape {
					if n, err := ShapeSize(t.Shape); err == nil {
						hint = int(n)
					}
				}
				t.Data, _, err = d.tensorData(t.Datatype, hint, false)
				dataStart, dataEnd = -1, -1
				return err
			}
			d.ws()
			dataStart = d.i
			err = d.skip(0)
			dataEnd = d.i
		default:
			err = d.skip(0)
		}
		return err
	})
	if err != nil {
		return err
	}
	switch {
	case t.Name == "":
		return errors.New("name is missing")
	case t.Datatype == "":
		return errors.New("datatype is missing")
	case !ValidDatatype(t.Datatype):
		return unknownDatatype(t.Datatype)
	case !hasShape:
		return errors.New("shape is missing")
	}
	if dataStart >= 0 {
		sub := &decoder{b: d.b[:dataEnd], i: dataStart}
		if t.Data, _, err = sub.tensorData(t.Datatype, -1, false); err != nil {
			return err
		}
	}
	if t.Data == nil {
		if _, ok := t.Parameters["binary_data_size"]; ok {
			if binary {
				return nil // filled from the binary part
			}
			return errors.New("data is missing: parameters.binary_data_size asks for the binary tensor extension, which needs the Inference-Header-Content-Length header")
		}
		return errors.New("data is missing")
	}
	want, err := ShapeSize(t.Shape)
	if err != nil {
		return err
	}
	if got, _ := DataLen(t.Datatype, t.Data); int64(got) != want {
		return fmt.Errorf("shape %s needs %d values, got %d", FormatShape(t.Shape), want, got)
	}
	return nil
}

// tensorData parses a scalar or nested array of datatype dt. hint is the
// expected element count (-1 if unknown); wantShape asks for the shape given
// by the nesting.
func (d *decoder) tensorData(dt string, hint int, wantShape bool) (any, []int64, error) {
	switch dt {
	case BOOL:
		return parseArray(d, dt, hint, wantShape, scanBool)
	case UINT8:
		return parseArray(d, dt, hint, wantShape, scanUint[uint8])
	case UINT16:
		return parseArray(d, dt, hint, wantShape, scanUint[uint16])
	case UINT32:
		return parseArray(d, dt, hint, wantShape, scanUint[uint32])
	case UINT64:
		return parseArray(d, dt, hint, wantShape, scanUint[uint64])
	case INT8:
		return parseArray(d, dt, hint, wantShape, scanInt[int8])
	case INT16:
		return parseArray(d, dt, hint, wantShape, scanInt[int16])
	case INT32:
		return parseArray(d, dt, hint, wantShape, scanInt[int32])
	case INT64:
		return parseArray(d, dt, hint, wantShape, scanInt[int64])
	case FP16, FP32:
		return parseArray(d, dt, hint, wantShape, scanFloat32)
	case FP64:
		return parseArray(d, dt, hint, wantShape, scanFloat64)
	case BYTES:
		return parseArray(d, dt, hint, wantShape, scanString)
	}
	return nil, nil, unknownDatatype(dt)
}

// arrayParser flattens a nested JSON array into out, checking that the
// nesting is rectangular.
type arrayParser[T any] struct {
	d      *decoder
	dt     string
	out    []T
	scan   func(d *decoder) (T, bool)
	dims   [maxDepth + 1]int64 // length of the arrays at each depth, -1 unknown
	leaf   int                 // depth of the scalars, -1 unknown
	deeper int                 // deepest depth at which an array started
}

func parseArray[T any](d *decoder, dt string, hint int, wantShape bool, scan func(*decoder) (T, bool)) (any, []int64, error) {
	if hint < 0 {
		hint = 8
	}
	// Every element takes at least two bytes ("1,"), which bounds what a
	// lying shape can make us allocate.
	if limit := (len(d.b)-d.i)/2 + 1; hint > limit {
		hint = limit
	}
	p := &arrayParser[T]{d: d, dt: dt, out: make([]T, 0, hint), scan: scan, leaf: -1, deeper: -1}
	for i := range p.dims {
		p.dims[i] = -1
	}
	if err := p.value(0); err != nil {
		return nil, nil, err
	}
	var shape []int64
	if wantShape {
		shape = make([]int64, 0, p.deeper+1)
		for i := 0; i <= p.deeper; i++ {
			shape = append(shape, p.dims[i])
		}
	}
	return p.out, shape, nil
}

func (p *arrayParser[T]) value(depth int) error {
	d := p.d
	if d.peek() != '[' {
		if p.leaf < 0 {
			p.leaf = depth
		}
		if depth != p.leaf || depth <= p.deeper {
			return p.ragged()
		}
		return p.scalar()
	}
	if depth >= maxDepth {
		return fmt.Errorf("data: nested deeper than %d", maxDepth)
	}
	if p.leaf >= 0 && depth >= p.leaf {
		return p.ragged()
	}
	p.deeper = max(p.deeper, depth)
	d.i++
	n := int64(0)
	if !d.consume(']') {
		for {
			var err error
			if d.peek() == '[' || p.leaf != depth+1 {
				err = p.value(depth + 1)
			} else {
				err = p.scalar()
			}
			if err != nil {
				return err
			}
			n++
			if d.consume(',') {
				continue
			}
			if err := d.expect(']'); err != nil {
				return fmt.Errorf("data: %w", err)
			}
			break
		}
	}
	switch p.dims[depth] {
	case -1:
		p.dims[depth] = n
	case n:
	default:
		return p.ragged()
	}
	return nil
}

func (p *arrayParser[T]) scalar() error {
	d := p.d
	d.ws()
	start := d.i
	v, ok := p.scan(d)
	if !ok {
		if d.i == start {
			return fmt.Errorf("data[%d]: %w", len(p.out), d.unexpected("a "+p.dt+" value"))
		}
		return fmt.Errorf("data[%d]: %s is not a valid %s value", len(p.out), truncate(d.b[start:d.i]), p.dt)
	}
	p.out = append(p.out, v)
	return nil
}

func (p *arrayParser[T]) ragged() error {
	return fmt.Errorf("data: nested arrays are ragged or mix arrays and values (at element %d)", len(p.out))
}

func truncate(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

// bytesString views b as a string without copying; the string must not be
// retained past b's lifetime (strconv's errors copy their input).
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

func scanBool(d *decoder) (bool, bool) {
	switch {
	case d.literal("true") == nil:
		return true, true
	case d.literal("false") == nil:
		return false, true
	}
	d.number() // consume a bad token for the error message
	return false, false
}

func scanFloat64(d *decoder) (float64, bool) {
	tok := d.number()
	if len(tok) <= 1 && (len(tok) == 0 || tok[0] == '-') {
		return specialFloat(d, len(tok) == 1)
	}
	if m, frac, neg, ok := simpleDecimal(tok); ok && m < 1e15 {
		v := float64(m) / pow10[frac]
		if neg {
			v = -v
		}
		return v, true
	}
	v, err := strconv.ParseFloat(bytesString(tok), 64)
	return v, err == nil || isRange(err)
}

func scanFloat32(d *decoder) (float32, bool) {
	tok := d.number()
	if len(tok) <= 1 && (len(tok) == 0 || tok[0] == '-') {
		v, ok := specialFloat(d, len(tok) == 1)
		return float32(v), ok
	}
	if m, frac, neg, ok := simpleDecimal(tok); ok && m < 1<<53 {
		// m/10^frac rounds correctly to float64; rounding that to float32
		// is correct too unless it lies exactly halfway between two
		// float32s (the only place double rounding can differ).
		v := float64(m) / pow10[frac]
		if bits := math.Float64bits(v); bits&(1<<29-1) != 1<<28 && (v == 0 || v >= 0x1p-126 && v <= math.MaxFloat32) {
			if neg {
				v = -v
			}
			return float32(v), true
		}
	}
	v, err := strconv.ParseFloat(bytesString(tok), 32)
	return float32(v), err == nil || isRange(err)
}

// isRange reports a strconv range error: the value rounds to ±Inf or 0,
// which is what a float tensor can hold.
func isRange(err error) bool {
	return errors.Is(err, strconv.ErrRange)
}

// specialFloat accepts NaN, Infinity and -Infinity as Python's json module
// writes them (the encoder writes them too); neg means a '-' was consumed.
func specialFloat(d *decoder, neg bool) (float64, bool) {
	switch {
	case d.literal("Infinity") == nil:
		if neg {
			return math.Inf(-1), true
		}
		return math.Inf(1), true
	case !neg && d.literal("NaN") == nil:
		return math.NaN(), true
	}
	return 0, false
}

// simpleDecimal splits a plain decimal such as -12.345 (no exponent, at
// most 19 digits) into its digits as an integer, the number of fraction
// digits and the sign. Callers use Clinger's fast path: when the integer and
// the power of ten are both exact in the float type, one division rounds
// correctly.
func simpleDecimal(tok []byte) (mant uint64, frac int, neg, ok bool) {
	i := 0
	if tok[0] == '-' {
		neg, i = true, 1
	}
	if len(tok)-i > 20 || i == len(tok) || tok[i] == '.' || tok[len(tok)-1] == '.' {
		return 0, 0, false, false
	}
	seenDot := false
	for ; i < len(tok); i++ {
		c := tok[i]
		switch {
		case c >= '0' && c <= '9':
			mant = mant*10 + uint64(c-'0')
			if seenDot {
				frac++
			}
		case c == '.' && !seenDot:
			seenDot = true
		default:
			return 0, 0, false, false
		}
	}
	return mant, frac, neg, frac < len(pow10)
}

var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

type signed interface {
	~int8 | ~int16 | ~int32 | ~int64
}
type unsigned interface {
	~uint8 | ~uint16 | ~uint32 | ~uint64
}

func scanInt[T signed](d *decoder) (T, bool) {
	tok := d.number()
	bits := int(unsafe.Sizeof(T(0))) * 8
	v, err := strconv.ParseInt(bytesString(tok), 10, bits)
	if err == nil {
		return T(v), true
	}
	// Accept integral values written as floats (1.0, 1e3).
	f, err := strconv.ParseFloat(bytesString(tok), 64)
	lim := math.Ldexp(1, bits-1)
	if err != nil || f != math.Trunc(f) || f < -lim || f >= lim {
		return 0, false
	}
	return T(f), true
}

func scanUint[T unsigned](d *decoder) (T, bool) {
	tok := d.number()
	bits := int(unsafe.Sizeof(T(0))) * 8
	v, err := strconv.ParseUint(bytesString(tok), 10, bits)
	if err == nil {
		return T(v), true
	}
	f, err := strconv.ParseFloat(bytesString(tok), 64)
	if err != nil || f != math.Trunc(f) || f < 0 || f >= math.Ldexp(1, bits) {
		return 0, false
	}
	return T(f), true
}

func scanString(d *decoder) (string, bool) {
	if d.peek() != '"' {
		d.number()
		return "", false
	}
	s, err := d.str()
	return s, err == nil
}
