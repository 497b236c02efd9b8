package onnx

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/modelship/modelship/modelserver"
	"github.com/modelship/modelship/oip"
)

// Infer runs an OIP v2 inference. Each model input must be given once, with
// the model's datatype and a shape that fits the model's (-1 dimensions take
// any size). Errors are *modelserver.InferError: 404 for an unknown model or
// version, 400 for a bad request; a deadline that passes while waiting or
// running returns modelserver.ErrScoringTimeout (wrapped).
func (r *Runtime) Infer(ctx context.Context, name, version string, req *oip.InferRequest) (*oip.InferResponse, error) {
	m, err := r.lookup(name, version)
	if err != nil {
		return nil, err
	}
	var buf [4]*oip.Tensor
	inputs := buf[:0]
	if len(m.inputs) > len(buf) {
		inputs = make([]*oip.Tensor, 0, len(m.inputs))
	}
	inputs = inputs[:len(m.inputs)]
	for i := range req.Inputs {
		t := &req.Inputs[i]
		j := m.inputIndex(t.Name)
		if j < 0 {
			return nil, badRequest("model %q has no input %q; its inputs are %s", m.name, t.Name, list(m.inputs))
		}
		if inputs[j] != nil {
			return nil, badRequest("input %q is given twice", t.Name)
		}
		inputs[j] = t
	}
	for j, t := range inputs {
		if t == nil {
			return nil, badRequest("input %q is missing; model %q needs %s", m.inputs[j].name, m.name, list(m.inputs))
		}
	}
	want := m.outputs
	if len(req.Outputs) > 0 {
		want = make([]tensorInfo, 0, len(req.Outputs))
		for _, o := range req.Outputs {
			j := m.outputIndex(o.Name)
			if j < 0 {
				return nil, badRequest("model %q has no output %q; its outputs are %s", m.name, o.Name, list(m.outputs))
			}
			want = append(want, m.outputs[j])
		}
	}
	outs, err := r.run(ctx, m, inputs)
	if err != nil {
		return nil, err
	}
	resp := &oip.InferResponse{ModelName: m.name, ModelVersion: m.version, ID: req.ID, Outputs: outs}
	if len(req.Outputs) > 0 {
		resp.Outputs = make([]oip.Tensor, len(want))
		for i, w := range want {
			resp.Outputs[i] = outs[m.outputIndex(w.name)]
		}
	}
	return resp, nil
}

// run validates and converts the inputs (in model order), runs the session
// and returns all outputs (in model order).
func (r *Runtime) run(ctx context.Context, m *model, inputs []*oip.Tensor) ([]oip.Tensor, error) {
	if len(m.inputs) == 0 {
		// onnxruntime_go cannot run a session without inputs.
		return nil, &modelserver.InferError{Status: 501, Message: fmt.Sprintf("model %q has no inputs (only constants); such a model cannot be run here", m.name)}
	}
	if err := r.enter(); err != nil {
		return nil, err
	}
	defer r.wg.Done()

	var buf [8]ort.Value
	values := buf[:0]
	if n := len(inputs) + len(m.outputs); n > len(buf) {
		values = make([]ort.Value, 0, n)
	}
	values = values[:len(inputs)+len(m.outputs)]
	in, out := values[:len(inputs)], values[len(inputs):]
	defer func() {
		for _, v := range values {
			// A failed Run can leave typed nil pointers among the outputs.
			if v != nil && !reflect.ValueOf(v).IsNil() {
				v.Destroy()
			}
		}
	}()
	for i, t := range inputs {
		v, err := newValue(&m.inputs[i], t)
		if err != nil {
			return nil, err
		}
		in[i] = v
	}
	for i := range m.outputs {
		out[i] = preallocate(&m.outputs[i])
	}

	if err := r.acquire(ctx, m); err != nil {
		return nil, err
	}
	err := m.runSession(ctx, in, out)
	<-m.sem
	r.active.Add(-1)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctxError(ctx)
		}
		return nil, fmt.Errorf("running model %q: %w", m.name, err)
	}

	res := make([]oip.Tensor, len(out))
	for i, v := range out {
		t, err := toTensor(&m.outputs[i], v)
		if err != nil {
			return nil, fmt.Errorf("model %q: output %q: %w", m.name, m.outputs[i].name, err)
		}
		res[i] = t
	}
	return res, nil
}

// acquire takes one of the model's concurrency slots, waiting (as queued)
// until one is free or ctx ends.
func (r *Runtime) acquire(ctx context.Context, m *model) error {
	select {
	case m.sem <- struct{}{}:
		r.active.Add(1)
		return nil
	default:
	}
	r.queued.Add(1)
	defer r.queued.Add(-1)
	select {
	case m.sem <- struct{}{}:
		r.active.Add(1)
		return nil
	case <-ctx.Done():
		return ctxError(ctx)
	}
}

// runSession runs the session; when ctx can end, its end terminates the Run.
func (m *model) runSession(ctx context.Context, in, out []ort.Value) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if ctx.Done() == nil {
		return m.session.Run(in, out)
	}
	slot := <-m.slots // there are as many as semaphore slots, so one is free
	defer func() { m.slots <- slot }()
	slot.fired.Add(1)
	stop := context.AfterFunc(ctx, slot.terminate)
	err := m.session.RunWithOptions(in, out, slot.opts)
	if stop() {
		slot.fired.Done()
	} else {
		slot.fired.Wait()
		slot.opts.UnsetTerminate()
	}
	return err
}

// runSlot holds the run options of one concurrent Run, to terminate it
// when its context ends.
type runSlot struct {
	opts      *ort.RunOptions
	fired     sync.WaitGroup // the pending terminate call
	terminate func()
}

func newRunSlot() (*runSlot, error) {
	opts, err := ort.NewRunOptions()
	if err != nil {
		return nil, err
	}
	s := &runSlot{opts: opts}
	s.terminate = func() {
		s.opts.Terminate()
		s.fired.Done()
	}
	return s, nil
}

func ctxError(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", modelserver.ErrScoringTimeout, ctx.Err())
	}
	return ctx.Err()
}

func (m *model) inputIndex(name string) int {
	for i := range m.inputs {
		if m.inputs[i].name == name {
			return i
		}
	}
	return -1
}

func (m *model) outputIndex(name string) int {
	for i := range m.outputs {
		if m.outputs[i].name == name {
			return i
		}
	}
	return -1
}

func badRequest(format string, args ...any) error {
	return &modelserver.InferError{Status: 400, Message: fmt.Sprintf(format, args...)}
}

// list formats tensor names and signatures for error messages.
func list(ts []tensorInfo) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = fmt.Sprintf("%q (%s %s)", t.name, t.datatype, oip.FormatShape(t.shape))
	}
	return strings.Join(parts, ", ")
}

// checkShape reports whether shape fits the model's (dynamic dims are -1).
func checkShape(info *tensorInfo, shape []int64) error {
	ok := len(shape) == len(info.shape)
	for i := 0; ok && i < len(shape); i++ {
		ok = info.shape[i] < 0 || info.shape[i] == shape[i]
	}
	if !ok {
		return badRequest("input %q: shape %s does not fit the model's %s (-1 is any size)",
			info.name, oip.FormatShape(shape), oip.FormatShape(info.shape))
	}
	return nil
}

// newValue checks t against info and wraps its data in an ORT value
// (without copying, except FP16 and strings).
func newValue(info *tensorInfo, t *oip.Tensor) (ort.Value, error) {
	if t.Datatype != info.datatype {
		return nil, badRequest("input %q: datatype %s does not match the model's %s", info.name, t.Datatype, info.datatype)
	}
	if err := checkShape(info, t.Shape); err != nil {
		return nil, err
	}
	n, err := oip.DataLen(t.Datatype, t.Data)
	if err != nil {
		return nil, badRequest("input %q: %v", info.name, err)
	}
	size, err := oip.ShapeSize(t.Shape)
	if err != nil {
		return nil, badRequest("input %q: %v", info.name, err)
	}
	if int64(n) != size {
		return nil, badRequest("input %q: shape %s needs %d values, got %d", info.name, oip.FormatShape(t.Shape), size, n)
	}
	shape := ort.Shape(t.Shape)
	var v ort.Value
	switch d := t.Data.(type) {
	case []float32:
		if info.elem == ort.TensorElementDataTypeFloat16 {
			v, err = newFloat16(shape, d)
		} else {
			v, err = newNumeric(shape, d)
		}
	case []float64:
		v, err = newNumeric(shape, d)
	case []int64:
		v, err = newNumeric(shape, d)
	case []int32:
		v, err = newNumeric(shape, d)
	case []int16:
		v, err = newNumeric(shape, d)
	case []int8:
		v, err = newNumeric(shape, d)
	case []uint64:
		v, err = newNumeric(shape, d)
	case []uint32:
		v, err = newNumeric(shape, d)
	case []uint16:
		v, err = newNumeric(shape, d)
	case []uint8:
		v, err = newNumeric(shape, d)
	case []bool:
		v, err = newNumeric(shape, d)
	case []string:
		v, err = newStrings(shape, d)
	}
	if err != nil {
		return nil, fmt.Errorf("input %q: creating the tensor: %w", info.name, err)
	}
	return v, nil
}

func newNumeric[T ort.TensorData](shape ort.Shape, data []T) (ort.Value, error) {
	if len(shape) == 0 {
		return ort.NewScalar(data[0])
	}
	return ort.NewTensor(shape, data)
}

func newFloat16(shape ort.Shape, data []float32) (ort.Value, error) {
	if len(shape) == 0 || len(data) == 0 {
		return nil, errors.New("FP16 scalars and empty FP16 tensors are not supported")
	}
	b := make([]byte, 2*len(data))
	for i, f := range data {
		h := oip.Float16(f)
		b[2*i], b[2*i+1] = byte(h), byte(h>>8)
	}
	return ort.NewCustomDataTensor(shape, b, ort.TensorElementDataTypeFloat16)
}

func newStrings(shape ort.Shape, data []string) (ort.Value, error) {
	if len(shape) == 0 {
		return nil, errors.New("BYTES scalars are not supported")
	}
	st, err := ort.NewStringTensor(shape)
	if err != nil {
		return nil, err
	}
	if err := st.SetContents(data); err != nil {
		st.Destroy()
		return nil, err
	}
	return st, nil
}

// preallocate returns a Go-backed value for a rank-0 output (which ORT's
// auto-allocated outputs cannot express in onnxruntime_go) or an FP16 output
// of static shape (whose auto-allocation onnxruntime_go gets wrong), else nil
// so that ORT allocates the output.
func preallocate(info *tensorInfo) ort.Value {
	if info.elem == ort.TensorElementDataTypeFloat16 {
		v, err := ort.NewCustomDataTensor(ort.Shape(info.shape), make([]byte, 2*staticSize(info.shape)), info.elem)
		if err != nil {
			return nil
		}
		return v
	}
	if len(info.shape) != 0 {
		return nil
	}
	var v ort.Value
	var err error
	switch info.elem {
	case ort.TensorElementDataTypeFloat:
		v, err = ort.NewEmptyScalar[float32]()
	case ort.TensorElementDataTypeDouble:
		v, err = ort.NewEmptyScalar[float64]()
	case ort.TensorElementDataTypeInt64:
		v, err = ort.NewEmptyScalar[int64]()
	case ort.TensorElementDataTypeInt32:
		v, err = ort.NewEmptyScalar[int32]()
	case ort.TensorElementDataTypeInt16:
		v, err = ort.NewEmptyScalar[int16]()
	case ort.TensorElementDataTypeInt8:
		v, err = ort.NewEmptyScalar[int8]()
	case ort.TensorElementDataTypeUint64:
		v, err = ort.NewEmptyScalar[uint64]()
	case ort.TensorElementDataTypeUint32:
		v, err = ort.NewEmptyScalar[uint32]()
	case ort.TensorElementDataTypeUint16:
		v, err = ort.NewEmptyScalar[uint16]()
	case ort.TensorElementDataTypeUint8:
		v, err = ort.NewEmptyScalar[uint8]()
	case ort.TensorElementDataTypeBool:
		v, err = ort.NewEmptyScalar[bool]()
	}
	if err != nil {
		return nil
	}
	return v
}

// staticSize is the element count of a shape without dynamic dimensions.
func staticSize(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}

// toTensor converts an output value to an OIP tensor; the data is Go memory
// that stays valid after the value is destroyed.
func toTensor(info *tensorInfo, v ort.Value) (oip.Tensor, error) {
	t := oip.Tensor{Name: info.name, Datatype: info.datatype, Shape: []int64(v.GetShape())}
	switch x := v.(type) {
	case *ort.Tensor[float32]:
		t.Data = x.GetData()
	case *ort.Tensor[float64]:
		t.Data = x.GetData()
	case *ort.Tensor[int64]:
		t.Data = x.GetData()
	case *ort.Tensor[int32]:
		t.Data = x.GetData()
	case *ort.Tensor[int16]:
		t.Data = x.GetData()
	case *ort.Tensor[int8]:
		t.Data = x.GetData()
	case *ort.Tensor[uint64]:
		t.Data = x.GetData()
	case *ort.Tensor[uint32]:
		t.Data = x.GetData()
	case *ort.Tensor[uint16]:
		t.Data = x.GetData()
	case *ort.Tensor[uint8]:
		t.Data = x.GetData()
	case *ort.Tensor[bool]:
		t.Data = x.GetData()
	case *ort.Scalar[float32]:
		t.Data = []float32{x.GetData()}
	case *ort.Scalar[float64]:
		t.Data = []float64{x.GetData()}
	case *ort.Scalar[int64]:
		t.Data = []int64{x.GetData()}
	case *ort.Scalar[int32]:
		t.Data = []int32{x.GetData()}
	case *ort.Scalar[int16]:
		t.Data = []int16{x.GetData()}
	case *ort.Scalar[int8]:
		t.Data = []int8{x.GetData()}
	case *ort.Scalar[uint64]:
		t.Data = []uint64{x.GetData()}
	case *ort.Scalar[uint32]:
		t.Data = []uint32{x.GetData()}
	case *ort.Scalar[uint16]:
		t.Data = []uint16{x.GetData()}
	case *ort.Scalar[uint8]:
		t.Data = []uint8{x.GetData()}
	case *ort.Scalar[bool]:
		t.Data = []bool{x.GetData()}
	case *ort.StringTensor:
		s, err := x.GetContents()
		if err != nil {
			return t, err
		}
		t.Data = s
	case *ort.CustomDataTensor:
		if info.elem != ort.TensorElementDataTypeFloat16 {
			return t, fmt.Errorf("element type %s is not supported", info.elem)
		}
		b := x.GetData()
		f := make([]float32, len(b)/2)
		for i := range f {
			f[i] = oip.Float16To32(uint16(b[2*i]) | uint16(b[2*i+1])<<8)
		}
		t.Data = f
	default:
		return t, fmt.Errorf("value of type %T is not supported", v)
	}
	if len(t.Shape) == 0 {
		t.Shape = []int64{}
	}
	return t, nil
}
