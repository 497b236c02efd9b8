// Package gateway is modelship's front end, the data plane: the equivalent
// of Azure ML's azureml-fe. It authenticates scoring requests (service keys
// by hash, Ed25519 access tokens by public key), splits an endpoint's
// traffic between its versions, mirrors a share of it, queues requests
// while every replica is at its concurrency limit, balances over ready
// replicas by least outstanding requests, proxies to them, keeps live
// per-version statistics and autoscales versions on busy-replica
// utilization.
//
// The gateway reads nothing but the route table the control plane
// publishes (Update), so it keeps serving while the control plane is down.
package gateway

import (
	"context"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"go.opentelemetry.io/otel/trace"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/telemetry"
	"github.com/modelship/modelship/tracing"
)

// Defaults for zero fields of Config and of a route table.
const (
	DefaultMaxBodyBytes        = 100 << 20
	DefaultReplayableBodyBytes = 1 << 20
	DefaultMirrorQueue         = 256
	DefaultMirrorWorkers       = 4
	DefaultAutoscaleInterval   = 100 * time.Millisecond
	DefaultScalerTimeout       = 5 * time.Second
	DefaultSuspectTime         = 2 * time.Second

	// Azure's defaults (spec §1.1) for versions that leave them unset.
	DefaultMaxConcurrentRequests = 1
	DefaultMaxQueueWait          = 500 * time.Millisecond
	DefaultScoringTimeout        = 60 * time.Second
)

// DeploymentHeader pins a request to one version of an endpoint, and names
// the version that answered in the response (as Azure's v2 endpoints).
const DeploymentHeader = "azureml-model-deployment"

// Scaler changes the replica count of a version; the control plane
// implements it. It must be idempotent: the autoscaler may ask for the
// same count more than once.
type Scaler interface {
	SetReplicas(ctx context.Context, workspace, route, version string, n int) error
}

// Config configures a Gateway. Every field is optional.
type Config struct {
	// Registry receives the gateway's Prometheus metrics; nil means a
	// private registry (still served by MetricsHandler).
	Registry *prometheus.Registry
	// Scaler applies autoscaling decisions; nil means decisions are
	// computed, logged and visible in ScaleStatus but not applied.
	Scaler Scaler
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Rand returns uniform numbers in [0, 1) for the traffic split and
	// the mirror draws. It must be safe for concurrent use; the default
	// is math/rand/v2's lock-free global source.
	Rand func() float64
	// Now is the clock of token checks and the autoscaler; defaults to
	// time.Now.
	Now func() time.Time
	// Transport forwards requests to replicas; nil means NewTransport().
	Transport http.RoundTripper
	// MaxBodyBytes limits request bodies (413 beyond); default 100 MB.
	MaxBodyBytes int64
	// ReplayableBodyBytes: request bodies with a Content-Length up to this
	// size are read into memory before dispatch, so they can be retried
	// on another replica after a connection failure and mirrored.
	// Larger or chunked bodies are streamed. Default 1 MiB.
	ReplayableBodyBytes int64
	// MirrorQueue bounds the copies waiting to be sent to mirror versions;
	// copies beyond it are dropped and counted. Default 256.
	MirrorQueue int
	// MirrorWorkers is the number of goroutines sending mirror copies.
	// Default 4.
	MirrorWorkers int
	// AutoscaleInterval is how often the autoscaler samples busy replicas;
	// decisions are made every RefreshPeriod of each version. Default
	// 100 ms; negative disables the autoscaler loop.
	AutoscaleInterval time.Duration
	// ScalerTimeout bounds one Scaler call. Default 5 s.
	ScalerTimeout time.Duration
	// SuspectTime is how long a replica that refused a connection is
	// avoided (unless every replica is suspect). Default 2 s.
	SuspectTime time.Duration
	// TracerProvider makes the span "gateway <route>" of each request
	// (a child of the caller's traceparent) and the traceparent sent to
	// the replica. Nil means tracing.Provider(), which is nil when no OTLP
	// exporter is configured: then no span is made and the caller's
	// traceparent passes through unchanged.
	TracerProvider trace.TracerProvider
	// TelemetryDir is <data-dir>/telemetry: routes with AppInsights write
	// one JSON line per scoring request under
	// <TelemetryDir>/<workspace>/<route>/gateway-YYYYMMDD-HH.jsonl.
	// Empty means no records.
	TelemetryDir string
}

// Gateway is the front end. It is an http.Handler; create it with New,
// publish route tables with Update, and stop it with Close.
type Gateway struct {
	cfg       Config
	log       *slog.Logger
	rand      func() float64
	now       func() time.Time
	transport http.RoundTripper
	registry  *prometheus.Registry
	metrics   *metrics

	table atomic.Pointer[table]

	mu     sync.Mutex // serializes Update; guards states
	states map[vkey]*versionState

	tokens tokenCache

	tracer trace.Tracer // nil: tracing off
	telem  *gwTelemetry

	mirrorQ chan *mirrorJob
	ctx     context.Context // canceled by Close
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closed  atomic.Bool
	once    sync.Once
}

// New returns a Gateway with an empty route table (every route 404) and
// starts its mirror workers and autoscaler loop.
func New(cfg Config) *Gateway {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Transport == nil {
		cfg.Transport = NewTransport()
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.ReplayableBodyBytes <= 0 {
		cfg.ReplayableBodyBytes = DefaultReplayableBodyBytes
	}
	if cfg.MirrorQueue <= 0 {
		cfg.MirrorQueue = DefaultMirrorQueue
	}
	if cfg.MirrorWorkers <= 0 {
		cfg.MirrorWorkers = DefaultMirrorWorkers
	}
	if cfg.AutoscaleInterval == 0 {
		cfg.AutoscaleInterval = DefaultAutoscaleInterval
	}
	if cfg.ScalerTimeout <= 0 {
		cfg.ScalerTimeout = DefaultScalerTimeout
	}
	if cfg.SuspectTime <= 0 {
		cfg.SuspectTime = DefaultSuspectTime
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = tracing.Provider()
	}
	g := &Gateway{
		cfg:       cfg,
		log:       cfg.Logger,
		rand:      cfg.Rand,
		now:       cfg.Now,
		transport: cfg.Transport,
		registry:  cfg.Registry,
		states:    map[vkey]*versionState{},
		mirrorQ:   make(chan *mirrorJob, cfg.MirrorQueue),
		telem: &gwTelemetry{dir: cfg.TelemetryDir, log: cfg.Logger,
			writers: map[string]*telemetry.Writer{}, closing: map[*telemetry.Writer]bool{}},
	}
	if cfg.TracerProvider != nil {
		g.tracer = cfg.TracerProvider.Tracer(tracing.ScopeGateway)
	}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	g.metrics = newMetrics(g)
	g.table.Store(&table{routes: map[string]*route{}})
	for range cfg.MirrorWorkers {
		g.wg.Go(g.mirrorWorker)
	}
	if cfg.AutoscaleInterval > 0 {
		g.wg.Go(g.autoscaleLoop)
	}
	return g
}

// NewTransport returns the transport the gateway uses by default: plain
// HTTP/1.1 keep-alive connections to replicas, many idle connections per
// replica, no transparent compression (bodies pass through unchanged) and
// no proxy from the environment.
func NewTransport() *http.Transport {
	return &http.Transport{
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:        0, // no global limit
		MaxIdleConnsPerHost: 512,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		WriteBufferSize:     32 << 10,
		ReadBufferSize:      32 << 10,
	}
}

// Close stops the mirror workers and the autoscaler, cancels mirror copies
// in flight and closes idle connections. Requests being served finish
// normally. Close is idempotent.
func (g *Gateway) Close() error {
	g.once.Do(func() {
		g.closed.Store(true)
		g.cancel()
		g.wg.Wait()
		g.telem.close()
		if t, ok := g.transport.(interface{ CloseIdleConnections() }); ok {
			t.CloseIdleConnections()
		}
	})
	return nil
}

// MetricsHandler serves the gateway's Prometheus metrics (the registry of
// Config.Registry).
func (g *Gateway) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(g.registry, promhttp.HandlerOpts{})
}

// Operations on a route.
const (
	opScore = iota
	opSwagger
)

// parsePath splits /api/v1/{service|endpoint}/{name}[/versions/{v}]/{score|swagger.json}.
func parsePath(p string) (kind, name, version string, op int, ok bool) {
	rest, ok := strings.CutPrefix(p, "/api/v1/")
	if !ok {
		return
	}
	kind, rest, ok = strings.Cut(rest, "/")
	if !ok || (kind != modelship.RouteService && kind != modelship.RouteEndpoint) {
		return "", "", "", 0, false
	}
	name, rest, ok = strings.Cut(rest, "/")
	if !ok || name == "" {
		return "", "", "", 0, false
	}
	if kind == modelship.RouteEndpoint {
		if r, found := strings.CutPrefix(rest, "versions/"); found {
			version, rest, ok = strings.Cut(r, "/")
			if !ok || version == "" {
				return "", "", "", 0, false
			}
		}
	}
	switch rest {
	case "score":
		op = opScore
	case "swagger.json":
		op = opSwagger
	default:
		return "", "", "", 0, false
	}
	return kind, name, version, op, true
}

// ServeHTTP routes one request. Order: path, route lookup (404), method
// (405), authentication (401), version choice (404 for an unknown pinned
// version), body limit (413), then queue, proxy and response mapping.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("Healthy"))
		return
	}
	kind, name, pinned, op, ok := parsePath(r.URL.Path)
	if !ok {
		writeError(w, http.StatusNotFound, "Not found: "+r.URL.Path)
		return
	}
	t := g.table.Load()
	rt := t.routes[name]
	if rt == nil || rt.kind != kind {
		writeError(w, http.StatusNotFound, "No "+kind+" named \""+name+"\" exists on this front end")
		return
	}
	var tr *reqTrace
	if g.tracer != nil {
		tr = g.startTrace(r, rt)
		defer func() { tr.end(tr.status) }()
	}
	switch {
	case op == opScore && (r.Method == http.MethodPost || r.Method == http.MethodGet || r.Method == http.MethodOptions):
	case op == opSwagger && (r.Method == http.MethodGet || r.Method == http.MethodHead):
	default:
		if op == opScore {
			w.Header().Set("Allow", "GET, POST, OPTIONS")
		} else {
			w.Header().Set("Allow", "GET, HEAD")
		}
		writeError(w, http.StatusMethodNotAllowed, "Method "+r.Method+" is not allowed here")
		if tr != nil {
			tr.status = http.StatusMethodNotAllowed
		}
		return
	}
	// CORS pre-flight requests never carry credentials: OPTIONS on /score
	// passes through to a replica (which answers 200 with an empty body)
	// without authentication.
	if r.Method != http.MethodOptions && !g.authenticateTraced(t, rt, r, tr) {
		if tr != nil {
			tr.status = http.StatusUnauthorized
		}
		g.metrics.authFailures.WithLabelValues(rt.name).Inc()
		w.Header().Set("WWW-Authenticate", `Bearer realm="modelship"`)
		writeError(w, http.StatusUnauthorized, "Unauthorized: a valid key or token is required in the Authorization header (Bearer)")
		return
	}
	v, split := rt.versionFor(pinned, r.Header.Get(DeploymentHeader), g.rand)
	if v == nil {
		writeError(w, http.StatusNotFound, "Unknown version of endpoint \""+rt.name+"\"; the versions are: "+rt.allowed)
		if tr != nil {
			tr.status = http.StatusNotFound
		}
		return
	}
	g.serve(w, r, rt, v, op, split, tr)
}

// authenticateTraced authenticates r, timing it on the span when traced.
func (g *Gateway) authenticateTraced(t *table, rt *route, r *http.Request, tr *reqTrace) bool {
	if tr == nil {
		return g.authenticate(t, rt, r.Header.Get("Authorization"))
	}
	start := time.Now()
	ok := g.authenticate(t, rt, r.Header.Get("Authorization"))
	tr.authenticated(time.Since(start), ok)
	return ok
}

// versionFor chooses the version: the per-version URI first, then the pin
// header, then the weighted split. split is true when the traffic split
// chose (the only case that is mirrored).
func (rt *route) versionFor(urlPin, headerPin string, rnd func() float64) (v *version, split bool) {
	switch {
	case urlPin != "":
		return rt.byName[urlPin], false
	case headerPin != "":
		return rt.byName[strings.TrimSpace(headerPin)], false
	case len(rt.versions) == 1:
		return rt.versions[0], true
	default:
		return rt.pick(rnd()), true
	}
}

// pick returns the version whose cumulative traffic interval holds u·total.
func (rt *route) pick(u float64) *version {
	if rt.total <= 0 {
		return rt.def
	}
	x := u * rt.total
	for i, c := range rt.cum {
		if x < c {
			return rt.versions[i]
		}
	}
	return rt.last
}

type errorBody struct {
	Message string `json:"message"`
}

// writeError writes Azure's error shape: {"message": "..."}.
func writeError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(errorBody{Message: msg})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
