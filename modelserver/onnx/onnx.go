// Package onnx is the no-code model runtime: it serves ONNX models in
// process through ONNX Runtime (cgo, github.com/yalue/onnxruntime_go).
//
// One session is created per model when the Runtime is built and shared by
// all requests; MaxConcurrency bounds how many Run calls a model executes at
// once. Inputs, outputs, element types and shapes are read from the model and
// exposed as Open Inference Protocol v2 metadata (platform "onnx_onnxv1",
// -1 for a dynamic dimension).
package onnx

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/modelship/modelship/modelserver"
	"github.com/modelship/modelship/oip"
)

// ORTVersion is the ONNX Runtime version scripts/setup.sh installs.
const ORTVersion = "1.24.1"

// Platform is the OIP platform name of ONNX models.
const Platform = "onnx_onnxv1"

var _ modelserver.Runtime = (*Runtime)(nil)

// DefaultLibraryPath returns where the ONNX Runtime shared library is looked
// for: $MODELSHIP_ORT_LIB if set, else
// ${MODELSHIP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/modelship}/onnxruntime/<ORTVersion>/libonnxruntime.so,
// where scripts/setup.sh puts it.
func DefaultLibraryPath() string {
	if p := os.Getenv("MODELSHIP_ORT_LIB"); p != "" {
		return p
	}
	cache := os.Getenv("MODELSHIP_CACHE_DIR")
	explicit := cache != ""
	if cache == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		explicit = base != ""
		if base == "" {
			home, _ := os.UserHomeDir()
			base = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(base, "modelship")
	}
	p := filepath.Join(cache, "onnxruntime", ORTVersion, "libonnxruntime.so")
	if _, err := os.Stat(p); err != nil && !explicit {
		// scripts/setup.sh run as root also installs a system-wide copy,
		// so servers and replicas with another HOME find it too.
		if _, serr := os.Stat(SystemLibraryPath); serr == nil {
			return SystemLibraryPath
		}
	}
	return p
}

// SystemLibraryPath is where scripts/setup.sh, run as root, installs the
// library for every user.
var SystemLibraryPath = filepath.Join("/usr/local/lib/modelship/onnxruntime", ORTVersion, "libonnxruntime.so")

// ErrLibraryNotFound is returned (wrapped) when the ONNX Runtime library is
// missing.
var ErrLibraryNotFound = errors.New("ONNX Runtime library not found")

// env is the process-wide ONNX Runtime environment. It is initialised once,
// by the first successful New; a failed attempt can be retried.
var env struct {
	sync.Mutex
	path string
}

// initEnvironment loads the library at path and creates the ORT environment,
// once per process.
func initEnvironment(path string) error {
	env.Lock()
	defer env.Unlock()
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("%w at %s; run scripts/setup.sh or set MODELSHIP_ORT_LIB / --onnxruntime-lib", ErrLibraryNotFound, path)
	}
	if env.path != "" {
		if path != env.path {
			return fmt.Errorf("ONNX Runtime is already loaded from %s in this process; cannot also load %s", env.path, path)
		}
		return nil
	}
	ort.SetSharedLibraryPath(path)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return fmt.Errorf("initializing ONNX Runtime from %s (version %s or newer is needed): %w", path, ORTVersion, err)
	}
	env.path = path
	return nil
}

// Config configures a Runtime.
type Config struct {
	// Models are the models to serve; at least one.
	Models []Model
	// LibraryPath is the ONNX Runtime shared library; empty means
	// DefaultLibraryPath().
	LibraryPath string
	// IntraOpThreads is the number of threads one Run may use (default 1,
	// which was fastest for small models on 2 cores).
	IntraOpThreads int
	// MaxConcurrency bounds the Run calls executing at once per model
	// (default 1); further requests wait and count as queued in Busy.
	MaxConcurrency int
}

// Model is one ONNX model to serve.
type Model struct {
	Name    string
	Version string // may be empty
	Path    string // an .onnx file
}

// Runtime serves ONNX models; it implements modelserver.Runtime.
type Runtime struct {
	models []*model // in Config order

	mu     sync.Mutex // guards closed and wg.Add
	closed bool
	wg     sync.WaitGroup

	active, queued atomic.Int64
}

// model is one loaded model.
type model struct {
	name, version string
	session       *ort.DynamicAdvancedSession
	inputs        []tensorInfo
	outputs       []tensorInfo
	meta          oip.ModelMetadata
	sem           chan struct{} // MaxConcurrency slots
	slots         chan *runSlot // one per semaphore slot, to terminate a Run on timeout
}

// tensorInfo describes one input or output of a model.
type tensorInfo struct {
	name     string
	elem     ort.TensorElementDataType
	datatype string  // OIP datatype
	shape    []int64 // -1 for a dynamic dimension
}

// New loads ONNX Runtime (once per process) and creates a session per model.
func New(cfg Config) (*Runtime, error) {
	if len(cfg.Models) == 0 {
		return nil, errors.New("onnx: no models to serve")
	}
	if cfg.LibraryPath == "" {
		cfg.LibraryPath = DefaultLibraryPath()
	}
	cfg.IntraOpThreads = cmp.Or(cfg.IntraOpThreads, 1)
	cfg.MaxConcurrency = cmp.Or(cfg.MaxConcurrency, 1)
	if cfg.IntraOpThreads < 0 || cfg.MaxConcurrency < 0 {
		return nil, errors.New("onnx: IntraOpThreads and MaxConcurrency must not be negative")
	}
	if err := initEnvironment(cfg.LibraryPath); err != nil {
		return nil, err
	}
	r := &Runtime{}
	seen := map[[2]string]bool{}
	for _, mc := range cfg.Models {
		if mc.Name == "" {
			return nil, r.closeAfter(fmt.Errorf("onnx: model %s has no name", mc.Path))
		}
		key := [2]string{mc.Name, mc.Version}
		if seen[key] {
			return nil, r.closeAfter(fmt.Errorf("onnx: model %q version %q is listed twice", mc.Name, mc.Version))
		}
		seen[key] = true
		m, err := loadModel(mc, cfg)
		if err != nil {
			return nil, r.closeAfter(err)
		}
		r.models = append(r.models, m)
	}
	return r, nil
}

// closeAfter releases what New created so far and returns err.
func (r *Runtime) closeAfter(err error) error {
	for _, m := range r.models {
		m.destroy()
	}
	return err
}

func loadModel(mc Model, cfg Config) (*model, error) {
	fail := func(err error) (*model, error) {
		return nil, fmt.Errorf("onnx: loading model %q from %s: %w", mc.Name, mc.Path, err)
	}
	ins, outs, err := ort.GetInputOutputInfo(mc.Path)
	if err != nil {
		return fail(err)
	}
	m := &model{name: mc.Name, version: mc.Version}
	for _, in := range ins {
		ti, err := newTensorInfo(in)
		if err != nil {
			return fail(fmt.Errorf("input %q: %w", in.Name, err))
		}
		m.inputs = append(m.inputs, ti)
	}
	// Outputs that are not tensors (sequences, maps) are left out of the
	// session, so models with e.g. a ZipMap output still serve their tensors.
	// So are FP16 outputs of dynamic shape, which onnxruntime_go v1.27.0
	// cannot copy out of ORT (it copies one byte per element).
	var skipped []string
	for _, out := range outs {
		ti, err := newTensorInfo(out)
		switch {
		case err != nil:
			skipped = append(skipped, fmt.Sprintf("%q (%v)", out.Name, err))
			continue
		case ti.datatype == oip.FP16 && (slices.Contains(ti.shape, -1) || len(ti.shape) == 0):
			skipped = append(skipped, fmt.Sprintf("%q (FP16 of shape %s: onnxruntime_go cannot copy FP16 outputs of dynamic shape; give the output a fixed shape or cast it to FP32 in the model)", out.Name, oip.FormatShape(ti.shape)))
			continue
		}
		m.outputs = append(m.outputs, ti)
	}
	if len(m.outputs) == 0 {
		return fail(fmt.Errorf("the model has no output that can be served: %s", strings.Join(skipped, "; ")))
	}

	opts, err := ort.NewSessionOptions()
	if err != nil {
		return fail(err)
	}
	defer opts.Destroy()
	if err := opts.SetIntraOpNumThreads(cfg.IntraOpThreads); err != nil {
		return fail(err)
	}
	if err := opts.SetInterOpNumThreads(1); err != nil {
		return fail(err)
	}
	m.session, err = ort.NewDynamicAdvancedSession(mc.Path, names(m.inputs), names(m.outputs), opts)
	if err != nil {
		return fail(err)
	}
	m.sem = make(chan struct{}, cfg.MaxConcurrency)
	m.slots = make(chan *runSlot, cfg.MaxConcurrency)
	for range cfg.MaxConcurrency {
		slot, err := newRunSlot()
		if err != nil {
			m.destroy()
			return fail(err)
		}
		m.slots <- slot
	}
	m.meta = oip.ModelMetadata{Name: m.name, Platform: Platform, Inputs: metadata(m.inputs), Outputs: metadata(m.outputs)}
	if m.version != "" {
		m.meta.Versions = []string{m.version}
	}
	return m, nil
}

// destroy frees the session and run options; no Run may be in flight.
func (m *model) destroy() {
	if m.session != nil {
		m.session.Destroy()
		m.session = nil
	}
	for {
		select {
		case slot := <-m.slots:
			slot.opts.Destroy()
		default:
			return
		}
	}
}

// datatypes maps ONNX element types to OIP datatypes.
var datatypes = map[ort.TensorElementDataType]string{
	ort.TensorElementDataTypeBool:    oip.BOOL,
	ort.TensorElementDataTypeUint8:   oip.UINT8,
	ort.TensorElementDataTypeUint16:  oip.UINT16,
	ort.TensorElementDataTypeUint32:  oip.UINT32,
	ort.TensorElementDataTypeUint64:  oip.UINT64,
	ort.TensorElementDataTypeInt8:    oip.INT8,
	ort.TensorElementDataTypeInt16:   oip.INT16,
	ort.TensorElementDataTypeInt32:   oip.INT32,
	ort.TensorElementDataTypeInt64:   oip.INT64,
	ort.TensorElementDataTypeFloat16: oip.FP16,
	ort.TensorElementDataTypeFloat:   oip.FP32,
	ort.TensorElementDataTypeDouble:  oip.FP64,
	ort.TensorElementDataTypeString:  oip.BYTES,
}

func newTensorInfo(io ort.InputOutputInfo) (tensorInfo, error) {
	if io.OrtValueType != ort.ONNXTypeTensor {
		return tensorInfo{}, fmt.Errorf("%s values are not supported, only tensors", io.OrtValueType)
	}
	dt, ok := datatypes[io.DataType]
	if !ok {
		return tensorInfo{}, fmt.Errorf("element type %s is not supported", io.DataType)
	}
	shape := make([]int64, len(io.Dimensions))
	for i, d := range io.Dimensions {
		shape[i] = max(d, -1) // ORT reports symbolic dimensions as -1
	}
	return tensorInfo{name: io.Name, elem: io.DataType, datatype: dt, shape: shape}, nil
}

func names(ts []tensorInfo) []string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = t.name
	}
	return s
}

func metadata(ts []tensorInfo) []oip.TensorMetadata {
	md := make([]oip.TensorMetadata, len(ts))
	for i, t := range ts {
		md[i] = oip.TensorMetadata{Name: t.name, Datatype: t.datatype, Shape: slices.Clone(t.shape)}
	}
	return md
}

// Models lists the models served, in Config order.
func (r *Runtime) Models() []modelserver.ModelMetadata {
	md := make([]modelserver.ModelMetadata, len(r.models))
	for i, m := range r.models {
		md[i] = m.meta
	}
	return md
}

// Ready reports whether the runtime takes requests: true from New until Close.
func (r *Runtime) Ready() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.closed
}

// Busy returns the number of Run calls executing and the number of requests
// waiting for a free slot, over all models.
func (r *Runtime) Busy() (active, queued int) {
	return int(r.active.Load()), int(r.queued.Load())
}

// Close stops taking requests, waits for in-flight ones until ctx ends and
// then frees the sessions. If ctx ends first the sessions are left alone
// (in-flight calls still use them) and ctx's error is returned.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("onnx: closing with requests in flight: %w", ctx.Err())
	}
	for _, m := range r.models {
		m.destroy()
	}
	return nil
}

// enter registers an in-flight request; it fails once Close was called.
func (r *Runtime) enter() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return &modelserver.InferError{Status: 503, Message: "the ONNX runtime is shutting down"}
	}
	r.wg.Add(1)
	return nil
}

// lookup finds a model by name and version. An empty version picks the only
// version, or the highest numeric one. An empty name is allowed when a single
// model is served.
func (r *Runtime) lookup(name, version string) (*model, error) {
	var found *model
	for _, m := range r.models {
		if name != "" && m.name != name {
			continue
		}
		if name == "" && len(r.models) > 1 {
			break
		}
		if version != "" {
			if m.version == version {
				return m, nil
			}
			continue
		}
		if found == nil || versionLess(found.version, m.version) {
			found = m
		}
	}
	if found != nil {
		return found, nil
	}
	if name == "" {
		return nil, &modelserver.InferError{Status: 400, Message: "several models are served (" + r.modelList() + "); say which one: /score?model=<name>&version=<version>, or OIP v2's /v2/models/<name>[/versions/<version>]/infer"}
	}
	msg := fmt.Sprintf("model %q is not served", name)
	if version != "" {
		msg = fmt.Sprintf("model %q version %q is not served", name, version)
	}
	return nil, &modelserver.InferError{Status: 404, Message: msg + "; models: " + r.modelList()}
}

// versionLess orders versions numerically when both are integers.
func versionLess(a, b string) bool {
	ai, aerr := strconv.ParseInt(a, 10, 64)
	bi, berr := strconv.ParseInt(b, 10, 64)
	if aerr == nil && berr == nil {
		return ai < bi
	}
	return a < b
}

func (r *Runtime) modelList() string {
	s := ""
	for i, m := range r.models {
		if i > 0 {
			s += ", "
		}
		s += m.name
		if m.version != "" {
			s += " version " + m.version
		}
	}
	return s
}
