// Package local is the embedded compute driver: each replica is a
// `modelship serve-model` child process on a free loopback port. The driver
// places replicas within the target's capacity budget (CPU, memory, GPUs),
// probes readiness and liveness, restarts crashed replicas with exponential
// backoff, enforces memory limits, and rolls out new revisions one replica
// at a time (surge 1, nothing removed before its replacement is ready).
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/compute"
)

var _ compute.Driver = (*Driver)(nil)

// Config configures the driver.
type Config struct {
	// Binary is the modelship executable replicas run (default: this one).
	Binary string
	// Capacity is the target's budget.
	Capacity compute.Capacity
	// LogDir receives one log file per replica (optional).
	LogDir string
	Log    *slog.Logger
	// OnChange is called (without driver locks held) when the set of ready
	// replicas of a deployment changes; before a replica is stopped the
	// driver marks it not ready and calls OnChange first, so the front end
	// stops sending it traffic.
	OnChange func(id string)
	// DrainDelay is the pause between taking a replica out of the routes
	// and sending it SIGTERM (default 100 ms).
	DrainDelay time.Duration
	// StopGrace bounds a replica's drain after SIGTERM before SIGKILL
	// (default 30 s).
	StopGrace time.Duration
	// MaxBackoff caps the crash-restart backoff (default 30 s).
	MaxBackoff time.Duration
	// Tick is the reconcile period (default 100 ms).
	Tick time.Duration
	// CrashLoopRollback: a new revision whose replica crashes this many
	// times during a rollout is rolled back (default 3).
	CrashLoopRollback int
}

// Driver runs deployments as local processes.
type Driver struct {
	cfg    Config
	client *http.Client

	mu      sync.Mutex
	deps    map[string]*deployment
	used    compute.Capacity
	gpus    []bool // true = in use
	closing bool
}

type deployment struct {
	id       string
	spec     *compute.Spec // desired
	stable   *compute.Spec // last fully rolled-out spec, for rollback
	replicas []*replica
	nextIdx  int

	unschedulable string
	rolloutErr    string
	crashReason   string
	rolloutStart  time.Time

	stop chan struct{}
	done chan struct{}
}

type replica struct {
	id        string
	index     int
	spec      *compute.Spec
	cmd       *exec.Cmd
	url       string
	pid       int
	state     string
	ready     bool
	everReady bool
	restarts  int
	lastExit  string
	startedAt time.Time
	exited    chan struct{}
	exitErr   error
	stopping  bool
	nextStart time.Time // backoff: do not restart before
	gpus      []int
	log       *replicaLog

	oom         string // set when the memory watchdog killed the process
	probeFails  int
	livenessDue time.Time
}

// New returns a driver. It starts nothing until Apply.
func New(cfg Config) (*Driver, error) {
	if cfg.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("finding the modelship binary: %w", err)
		}
		cfg.Binary = exe
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.DrainDelay <= 0 {
		cfg.DrainDelay = 100 * time.Millisecond
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = 30 * time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 100 * time.Millisecond
	}
	if cfg.CrashLoopRollback <= 0 {
		cfg.CrashLoopRollback = 3
	}
	if cfg.LogDir != "" {
		if err := os.MkdirAll(cfg.LogDir, 0o700); err != nil {
			return nil, err
		}
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second}
	return &Driver{cfg: cfg, client: &http.Client{Transport: tr}, deps: map[string]*deployment{}, gpus: make([]bool, cfg.Capacity.GPUs)}, nil
}

// Apply implements compute.Driver.
func (d *Driver) Apply(ctx context.Context, spec *compute.Spec) error {
	if spec.ID == "" || spec.Replicas < 0 {
		return modelship.Errorf(modelship.EINVALID, "invalid deployment spec %q with %d replicas", spec.ID, spec.Replicas)
	}
	cp := *spec
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closing {
		return modelship.Errorf(modelship.EUNAVAILABLE, "the local driver is shutting down")
	}
	dep := d.deps[spec.ID]
	if dep == nil {
		dep = &deployment{id: spec.ID, spec: &cp, stop: make(chan struct{}), done: make(chan struct{})}
		d.deps[spec.ID] = dep
		go d.run(dep)
		return nil
	}
	if dep.spec.Revision != cp.Revision {
		dep.rolloutErr = ""
		dep.rolloutStart = time.Now()
		if dep.stable == nil && allOn(dep.replicas, dep.spec.Revision) {
			dep.stable = dep.spec
		}
	}
	dep.spec = &cp
	return nil
}

func allOn(rs []*replica, rev string) bool {
	for _, r := range rs {
		if r.spec.Revision != rev {
			return false
		}
	}
	return len(rs) > 0
}

// Scale implements compute.Driver.
func (d *Driver) Scale(ctx context.Context, id string, n int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	dep := d.deps[id]
	if dep == nil {
		return modelship.Errorf(modelship.ENOTFOUND, "deployment %q not found", id)
	}
	if n < 0 {
		return modelship.Errorf(modelship.EINVALID, "replica count %d is negative", n)
	}
	cp := *dep.spec
	cp.Replicas = n
	dep.spec = &cp
	if dep.stable != nil && dep.stable.Revision == cp.Revision {
		dep.stable = &cp
	}
	return nil
}

// Delete implements compute.Driver.
func (d *Driver) Delete(ctx context.Context, id string) error {
	d.mu.Lock()
	dep := d.deps[id]
	if dep == nil {
		d.mu.Unlock()
		return nil
	}
	select {
	case <-dep.stop:
	default:
		close(dep.stop)
	}
	d.mu.Unlock()
	select {
	case <-dep.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	d.mu.Lock()
	delete(d.deps, id)
	d.mu.Unlock()
	return nil
}

// Status implements compute.Driver.
func (d *Driver) Status(ctx context.Context, id string) (*compute.Status, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	dep := d.deps[id]
	if dep == nil {
		return nil, modelship.Errorf(modelship.ENOTFOUND, "deployment %q not found", id)
	}
	st := &compute.Status{ID: id, Unschedulable: dep.unschedulable, RolloutError: dep.rolloutErr, CrashReason: dep.crashReason}
	if allOn(dep.replicas, dep.spec.Revision) && len(dep.replicas) == dep.spec.Replicas {
		st.Revision = dep.spec.Revision
	} else {
		if dep.stable != nil {
			st.Revision = dep.stable.Revision
		}
		st.Desired = dep.spec.Revision
	}
	for _, r := range dep.replicas {
		st.Replicas = append(st.Replicas, compute.ReplicaStatus{
			ID: r.id, Revision: r.spec.Revision, URL: r.url, State: r.state, Ready: r.ready && !r.stopping,
			Restarts: r.restarts, LastExit: r.lastExit, StartedAt: r.startedAt, PID: r.pid,
		})
	}
	sort.Slice(st.Replicas, func(i, j int) bool { return st.Replicas[i].ID < st.Replicas[j].ID })
	return st, nil
}

// Logs implements compute.Driver.
func (d *Driver) Logs(ctx context.Context, id string, opts compute.LogOptions) ([]string, error) {
	d.mu.Lock()
	dep := d.deps[id]
	if dep == nil {
		d.mu.Unlock()
		return nil, modelship.Errorf(modelship.ENOTFOUND, "deployment %q not found", id)
	}
	reps := append([]*replica(nil), dep.replicas...)
	d.mu.Unlock()
	sort.Slice(reps, func(i, j int) bool { return reps[i].index < reps[j].index })
	var out []string
	for _, r := range reps {
		if opts.Replica >= 0 && r.index != opts.Replica {
			continue
		}
		var lines []string
		if opts.Init {
			lines = r.log.initTail(opts.Tail)
		} else {
			lines = r.log.all.tail(opts.Tail)
		}
		if opts.Replica < 0 && len(reps) > 1 {
			for i, l := range lines {
				lines[i] = "[" + r.id + "] " + l
			}
		}
		out = append(out, lines...)
	}
	if opts.Replica >= 0 && out == nil {
		return nil, modelship.Errorf(modelship.ENOTFOUND, "replica %d of %q not found; it has %d replicas", opts.Replica, id, len(reps))
	}
	return out, nil
}

// Capacity implements compute.Driver.
func (d *Driver) Capacity(ctx context.Context) (total, free compute.Capacity, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	total = d.cfg.Capacity
	free = compute.Capacity{CPU: total.CPU - d.used.CPU, MemoryGB: total.MemoryGB - d.used.MemoryGB, GPUs: total.GPUs - d.used.GPUs}
	return total, free, nil
}

// Close implements compute.Driver: every deployment is stopped.
func (d *Driver) Close(ctx context.Context) error {
	d.mu.Lock()
	d.closing = true
	ids := make([]string, 0, len(d.deps))
	for id := range d.deps {
		ids = append(ids, id)
	}
	d.mu.Unlock()
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() { defer wg.Done(); d.Delete(ctx, id) }()
	}
	wg.Wait()
	return nil
}

// run is a deployment's control loop.
func (d *Driver) run(dep *deployment) {
	defer close(dep.done)
	t := time.NewTicker(d.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-dep.stop:
			d.stopAll(dep)
			return
		case <-t.C:
		}
		d.reconcile(dep)
	}
}

func (d *Driver) notify(id string) {
	if d.cfg.OnChange != nil {
		d.cfg.OnChange(id)
	}
}

// reconcile runs one pass: observe exits, probe, then converge.
func (d *Driver) reconcile(dep *deployment) {
	d.observe(dep)
	changed := d.probe(dep)
	if changed {
		d.notify(dep.id)
	}
	d.converge(dep)
}

// observe handles exited processes: restart with backoff.
func (d *Driver) observe(dep *deployment) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	for _, r := range dep.replicas {
		if r.cmd == nil || r.stopping {
			continue
		}
		select {
		case <-r.exited:
		default:
			continue
		}
		wasReady := r.ready
		r.lastExit = describeExit(r.exitErr)
		if r.oom != "" {
			r.lastExit, r.oom = r.oom, ""
			dep.crashReason = r.lastExit
		}
		if !strings.HasPrefix(r.lastExit, "OOMKilled") {
			if tail := r.log.all.tail(20); len(tail) > 0 {
				dep.crashReason = strings.Join(tail, "\n")
			}
		}
		r.cmd, r.ready, r.pid = nil, false, 0
		r.restarts++
		r.state = compute.ReplicaCrashLoop
		// The first restart is immediate; then 1 s, 2 s, 4 s ... up to
		// MaxBackoff, as a crash loop backs off.
		backoff := time.Duration(0)
		if r.restarts > 1 {
			backoff = time.Duration(math.Min(float64(d.cfg.MaxBackoff), float64(time.Second)*math.Pow(2, float64(r.restarts-2))))
		}
		r.nextStart = now.Add(backoff)
		d.cfg.Log.Warn("replica exited", "deployment", dep.id, "replica", r.id, "exit", r.lastExit, "restarts", r.restarts, "restart_in", backoff)
		if wasReady {
			go d.notify(dep.id)
		}
	}
}

func describeExit(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "killed by signal " + ws.Signal().String()
		}
		return "exit code " + strconv.Itoa(ee.ExitCode())
	}
	if err != nil {
		return err.Error()
	}
	return "exit code 0"
}

// probe checks readiness of starting replicas and liveness of running ones.
// It reports whether any replica's readiness changed.
func (d *Driver) probe(dep *deployment) bool {
	type target struct {
		r        *replica
		url      string
		liveness bool
		timeout  time.Duration
	}
	now := time.Now()
	var targets []target
	d.mu.Lock()
	for _, r := range dep.replicas {
		if r.cmd == nil || r.stopping {
			continue
		}
		if !r.ready {
			targets = append(targets, target{r: r, url: r.url + "/v2/health/ready", timeout: time.Second})
			continue
		}
		if now.After(r.livenessDue) {
			p := r.spec.Liveness
			r.livenessDue = now.Add(max(p.Period, time.Second))
			targets = append(targets, target{r: r, url: r.url + "/", liveness: true, timeout: max(p.Timeout, time.Second)})
		}
	}
	d.mu.Unlock()
	results := make([]bool, len(targets))
	var wg sync.WaitGroup
	for i, tg := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), tg.timeout)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", tg.url, nil)
			resp, err := d.client.Do(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				results[i] = resp.StatusCode == 200
			}
		}()
	}
	wg.Wait()
	changed := false
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, tg := range targets {
		r := tg.r
		if r.cmd == nil || r.stopping {
			continue
		}
		ok := results[i]
		if !tg.liveness {
			if ok {
				r.ready, r.everReady, r.state, r.probeFails = true, true, compute.ReplicaRunning, 0
				r.log.markReady()
				r.livenessDue = now.Add(max(r.spec.Liveness.Period, time.Second))
				dep.crashReason = ""
				changed = true
				d.cfg.Log.Info("replica ready", "deployment", dep.id, "replica", r.id, "url", r.url, "startup", time.Since(r.startedAt).Round(time.Millisecond))
			}
			continue
		}
		if ok {
			r.probeFails = 0
			continue
		}
		r.probeFails++
		if r.probeFails >= max(r.spec.Liveness.FailureThreshold, 1) {
			d.cfg.Log.Warn("liveness probe failed; restarting replica", "deployment", dep.id, "replica", r.id, "failures", r.probeFails)
			r.ready = false
			r.probeFails = 0
			changed = true
			killGroup(r.cmd)
		}
	}
	return changed
}

// converge starts, replaces and stops replicas toward the desired spec.
func (d *Driver) converge(dep *deployment) {
	d.mu.Lock()
	spec := dep.spec
	now := time.Now()

	// Restart crashed replicas whose backoff has passed.
	for _, r := range dep.replicas {
		if r.cmd == nil && !r.stopping && now.After(r.nextStart) {
			if err := d.startProcess(dep, r); err != nil {
				d.cfg.Log.Error("starting replica", "replica", r.id, "err", err)
				r.nextStart = now.Add(time.Second)
			}
		}
	}

	var current, old []*replica
	for _, r := range dep.replicas {
		if r.stopping {
			continue
		}
		if r.spec.Revision == spec.Revision {
			current = append(current, r)
		} else {
			old = append(old, r)
		}
	}

	// A rollout that cannot succeed is rolled back to the stable spec.
	if len(old) > 0 && dep.stable != nil && dep.stable.Revision != spec.Revision {
		reason := ""
		for _, r := range current {
			if !r.everReady && r.restarts >= d.cfg.CrashLoopRollback {
				reason = fmt.Sprintf("new replica %s crashed %d times before becoming ready (%s)", r.id, r.restarts, r.lastExit)
			}
		}
		if reason == "" && spec.StartTimeout > 0 && !dep.rolloutStart.IsZero() && now.Sub(dep.rolloutStart) > spec.StartTimeout {
			ready := false
			for _, r := range current {
				ready = ready || r.ready
			}
			if !ready {
				reason = fmt.Sprintf("new replicas were not ready within %s", spec.StartTimeout)
			}
		}
		if reason != "" {
			d.cfg.Log.Warn("rollout failed; rolling back", "deployment", dep.id, "reason", reason)
			dep.rolloutErr = reason
			if tail := crashTail(current); tail != "" {
				dep.rolloutErr += "\n" + tail
			}
			rolledBack := *dep.stable
			rolledBack.Replicas = spec.Replicas
			dep.spec = &rolledBack
			dep.rolloutStart = time.Time{}
			var toStop []*replica
			for _, r := range current {
				r.stopping = true
				toStop = append(toStop, r)
			}
			d.mu.Unlock()
			for _, r := range toStop {
				d.stopReplica(dep, r)
			}
			return
		}
	}

	var toStop []*replica
	switch {
	case len(old) > 0:
		// Rolling update: surge one new replica, remove an old one only
		// when a new one is ready.
		starting := 0
		readyNew := 0
		for _, r := range current {
			if !r.ready {
				starting++
			} else {
				readyNew++
			}
		}
		if starting == 0 && len(current) < spec.Replicas {
			d.addReplica(dep, spec)
		}
		// Keep only as many old replicas as the new ones cannot yet
		// cover; crashed (not ready) old replicas go first.
		keep := max(spec.Replicas-readyNew, 0)
		sort.SliceStable(old, func(i, j int) bool { return !old[i].ready && old[j].ready })
		for _, r := range old[:max(len(old)-keep, 0)] {
			r.stopping = true
			toStop = append(toStop, r)
		}
	case len(current) < spec.Replicas:
		for i := len(current); i < spec.Replicas; i++ {
			if !d.addReplica(dep, spec) {
				break
			}
		}
	case len(current) > spec.Replicas:
		// Scale down: not-ready replicas first, then the newest.
		sort.SliceStable(current, func(i, j int) bool {
			if current[i].ready != current[j].ready {
				return !current[i].ready
			}
			return current[i].index > current[j].index
		})
		for _, r := range current[:len(current)-spec.Replicas] {
			r.stopping = true
			toStop = append(toStop, r)
		}
	}
	if len(old) == 0 && len(current) == spec.Replicas && allReady(current) {
		dep.stable = spec
		dep.rolloutStart = time.Time{}
	}
	d.mu.Unlock()
	for _, r := range toStop {
		go d.stopReplica(dep, r)
	}
}

func allReady(rs []*replica) bool {
	for _, r := range rs {
		if !r.ready {
			return false
		}
	}
	return true
}

func crashTail(rs []*replica) string {
	for _, r := range rs {
		if lines := r.log.all.tail(15); len(lines) > 0 && !r.everReady {
			return strings.Join(lines, "\n")
		}
	}
	return ""
}

// addReplica places and starts a new replica; false when it does not fit.
// Called with d.mu held.
func (d *Driver) addReplica(dep *deployment, spec *compute.Spec) bool {
	free := compute.Capacity{CPU: d.cfg.Capacity.CPU - d.used.CPU, MemoryGB: d.cfg.Capacity.MemoryGB - d.used.MemoryGB, GPUs: d.cfg.Capacity.GPUs - d.used.GPUs}
	var short []string
	if spec.CPU > free.CPU+1e-9 {
		short = append(short, fmt.Sprintf("Insufficient cpu (requested %g, free %g of %g)", spec.CPU, round2(free.CPU), d.cfg.Capacity.CPU))
	}
	if spec.MemoryGB > free.MemoryGB+1e-9 {
		short = append(short, fmt.Sprintf("Insufficient memory (requested %g GB, free %g of %g GB)", spec.MemoryGB, round2(free.MemoryGB), d.cfg.Capacity.MemoryGB))
	}
	if spec.GPUs > free.GPUs {
		short = append(short, fmt.Sprintf("Insufficient gpu (requested %d, free %d of %d)", spec.GPUs, free.GPUs, d.cfg.Capacity.GPUs))
	}
	if len(short) > 0 {
		reason := "0/1 nodes are available: " + strings.Join(short, ", ")
		if dep.unschedulable != reason {
			d.cfg.Log.Warn("replica unschedulable", "deployment", dep.id, "reason", reason)
		}
		dep.unschedulable = reason
		return false
	}
	dep.unschedulable = ""
	r := &replica{index: dep.nextIdx, spec: spec, state: compute.ReplicaStarting}
	dep.nextIdx++
	r.id = fmt.Sprintf("%s-%d", lastSegment(dep.id), r.index)
	d.used.CPU += spec.CPU
	d.used.MemoryGB += spec.MemoryGB
	d.used.GPUs += spec.GPUs
	for i := 0; i < len(d.gpus) && len(r.gpus) < spec.GPUs; i++ {
		if !d.gpus[i] {
			d.gpus[i] = true
			r.gpus = append(r.gpus, i)
		}
	}
	logPath := ""
	if d.cfg.LogDir != "" {
		dir := filepath.Join(d.cfg.LogDir, strings.ReplaceAll(dep.id, "/", "_"))
		os.MkdirAll(dir, 0o700)
		logPath = filepath.Join(dir, r.id+".log")
	}
	r.log = newReplicaLog(logPath)
	dep.replicas = append(dep.replicas, r)
	if err := d.startProcess(dep, r); err != nil {
		d.cfg.Log.Error("starting replica", "replica", r.id, "err", err)
		r.nextStart = time.Now().Add(time.Second)
	}
	return true
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }

func lastSegment(id string) string {
	parts := strings.Split(id, "/")
	return strings.Join(parts[1:], "-")
}

// startProcess launches the replica's process on a free port. d.mu held.
func (d *Driver) startProcess(dep *deployment, r *replica) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	cmd := exec.Command(d.cfg.Binary, "serve-model")
	env := os.Environ()
	for k, v := range r.spec.Env {
		env = append(env, k+"="+v)
	}
	for k, v := range r.spec.SecretEnv {
		env = append(env, k+"="+v)
	}
	env = append(env, "MODELSHIP_HOST=127.0.0.1", "MODELSHIP_PORT="+strconv.Itoa(port), "MODELSHIP_REPLICA_ID="+r.id)
	if len(r.gpus) > 0 {
		ids := make([]string, len(r.gpus))
		for i, g := range r.gpus {
			ids[i] = strconv.Itoa(g)
		}
		env = append(env, "CUDA_VISIBLE_DEVICES="+strings.Join(ids, ","))
	} else {
		env = append(env, "CUDA_VISIBLE_DEVICES=")
	}
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return fmt.Errorf("starting %s serve-model: %w", d.cfg.Binary, err)
	}
	pw.Close()
	if r.restarts > 0 {
		r.log.restartInit()
		r.log.line(fmt.Sprintf("--- restart %d (previous: %s) ---", r.restarts, r.lastExit))
	}
	consumed := make(chan struct{})
	go func() {
		r.log.consume(pr)
		close(consumed)
	}()
	r.cmd, r.pid = cmd, cmd.Process.Pid
	r.url = "http://127.0.0.1:" + strconv.Itoa(port)
	r.startedAt = time.Now()
	r.ready = false
	if r.state != compute.ReplicaCrashLoop {
		r.state = compute.ReplicaStarting
	}
	exited := make(chan struct{})
	r.exited = exited
	go func() {
		err := cmd.Wait()
		// Read what the replica wrote last (a crash's traceback) before
		// reporting the exit; a leftover child holding the pipe open gets
		// a second.
		select {
		case <-consumed:
		case <-time.After(time.Second):
		}
		pr.Close()
		d.mu.Lock()
		if r.cmd == cmd {
			r.exitErr = err
		}
		d.mu.Unlock()
		close(exited)
	}()
	if limit := r.spec.MemoryLimitGB; limit > 0 {
		go d.watchMemory(dep, r, cmd, exited, int64(limit*(1<<30)))
	}
	return nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// stopReplica takes a replica out of the routes, drains it and releases its
// capacity.
func (d *Driver) stopReplica(dep *deployment, r *replica) {
	d.mu.Lock()
	r.stopping = true
	r.state = compute.ReplicaTerminating
	wasReady := r.ready
	r.ready = false
	cmd, exited := r.cmd, r.exited
	d.mu.Unlock()
	if wasReady {
		d.notify(dep.id)
		time.Sleep(d.cfg.DrainDelay)
	}
	if cmd != nil {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(d.cfg.StopGrace):
			killGroup(cmd)
			<-exited
		}
		// Reap anything left in the replica's process group.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	d.mu.Lock()
	for i, x := range dep.replicas {
		if x == r {
			dep.replicas = append(dep.replicas[:i], dep.replicas[i+1:]...)
			break
		}
	}
	d.used.CPU -= r.spec.CPU
	d.used.MemoryGB -= r.spec.MemoryGB
	d.used.GPUs -= r.spec.GPUs
	for _, g := range r.gpus {
		d.gpus[g] = false
	}
	r.log.close()
	d.mu.Unlock()
	d.cfg.Log.Info("replica stopped", "deployment", dep.id, "replica", r.id)
}

func (d *Driver) stopAll(dep *deployment) {
	d.mu.Lock()
	reps := append([]*replica(nil), dep.replicas...)
	for _, r := range reps {
		r.stopping = true
	}
	d.mu.Unlock()
	var wg sync.WaitGroup
	for _, r := range reps {
		wg.Add(1)
		go func() { defer wg.Done(); d.stopReplica(dep, r) }()
	}
	wg.Wait()
}

func killGroup(cmd *exec.Cmd) {
	if cmd != nil && cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

// watchMemory kills the replica's process group when its resident memory
// goes over the limit (the local equivalent of an OOM kill).
func (d *Driver) watchMemory(dep *deployment, r *replica, cmd *exec.Cmd, exited chan struct{}, limit int64) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-exited:
			return
		case <-t.C:
		}
		used := treeRSS(cmd.Process.Pid)
		if used > limit {
			d.mu.Lock()
			if r.cmd == cmd {
				r.oom = fmt.Sprintf("OOMKilled: resident memory %d MiB over the limit of %d MiB (memoryInGBLimit)", used>>20, limit>>20)
			}
			d.mu.Unlock()
			// Killing serve-model kills its workers too (they die with
			// their parent).
			killGroup(cmd)
			return
		}
	}
}

// treeRSS sums the resident memory of a process and all its descendants
// (Python workers may run in their own process groups).
func treeRSS(root int) int64 {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	page := int64(os.Getpagesize())
	parent := map[int]int{}
	rss := map[int]int64{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command (which may contain spaces) start after ')'.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 22 {
			continue
		}
		parent[pid], _ = strconv.Atoi(f[1])
		pages, _ := strconv.ParseInt(f[21], 10, 64)
		rss[pid] = pages * page
	}
	var total int64
	for pid, r := range rss {
		for p, hops := pid, 0; p > 1 && hops < 64; p, hops = parent[p], hops+1 {
			if p == root {
				total += r
				break
			}
		}
	}
	return total
}
