package modelserver

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/modelship/modelship/oip"
)

// ErrNotReady is returned by a runtime that cannot take requests yet; the
// server answers it with 503.
var ErrNotReady = errors.New("the service is starting and not ready yet")

// Deferred is a Runtime that arrives later. A replica serves it from the
// start so that liveness (GET /, /v2/health/live) answers while a slow
// init() runs; until Set is called it is not ready and requests get 503.
// After Set every call goes to the real runtime.
type Deferred struct {
	rt     atomic.Pointer[runtimeBox]
	mu     sync.Mutex // serializes Set and Close
	closed bool
}

// runtimeBox holds a Runtime for atomic.Pointer.
type runtimeBox struct{ Runtime }

var _ Runtime = (*Deferred)(nil)

// Set installs the real runtime. It reports false, leaving rt to the
// caller to close, when the Deferred was already closed.
func (d *Deferred) Set(rt Runtime) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return false
	}
	d.rt.Store(&runtimeBox{rt})
	return true
}

// get returns the real runtime, or nil before Set.
func (d *Deferred) get() Runtime {
	if b := d.rt.Load(); b != nil {
		return b.Runtime
	}
	return nil
}

// RawRequests implements RawRequests for the runtime once it is set.
func (d *Deferred) RawRequests() bool {
	rr, ok := d.get().(RawRequests)
	return ok && rr.RawRequests()
}

// Score implements Runtime.
func (d *Deferred) Score(ctx context.Context, req *ScoreRequest) (*ScoreResponse, error) {
	if rt := d.get(); rt != nil {
		return rt.Score(ctx, req)
	}
	return nil, ErrNotReady
}

// Swagger implements Runtime.
func (d *Deferred) Swagger(ctx context.Context, version string) ([]byte, error) {
	if rt := d.get(); rt != nil {
		return rt.Swagger(ctx, version)
	}
	return nil, ErrNotReady
}

// Models implements Runtime; it is empty before Set.
func (d *Deferred) Models() []ModelMetadata {
	if rt := d.get(); rt != nil {
		return rt.Models()
	}
	return nil
}

// Infer implements Runtime.
func (d *Deferred) Infer(ctx context.Context, model, version string, req *oip.InferRequest) (*oip.InferResponse, error) {
	if rt := d.get(); rt != nil {
		return rt.Infer(ctx, model, version, req)
	}
	return nil, ErrNotReady
}

// Ready implements Runtime; it is false before Set.
func (d *Deferred) Ready() bool {
	rt := d.get()
	return rt != nil && rt.Ready()
}

// Busy implements Runtime.
func (d *Deferred) Busy() (active, queued int) {
	if rt := d.get(); rt != nil {
		return rt.Busy()
	}
	return 0, 0
}

// Close closes the real runtime if it was set; a later Set is refused.
func (d *Deferred) Close(ctx context.Context) error {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	if rt := d.get(); rt != nil {
		return rt.Close(ctx)
	}
	return nil
}
