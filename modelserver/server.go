package modelserver

import (
	"github.com/modelship/modelship"

	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/modelship/modelship/tracing"
)

// RuntimeReadyMessage is the log message serve-model writes once its
// runtime is ready: every line a replica wrote before it is its startup
// output (the local driver's `get-logs --init`).
const RuntimeReadyMessage = "runtime ready"

// Defaults of ServerConfig.
const (
	// DefaultScoringTimeout is Azure's inference server's own default
	// (SCORING_TIMEOUT_MS unset: one hour); deployed services get their
	// scoringTimeoutMs (60 s unless set) from the control plane.
	DefaultScoringTimeout = time.Hour
	DefaultMaxBodyBytes   = 100 << 20
	DefaultShutdownGrace  = 30 * time.Second
)

// ServerConfig configures a Server. The zero value is usable: every zero
// field takes the default documented on it.
type ServerConfig struct {
	// ScoringTimeout bounds one /score or /infer call (Azure's
	// SCORING_TIMEOUT_MS). Zero means DefaultScoringTimeout.
	ScoringTimeout time.Duration
	// MaxBodyBytes is the largest request body accepted; larger bodies get
	// 413. Zero means DefaultMaxBodyBytes (100 MB).
	MaxBodyBytes int64
	// CORSOrigins lists the origins allowed to call /score from a browser
	// (Azure's AML_CORS_ORIGINS); "*" allows any origin. Empty disables CORS.
	CORSOrigins []string
	// ShutdownGrace bounds the drain on shutdown: in-flight requests get
	// this long to finish, then the runtime gets the rest of it to close.
	// Zero means DefaultShutdownGrace.
	ShutdownGrace time.Duration
	// Registry receives the server's metrics and is served on /metrics.
	// Nil means a private registry. A registry must not be shared by two
	// Servers (their metrics would collide).
	Registry *prometheus.Registry
	// Logger receives request errors and lifecycle events. Nil means
	// slog.Default().
	Logger *slog.Logger
	// Version is reported by GET /v2 as the server version.
	Version string
	// OnRequest, when set, is called once per request after the response
	// was written, on the request's goroutine (request telemetry, payload
	// collection). It must not block, and must copy the bodies of the
	// event if it keeps them beyond the call.
	OnRequest func(ev *RequestEvent)
	// TracerProvider makes the span "score" (or "infer") of each scoring
	// request, a child of the caller's traceparent; the runtime then sees
	// that span's traceparent in the request headers (score.py's
	// request_headers). Nil means tracing.Provider(), which is nil when no
	// OTLP exporter is configured: then no span is made and the caller's
	// traceparent reaches the runtime unchanged.
	TracerProvider trace.TracerProvider
}

// RequestEvent describes one answered request, for ServerConfig.OnRequest.
type RequestEvent struct {
	Start           time.Time     // when the request arrived
	Duration        time.Duration // time to answer it
	Method          string        // HTTP method
	Path            string        // URL path
	Route           string        // route label of the metrics, e.g. "/score"
	Header          http.Header   // request headers (traceparent, ...)
	RequestID       string        // x-request-id (used or generated); empty when rejected early
	ClientRequestID string        // x-ms-client-request-id
	Status          int           // HTTP status answered
	RequestBody     []byte        // /score request body (valid during the call only)
	ResponseBody    []byte        // /score response body (valid during the call only)
}

// ParseCORSOrigins splits a comma-separated origin list (the format of
// AML_CORS_ORIGINS), trimming blanks and dropping empty entries.
func ParseCORSOrigins(s string) []string {
	var out []string
	for _, o := range strings.Split(s, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
}

// Server is the HTTP front of one replica: Azure ML's routes and the Open
// Inference Protocol v2 over one Runtime, plus Prometheus metrics.
type Server struct {
	rt       Runtime
	cfg      ServerConfig
	log      *slog.Logger
	metrics  *metrics
	draining atomic.Bool
	scoring  atomic.Int64  // scoring requests in flight
	scored   atomic.Uint64 // scoring requests answered
	tracer   trace.Tracer  // nil: tracing off

	corsAny     bool
	corsOrigins map[string]bool

	timeoutMessage []byte // {"message": "Scoring timeout after N ms"}
	timeoutError   []byte // {"error": "Scoring timeout after N ms"}
	serverMeta     []byte // body of GET /v2
}

// NewServer returns a Server over rt. It registers its metrics on
// cfg.Registry and panics if that registry already holds them.
func NewServer(rt Runtime, cfg ServerConfig) *Server {
	if cfg.ScoringTimeout <= 0 {
		cfg.ScoringTimeout = DefaultScoringTimeout
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = DefaultShutdownGrace
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = tracing.Provider()
	}
	s := &Server{rt: rt, cfg: cfg, log: cfg.Logger}
	if cfg.TracerProvider != nil {
		s.tracer = cfg.TracerProvider.Tracer(tracing.ScopeModelServer)
		cfg.Registry.MustRegister(tracing.DroppedCollector("modelserver"))
	}
	for _, o := range cfg.CORSOrigins {
		if o == "*" {
			s.corsAny = true
			continue
		}
		if s.corsOrigins == nil {
			s.corsOrigins = make(map[string]bool)
		}
		s.corsOrigins[o] = true
	}
	msg := fmt.Sprintf("Scoring timeout after %d ms", cfg.ScoringTimeout.Milliseconds())
	s.timeoutMessage = jsonObject("message", msg)
	s.timeoutError = jsonObject("error", msg)
	s.serverMeta = mustJSON(struct {
		Name       string   `json:"name"`
		Version    string   `json:"version"`
		Extensions []string `json:"extensions"`
	}{"modelship", cfg.Version, []string{}})
	s.metrics = newMetrics(cfg.Registry, rt)
	return s
}

// Handler returns the server's HTTP handler, for tests and for embedding
// in another http.Server.
func (s *Server) Handler() http.Handler { return s }

// Ready reports whether the server takes traffic: the runtime is ready and
// the server is not draining.
func (s *Server) Ready() bool { return !s.draining.Load() && s.rt.Ready() }

// Serve serves HTTP on ln until ctx is canceled or serving fails. On
// cancel it stops accepting connections, reports not-ready, waits for
// in-flight requests up to ShutdownGrace, and then closes the runtime with
// what is left of the grace period. Serve always closes the runtime before
// it returns; it returns nil after a clean drain.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       5 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()

	var serveErr error
	select {
	case err := <-errc:
		serveErr = fmt.Errorf("serving http: %w", err)
		s.draining.Store(true)
	case <-ctx.Done():
		s.draining.Store(true)
		s.log.Info("draining", "grace", s.cfg.ShutdownGrace)
	}

	graceCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownGrace)
	defer cancel()
	if err := hs.Shutdown(graceCtx); err != nil {
		s.log.Warn("drain incomplete, closing connections", "err", err)
		hs.Close()
	}
	if serveErr == nil {
		if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
			serveErr = fmt.Errorf("serving http: %w", err)
		}
	}
	closeCtx := graceCtx
	if graceCtx.Err() != nil {
		// The grace period was spent on requests; give the runtime a short
		// moment of its own to stop its workers.
		var cancelClose context.CancelFunc
		closeCtx, cancelClose = context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancelClose()
	}
	if err := s.rt.Close(closeCtx); err != nil {
		return errors.Join(serveErr, fmt.Errorf("closing runtime: %w", err))
	}
	s.log.Info("stopped")
	return serveErr
}

// Route labels of the metrics, one per route of the server.
const (
	routeHealth      = "/"
	routeScore       = "/score"
	routeSwagger     = "/swagger.json"
	routeMetrics     = "/metrics"
	routeV2          = "/v2"
	routeV2Live      = "/v2/health/live"
	routeV2Ready     = "/v2/health/ready"
	routeModelMeta   = "/v2/models/{name}"
	routeModelReady  = "/v2/models/{name}/ready"
	routeModelInfer  = "/v2/models/{name}/infer"
	routeNotFound    = "other"
	numRouteLabels   = 11
	maxRequestIDSize = 100
)

// Canonical header keys, set directly in header maps to skip
// canonicalization on the hot path.
const (
	hdrRequestID       = "X-Request-Id"
	hdrMSRequestID     = "X-Ms-Request-Id"
	hdrClientRequestID = "X-Ms-Client-Request-Id"
	hdrTraceID         = "Traceid"
	hdrExecMS          = "X-Ms-Run-Fn-Exec-Ms"
	hdrRunFailed       = "X-Ms-Run-Function-Failed"
	hdrContentType     = "Content-Type"
	hdrOrigin          = "Origin"
)

var (
	ctJSON   = []string{"application/json"}
	ctText   = []string{"text/plain; charset=utf-8"}
	hdrTrue  = []string{"True"}
	hdrFalse = []string{"False"}
)

// ServeHTTP routes one request and records its metrics.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	route := routeOf(r.URL.Path)
	if route == routeScore || route == routeModelInfer {
		s.scoring.Add(1)
		defer func() {
			s.scoring.Add(-1)
			s.scored.Add(1)
		}()
	}
	if s.cfg.OnRequest == nil {
		status := s.serve(w, r, route, nil)
		s.metrics.observe(route, status, time.Since(start))
		return
	}
	ev := &RequestEvent{Start: start, Method: r.Method, Path: r.URL.Path, Header: r.Header}
	status := s.serve(w, r, route, ev)
	ev.Duration = time.Since(start)
	s.metrics.observe(route, status, ev.Duration)
	ev.Route, ev.Status = route, status
	s.cfg.OnRequest(ev)
}

// Activity reports the scoring requests (/score, OIP infer) in flight and
// how many were answered so far; health checks, metrics and metadata
// requests do not count.
func (s *Server) Activity() (inFlight int64, answered uint64) {
	return s.scoring.Load(), s.scored.Load()
}

// serve handles one request on its route and returns its status. A
// non-nil ev receives the request ids and the /score bodies.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, route string, ev *RequestEvent) int {
	id, ok := s.requestIDs(w.Header(), r.Header)
	if !ok {
		return writeJSON(w, http.StatusRequestHeaderFieldsTooLarge, jsonObject("message",
			fmt.Sprintf("request id headers must be at most %d characters", maxRequestIDSize)))
	}
	if ev != nil {
		ev.RequestID, ev.ClientRequestID = id, headerValue(w.Header(), hdrClientRequestID)
	}
	switch route {
	case routeScore:
		return s.handleScore(w, r, id, ev)
	case routeModelInfer:
		return s.handleInfer(w, r)
	case routeHealth:
		if !allowGet(w, r) {
			return writeMethodNotAllowed(w, "message")
		}
		w.Header()[hdrContentType] = ctText
		io.WriteString(w, "Healthy")
		return http.StatusOK
	case routeSwagger:
		if !allowGet(w, r) {
			return writeMethodNotAllowed(w, "message")
		}
		return s.handleSwagger(w, r)
	case routeMetrics:
		if !allowGet(w, r) {
			return writeMethodNotAllowed(w, "message")
		}
		return s.metrics.serve(w, r)
	case routeV2, routeV2Live, routeV2Ready, routeModelMeta, routeModelReady:
		if !allowGet(w, r) {
			return writeMethodNotAllowed(w, "error")
		}
		return s.handleOIPGet(w, r, route)
	}
	key := "message"
	if strings.HasPrefix(r.URL.Path, "/v2/") {
		key = "error"
	}
	return writeJSON(w, http.StatusNotFound, jsonObject(key, "no route for "+r.URL.Path))
}

// routeOf maps a path to its route label without allocating.
func routeOf(p string) string {
	switch p {
	case "/":
		return routeHealth
	case "/score":
		return routeScore
	case "/swagger.json":
		return routeSwagger
	case "/metrics":
		return routeMetrics
	case "/v2", "/v2/":
		return routeV2
	case "/v2/health/live":
		return routeV2Live
	case "/v2/health/ready":
		return routeV2Ready
	}
	if _, _, suffix, ok := parseModelPath(p); ok {
		switch suffix {
		case "":
			return routeModelMeta
		case "ready":
			return routeModelReady
		case "infer":
			return routeModelInfer
		}
	}
	return routeNotFound
}

// parseModelPath splits /v2/models/{name}[/versions/{v}][/{suffix}] into
// its parts. It reports false for any other path.
func parseModelPath(p string) (name, version, suffix string, ok bool) {
	rest, found := strings.CutPrefix(p, "/v2/models/")
	if !found {
		return "", "", "", false
	}
	name, rest, _ = strings.Cut(rest, "/")
	if name == "" {
		return "", "", "", false
	}
	if v, found := strings.CutPrefix(rest, "versions/"); found {
		version, rest, _ = strings.Cut(v, "/")
		if version == "" {
			return "", "", "", false
		}
	}
	if strings.Contains(rest, "/") {
		return "", "", "", false
	}
	return name, version, rest, true
}

// requestIDs applies Azure's request-id rules: x-request-id (or, failing
// that, x-ms-request-id) is used or generated and returned in both
// headers; x-ms-client-request-id and TraceId are echoed. It reports false
// when one of the id headers is longer than 100 characters.
func (s *Server) requestIDs(out, in http.Header) (string, bool) {
	id := headerValue(in, hdrRequestID)
	msID := headerValue(in, hdrMSRequestID)
	clientID := headerValue(in, hdrClientRequestID)
	if len(id) > maxRequestIDSize || len(msID) > maxRequestIDSize || len(clientID) > maxRequestIDSize {
		return "", false
	}
	if id == "" {
		id = newRequestID()
	}
	ms, client := modelship.RequestIDHeaders(id, msID, clientID)
	out[hdrRequestID] = []string{id}
	out[hdrMSRequestID] = []string{ms}
	if client != "" {
		out[hdrClientRequestID] = []string{client}
	}
	if t := in[hdrTraceID]; len(t) > 0 {
		out[hdrTraceID] = t[:1]
	}
	return id, true
}

// headerValue returns the first value of a canonical header key.
func headerValue(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// allowGet reports whether r is a GET (or HEAD) and sets Allow otherwise.
func allowGet(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header()["Allow"] = []string{"GET, HEAD"}
	return false
}

// writeMethodNotAllowed answers 405 with a JSON body under key.
func writeMethodNotAllowed(w http.ResponseWriter, key string) int {
	return writeJSON(w, http.StatusMethodNotAllowed, jsonObject(key, "method not allowed"))
}

// writeJSON writes a JSON body with status and returns status.
func writeJSON(w http.ResponseWriter, status int, body []byte) int {
	h := w.Header()
	h[hdrContentType] = ctJSON
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	w.Write(body)
	return status
}

// errTooLarge is returned by readBody for a body over the limit.
var errTooLarge = errors.New("request body too large")

// readBody reads the whole body, up to limit bytes, in one allocation when
// the length is known.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, errTooLarge
	}
	if r.ContentLength >= 0 {
		buf := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			return nil, fmt.Errorf("reading request body: %w", err)
		}
		return buf, nil
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading request body: %w", err)
	}
	if int64(len(buf)) > limit {
		return nil, errTooLarge
	}
	return buf, nil
}

// bodyError answers a readBody error: 413 for a body too large, else 400.
func (s *Server) bodyError(w http.ResponseWriter, key string, err error) int {
	if errors.Is(err, errTooLarge) {
		return writeJSON(w, http.StatusRequestEntityTooLarge, jsonObject(key,
			fmt.Sprintf("request body is larger than the limit of %d bytes", s.cfg.MaxBodyBytes)))
	}
	return writeJSON(w, http.StatusBadRequest, jsonObject(key, err.Error()))
}
