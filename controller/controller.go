// Package controller is the control plane's engine for deployments: it
// turns deploy/update/delete requests into desired state in the store,
// drives compute drivers toward it (asynchronous operations with logs),
// derives service states from what the drivers observe, manages keys and
// tokens, and publishes the route table the front end serves from.
package controller

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/auth"
	"github.com/modelship/modelship/compute"
)

// DriverFactory creates the driver of a compute target.
type DriverFactory func(ct *modelship.ComputeTarget, onChange func(id string)) (compute.Driver, error)

// Config wires the controller.
type Config struct {
	Store     modelship.Store
	Models    modelship.ModelService
	Artifacts modelship.ArtifactStore
	Sealer    *auth.Sealer
	Signer    *auth.TokenSigner
	// NewDriver creates drivers for compute targets.
	NewDriver DriverFactory
	// Attach validates a Kubernetes cluster for a new target (nil: the
	// server cannot attach clusters).
	Attach AttachFunc
	// DefaultImage is the image of kubernetes targets attached without one.
	DefaultImage string
	// Publish receives every new route table (the in-process front end's
	// Update). Called synchronously.
	Publish func(*modelship.RouteTable)
	// DataDir holds the extraction cache and per-deployment model layouts.
	DataDir string
	// GatewayURL is the front end's base URL, for scoring URIs.
	GatewayURL string
	// AdvertiseURL is the control-plane API URL replicas elsewhere use to
	// fetch their files (default: the API's listen URL).
	AdvertiseURL string
	// LocalCapacity is the capacity of the built-in local target.
	LocalCapacity compute.Capacity
	// UnschedulableTimeout: a deployment that stays unschedulable this long
	// fails (default 5 min, as Kubernetes/Azure).
	UnschedulableTimeout time.Duration
	// DeployTimeout bounds a deploy or update operation (default 20 min).
	DeployTimeout time.Duration
	// TokenTTL is the lifetime of access tokens (default 24 h: refresh
	// after 12 h, expiry after 24 h).
	TokenTTL time.Duration
	// VersionStats returns the front end's live statistics of a version of
	// a route (optional; used by `endpoint show --metrics`).
	VersionStats func(route, version string) (*modelship.VersionStats, bool)
	// ReplicaEnv returns what is added to every replica's environment
	// (e.g. the ONNX Runtime library and the Python the server found);
	// a service's own settings override it. Called when a spec is built.
	ReplicaEnv func() map[string]string
	// ScaleStatus describes the autoscaler's last decision for a version
	// of a route ("" when none); shown in `service show`.
	ScaleStatus func(route, version string) string
	// ScaleDownDelay overrides how long utilization must stay low before
	// the autoscaler removes a replica (default 60 s).
	ScaleDownDelay time.Duration
	Log            *slog.Logger
}

// Controller is the deployment engine.
type Controller struct {
	cfg   Config
	cache *cache
	log   *slog.Logger

	attachMu   sync.Mutex // serializes attachments (one cluster, one target)
	mu         sync.Mutex
	drivers    map[string]compute.Driver     // by "<ws>/<target>"
	starting   map[string]*driverStart       // drivers being started
	driverFail map[string]driverFailure      // recent failed starts
	keys       map[string][2]string          // plaintext keys by "<ws>/<name>", for hashing
	busy       map[string]string             // "<ws>/<name>" -> running operation id
	previous   map[string]*modelship.Service // record before a running update, for rollback
	observing  map[string]bool
	gen        int64
	pubMu      sync.Mutex
	stopped    chan struct{}
	wg         sync.WaitGroup
}

// New returns a controller; Start restores state.
func New(cfg Config) *Controller {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.UnschedulableTimeout <= 0 {
		cfg.UnschedulableTimeout = 5 * time.Minute
	}
	if cfg.DeployTimeout <= 0 {
		cfg.DeployTimeout = 20 * time.Minute
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = 24 * time.Hour
	}
	return &Controller{
		cfg:        cfg,
		cache:      &cache{root: filepath.Join(cfg.DataDir, "cache"), artifacts: cfg.Artifacts},
		log:        cfg.Log,
		drivers:    map[string]compute.Driver{},
		starting:   map[string]*driverStart{},
		driverFail: map[string]driverFailure{},
		keys:       map[string][2]string{},
		busy:       map[string]string{},
		previous:   map[string]*modelship.Service{},
		observing:  map[string]bool{},
		stopped:    make(chan struct{}),
	}
}

func key(ws, name string) string { return ws + "/" + name }

func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b[:4]) + "-" + hex.EncodeToString(b[4:6]) + "-" + hex.EncodeToString(b[6:8]) + "-" + hex.EncodeToString(b[8:10]) + "-" + hex.EncodeToString(b[10:])
}

// Start ensures every workspace has the local target, reloads keys, re-applies
// every service to its driver (replicas come back after a restart) and
// resumes unfinished operations.
func (c *Controller) Start(ctx context.Context) error {
	wss, err := c.cfg.Store.ListWorkspaces(ctx)
	if err != nil {
		return err
	}
	for _, ws := range wss {
		if err := c.EnsureLocalTarget(ctx, ws.Name); err != nil {
			return err
		}
	}
	svcs, err := c.cfg.Store.ListServices(ctx, "")
	if err != nil {
		return err
	}
	for _, svc := range svcs {
		if err := c.loadKeys(ctx, svc.Workspace, svc.Name); err != nil {
			c.log.Error("loading service keys", "service", svc.Name, "err", err)
		}
	}
	ops, err := c.cfg.Store.RunningOperations(ctx)
	if err != nil {
		return err
	}
	running := map[string]*modelship.Operation{}
	for _, op := range ops {
		running[key(op.Workspace, op.Target)] = op
	}
	for _, svc := range svcs {
		op := running[key(svc.Workspace, ownerName(svc))]
		if op != nil && svc.Endpoint != "" && op.Kind == modelship.OpDelete {
			// An endpoint delete resumes below, once per endpoint.
			op = nil
		}
		if op != nil && op.Kind == modelship.OpDelete {
			c.resumeDelete(svc, op)
			continue
		}
		if err := c.applyService(ctx, svc); err != nil {
			c.log.Error("restoring service", "service", svc.Name, "err", err)
		}
		c.store().PutService(ctx, svc)
		if op != nil {
			c.mu.Lock()
			c.busy[key(svc.Workspace, ownerName(svc))] = op.ID
			c.mu.Unlock()
			c.store().AppendOperationLog(ctx, op.ID, "The control plane restarted; resuming")
			c.startFollow(svc, op)
		}
		c.startObserver(svc.Workspace, svc.Name)
	}
	eps, err := c.cfg.Store.ListEndpoints(ctx, "")
	if err != nil {
		return err
	}
	for _, ep := range eps {
		if err := c.loadKeys(ctx, ep.Workspace, ep.Name); err != nil {
			c.log.Error("loading endpoint keys", "endpoint", ep.Name, "err", err)
		}
		if op := running[key(ep.Workspace, ep.Name)]; op != nil && op.Kind == modelship.OpDelete {
			c.resumeEndpointDelete(ep, op)
		}
	}
	for _, op := range ops {
		_, serr := c.cfg.Store.FindService(ctx, op.Workspace, op.Target)
		_, eerr := c.cfg.Store.FindEndpoint(ctx, op.Workspace, op.Target)
		if modelship.ErrorCode(serr) == modelship.ENOTFOUND && modelship.ErrorCode(eerr) == modelship.ENOTFOUND {
			c.cfg.Store.FinishOperation(ctx, op.ID, modelship.OpSucceeded, nil)
		}
	}
	c.publish(ctx)
	c.wg.Add(1)
	go c.renewFetchTokens()
	return nil
}

func (c *Controller) store() modelship.Store { return c.cfg.Store }

// Close stops background work and every driver (replicas stop).
func (c *Controller) Close(ctx context.Context) error {
	close(c.stopped)
	c.wg.Wait()
	c.mu.Lock()
	drivers := make([]compute.Driver, 0, len(c.drivers))
	for _, d := range c.drivers {
		drivers = append(drivers, d)
	}
	c.mu.Unlock()
	for _, d := range drivers {
		d.Close(ctx)
	}
	return nil
}

// driverFor returns (creating if needed) the driver of a target.
func (c *Controller) driverFor(ctx context.Context, ws, target string) (compute.Driver, *modelship.ComputeTarget, error) {
	ct, err := c.cfg.Store.FindComputeTarget(ctx, ws, target)
	if err != nil {
		return nil, nil, err
	}
	// The built-in local targets of all workspaces share this machine.
	dkey := key(ws, target)
	if ct.Type == modelship.TargetLocal && target == modelship.DefaultLocalTarget {
		dkey = "*/local"
	}
	c.mu.Lock()
	if d := c.drivers[dkey]; d != nil {
		c.mu.Unlock()
		return d, ct, nil
	}
	// A cluster that could not be reached a moment ago is not tried again
	// at once: listing targets must not wait on it every time.
	if f, ok := c.driverFail[dkey]; ok && time.Since(f.at) < driverRetryAfter {
		c.mu.Unlock()
		return nil, nil, f.err
	}
	// One start per target at a time, outside the lock (connecting to a
	// cluster can take seconds).
	st, starting := c.starting[dkey]
	if !starting {
		st = &driverStart{done: make(chan struct{})}
		c.starting[dkey] = st
	}
	c.mu.Unlock()
	if starting {
		select {
		case <-st.done:
			return st.d, ct, st.err
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
	d, err := c.cfg.NewDriver(ct, func(string) { c.publish(context.Background()) })
	if err != nil {
		err = clusterError("starting the driver of compute target "+target, err)
	}
	c.mu.Lock()
	delete(c.starting, dkey)
	if err == nil {
		c.drivers[dkey] = d
		delete(c.driverFail, dkey)
	} else {
		c.driverFail[dkey] = driverFailure{err: err, at: time.Now()}
	}
	c.mu.Unlock()
	st.d, st.err = d, err
	close(st.done)
	if err != nil {
		return nil, nil, err
	}
	return d, ct, nil
}

// driverRetryAfter is how long a failed driver start is remembered.
const driverRetryAfter = 10 * time.Second

type driverStart struct {
	done chan struct{}
	d    compute.Driver
	err  error
}

type driverFailure struct {
	err error
	at  time.Time
}

var _ modelship.DeploymentService = (*Controller)(nil)
