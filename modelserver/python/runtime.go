package python

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelship/modelship/modelserver"
	"github.com/modelship/modelship/oip"
)

// ErrClosed is returned by Score after Close was called.
var ErrClosed = errors.New("python runtime is closed")

// errInterrupted is a worker's answer that run() was interrupted at the
// scoring deadline.
var errInterrupted = errors.New("run() interrupted at the scoring timeout")

// interruptGrace is how long a run() interrupted at the deadline has to
// come back before its worker is killed.
const interruptGrace = 2 * time.Second

// Runtime serves a score.py with a pool of Python workers. It implements
// modelserver.Runtime.
type Runtime struct {
	cfg   *resolved
	log   *slog.Logger
	shims string
	env   []string
	info  readyInfo

	free    chan *worker  // idle workers
	closing chan struct{} // closed by Close
	base    context.Context
	cancel  context.CancelFunc

	mu      sync.Mutex
	closed  bool
	workers map[*worker]struct{} // live workers (idle or busy)
	wg      sync.WaitGroup       // replacement goroutines

	active, queued atomic.Int64
	outMu          sync.Mutex
	timeout        time.Duration
	swagger        map[string][]byte
	models         []modelserver.ModelMetadata
}

var _ modelserver.Runtime = (*Runtime)(nil)

// New starts cfg.Workers workers and returns when every one of them has run
// init() successfully. A failing score.py yields a *StartupError (message,
// traceback, model dir listing) that the caller should print before exiting
// non-zero; other errors are configuration or system errors. ctx bounds
// the startup: an init() still running when it ends is killed.
func New(ctx context.Context, cfg Config) (*Runtime, error) {
	shims, err := shimDir()
	if err != nil {
		return nil, err
	}
	rc, err := resolve(cfg, shims)
	if err != nil {
		return nil, err
	}
	base, cancel := context.WithCancel(context.Background())
	r := &Runtime{
		cfg:     rc,
		log:     rc.Logger.With("runtime", "python"),
		shims:   shims,
		env:     rc.environ(shims),
		free:    make(chan *worker, rc.Workers),
		closing: make(chan struct{}),
		base:    base,
		cancel:  cancel,
		workers: make(map[*worker]struct{}),
		timeout: 3600 * time.Second,
	}
	if ms, err := strconv.ParseFloat(rc.timeoutMS, 64); err == nil && ms > 0 {
		r.timeout = time.Duration(ms * float64(time.Millisecond))
	}
	type result struct {
		w   *worker
		err error
	}
	results := make(chan result, rc.Workers)
	for range rc.Workers {
		go func() {
			w, err := r.startWorker(ctx)
			results <- result{w, err}
		}()
	}
	var started []*worker
	var firstErr error
	for range rc.Workers {
		res := <-results
		if res.err != nil {
			var se *StartupError
			if firstErr == nil || (errors.As(res.err, &se) && !errors.As(firstErr, &se)) {
				firstErr = res.err
			}
			continue
		}
		started = append(started, res.w)
	}
	if firstErr != nil {
		for _, w := range started {
			w.kill()
			w.release()
		}
		cancel()
		return nil, firstErr
	}
	r.info = started[0].info
	for _, w := range started {
		r.workers[w] = struct{}{}
		r.free <- w
	}
	r.swagger = r.buildSwagger()
	r.models = discoverModels(rc.modelDir)
	r.log.Info("python runtime ready", "workers", rc.Workers, "entry_script", rc.script,
		"python", rc.python, "input_mode", r.info.mode)
	return r, nil
}

// ScoringTimeout is SCORING_TIMEOUT_MS (default 3,600,000 ms); Score applies
// it when the request context has no deadline.
func (r *Runtime) ScoringTimeout() time.Duration { return r.timeout }

// Score runs the user's run() on a free worker.
func (r *Runtime) Score(ctx context.Context, req *modelserver.ScoreRequest) (*modelserver.ScoreResponse, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.timeout)
		defer cancel()
	}
	r.queued.Add(1)
	var w *worker
	select {
	case w = <-r.free:
	case <-ctx.Done():
		r.queued.Add(-1)
		return nil, ctxError(ctx)
	case <-r.closing:
		r.queued.Add(-1)
		return nil, ErrClosed
	}
	r.queued.Add(-1)
	select {
	case <-r.closing:
		r.free <- w
		return nil, ErrClosed
	default:
	}
	if ctx.Err() != nil {
		r.free <- w
		return nil, ctxError(ctx)
	}
	r.active.Add(1)
	defer r.active.Add(-1)

	// Only the deadline stops run(): a caller that goes away (cancel) lets
	// run() finish, so a client disconnect never costs an init(). At the
	// deadline run() is interrupted in its worker (the worker answers a
	// timeout and stays); a run() that does not come back within
	// interruptGrace (stuck in C code) gets its worker killed and replaced.
	deadline, _ := ctx.Deadline()
	sent := make(chan struct{})
	interrupt := time.AfterFunc(time.Until(deadline), func() { w.interrupt(); close(sent) })
	timer := time.AfterFunc(time.Until(deadline)+interruptGrace, w.kill)
	resp, err := w.call(req)
	if !interrupt.Stop() {
		// The signal goes out before the worker's next request does, so it
		// lands between requests (ignored there), never in the next run().
		<-sent
	}
	killed := !timer.Stop()
	if errors.Is(err, errInterrupted) && !killed {
		r.free <- w
		return nil, modelserver.ErrScoringTimeout
	}
	if killed || err != nil {
		// The deadline passed (the worker was killed) or the worker died.
		r.replace(w)
		switch {
		case err == nil: // answered just as the deadline passed
			return resp, nil
		case killed:
			return nil, modelserver.ErrScoringTimeout
		}
		r.log.Error("python worker died while scoring", "request_id", req.RequestID, "error", err)
		return nil, err
	}
	r.free <- w
	return resp, nil
}

func ctxError(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return modelserver.ErrScoringTimeout
	}
	return fmt.Errorf("scoring: %w", ctx.Err())
}

// replace discards a dead or killed worker and starts another in the
// background (it runs init() again). Failed starts are retried with backoff
// until Close.
func (r *Runtime) replace(old *worker) {
	old.kill()
	r.mu.Lock()
	delete(r.workers, old)
	if r.closed {
		r.mu.Unlock()
		old.release()
		return
	}
	r.wg.Add(1)
	r.mu.Unlock()
	go func() {
		defer r.wg.Done()
		old.release()
		backoff := 500 * time.Millisecond
		for {
			w, err := r.startWorker(r.base)
			if err == nil {
				r.mu.Lock()
				if r.closed {
					r.mu.Unlock()
					w.stop(0)
					return
				}
				r.workers[w] = struct{}{}
				r.mu.Unlock()
				r.log.Info("python worker replaced", "old_pid", old.pid, "pid", w.pid)
				r.free <- w
				return
			}
			r.log.Error("python worker restart failed", "error", err, "retry_in", backoff)
			select {
			case <-r.base.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 30*time.Second)
		}
	}()
}

// Swagger returns the swagger 2.0 ("2") or OpenAPI 3 ("3", "3.1") document.
func (r *Runtime) Swagger(ctx context.Context, version string) ([]byte, error) {
	doc, ok := r.swagger[normalizeSwaggerVersion(version)]
	if !ok {
		return nil, modelserver.ErrNoSwagger
	}
	return doc, nil
}

// Models lists the models found in the model directory (Azure layout).
func (r *Runtime) Models() []modelserver.ModelMetadata { return r.models }

// Infer is not available for score.py models: their inputs are whatever
// run() accepts, so they are served on /score only.
func (r *Runtime) Infer(ctx context.Context, model, version string, req *oip.InferRequest) (*oip.InferResponse, error) {
	return nil, &modelserver.InferError{Status: 400, Message: fmt.Sprintf(
		"model %q is served by a score.py entry script; Open Inference Protocol inference is not supported for it, POST to /score instead", model)}
}

// Ready reports whether at least one worker is alive and Close was not called.
func (r *Runtime) Ready() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.closed && len(r.workers) > 0
}

// RawRequests reports whether run() takes the raw request (@rawhttp).
func (r *Runtime) RawRequests() bool { return r.info.mode == "raw" }

// Busy returns the requests running in workers and those waiting for one.
func (r *Runtime) Busy() (active, queued int) {
	return int(r.active.Load()), int(r.queued.Load())
}

// Close stops taking requests, waits for in-flight ones until ctx ends,
// then stops every worker (killing those still busy).
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.closing)
	r.mu.Unlock()

	// In-flight requests are done when every live worker is idle again.
	var err error
	tick := time.NewTicker(5 * time.Millisecond)
	for !r.allIdle() {
		select {
		case <-ctx.Done():
			err = fmt.Errorf("python runtime close: %w", ctx.Err())
		case <-tick.C:
			continue
		}
		break
	}
	tick.Stop()
	r.cancel()
	r.mu.Lock()
	all := make([]*worker, 0, len(r.workers))
	for w := range r.workers {
		all = append(all, w)
	}
	r.workers = map[*worker]struct{}{}
	r.mu.Unlock()
	grace := 2 * time.Second
	if err != nil {
		grace = 0
	}
	var wg sync.WaitGroup
	for _, w := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.stop(grace)
		}()
	}
	wg.Wait()
	r.wg.Wait()
	return err
}

// allIdle reports whether every live worker is back in the idle pool.
func (r *Runtime) allIdle() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.free) >= len(r.workers)
}

// writeOutput writes one line of worker output to Config.Stdout.
func (r *Runtime) writeOutput(line []byte) {
	r.outMu.Lock()
	_, _ = r.cfg.Stdout.Write(line)
	r.outMu.Unlock()
}

// pids returns the live worker process ids (for tests).
func (r *Runtime) pids() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int
	for w := range r.workers {
		out = append(out, w.pid)
	}
	sort.Ints(out)
	return out
}

// discoverModels reads the Azure layout: <root> holding <name>/<version>
// dirs for several models, else <root>/<name>/<version> for one model.
func discoverModels(dir string) []modelserver.ModelMetadata {
	if dir == "" {
		return nil
	}
	meta := func(name string, versions []string) modelserver.ModelMetadata {
		return modelserver.ModelMetadata{Name: name, Versions: versions, Platform: "python_score_py",
			Inputs: []oip.TensorMetadata{}, Outputs: []oip.TensorMetadata{}}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []modelserver.ModelMetadata
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		vs, _ := os.ReadDir(filepath.Join(dir, e.Name()))
		var versions []string
		for _, v := range vs {
			if v.IsDir() && isDigits(v.Name()) {
				versions = append(versions, v.Name())
			}
		}
		if len(versions) > 0 {
			sort.Slice(versions, func(i, j int) bool {
				a, _ := strconv.Atoi(versions[i])
				b, _ := strconv.Atoi(versions[j])
				return a < b
			})
			out = append(out, meta(e.Name(), versions))
		}
	}
	if v := filepath.Base(dir); len(out) == 0 && isDigits(v) {
		return []modelserver.ModelMetadata{meta(filepath.Base(filepath.Dir(dir)), []string{v})}
	}
	return out
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
