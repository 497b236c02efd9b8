package modelserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// newRequestID returns a random (version 4) UUID for a request that came
// without an id, with a single allocation.
func newRequestID() string {
	var u [16]byte
	rand.Read(u[:]) // never fails since Go 1.24
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}

// handleScore serves /score: GET and POST go to the runtime, OPTIONS is a
// CORS pre-flight, anything else is 405.
// A non-nil ev receives the request and response bodies.
func (s *Server) handleScore(w http.ResponseWriter, r *http.Request, id string, ev *RequestEvent) int {
	if s.tracer == nil || (r.Method != http.MethodGet && r.Method != http.MethodPost) {
		return s.score(w, r, id, ev, nil)
	}
	sp := s.startSpan(r, "score", id)
	status := s.score(w, r, id, ev, sp)
	sp.end(status)
	return status
}

// score serves /score; sp is the request's span (nil when tracing is off).
func (s *Server) score(w http.ResponseWriter, r *http.Request, id string, ev *RequestEvent, sp *span) int {
	switch r.Method {
	case http.MethodGet, http.MethodPost:
	case http.MethodOptions:
		if rr, ok := s.rt.(RawRequests); ok && !s.corsAny && s.corsOrigins == nil && rr.RawRequests() {
			break // run() answers it, as in Azure's inference server
		}
		s.cors(w.Header(), r.Header, true)
		w.WriteHeader(http.StatusOK)
		return http.StatusOK
	default:
		w.Header()["Allow"] = []string{"GET, POST, OPTIONS"}
		return writeMethodNotAllowed(w, "message")
	}
	s.cors(w.Header(), r.Header, false)
	req := &ScoreRequest{
		RequestID:       id,
		ClientRequestID: headerValue(w.Header(), hdrClientRequestID), // as requestIDs set it,
		Method:          r.Method,
		Host:            r.Host,
		Path:            r.URL.Path,
		RawQuery:        r.URL.RawQuery,
		Header:          r.Header,
	}
	base := r.Context()
	if sp != nil {
		req.Header, base = sp.header, sp.ctx
	}
	if r.Method == http.MethodPost {
		body, err := readBody(r, s.cfg.MaxBodyBytes)
		if err != nil {
			return s.bodyError(w, "message", err)
		}
		req.Body = body
		if ev != nil {
			ev.RequestBody = body
		}
	}

	ctx, cancel := context.WithTimeout(base, s.cfg.ScoringTimeout)
	start := time.Now()
	resp, err := s.rt.Score(ctx, req)
	elapsed := time.Since(start)
	cancel()
	if sp != nil {
		sp.scored(elapsed, resp, err)
	}
	h := w.Header()
	vals := make([]string, 2) // one allocation for two header values
	if err != nil {
		vals[0] = formatMS(elapsed)
		h[hdrExecMS] = vals[0:1:1]
		h[hdrRunFailed] = hdrFalse
		if errors.Is(err, ErrNotReady) {
			return writeJSON(w, http.StatusServiceUnavailable, jsonObject("message", err.Error()))
		}
		if errors.Is(err, ErrScoringTimeout) || errors.Is(err, context.DeadlineExceeded) {
			s.log.Warn("scoring timeout", "request_id", id, "timeout", s.cfg.ScoringTimeout)
			h[hdrRunFailed] = hdrTrue
			return writeJSON(w, http.StatusInternalServerError, s.timeoutMessage)
		}
		if r.Context().Err() != nil {
			s.log.Info("client went away during scoring", "request_id", id, "err", err)
		} else {
			s.log.Error("scoring failed", "request_id", id, "err", err)
		}
		return writeJSON(w, http.StatusInternalServerError, jsonObject("message", err.Error()))
	}

	for k, v := range resp.Header {
		h[k] = v
	}
	if resp.ExecTime > 0 || resp.Status < 400 {
		// Not on input errors (400, 415) that never reached run(), as
		// in Azure's server.
		vals[0] = formatMS(resp.ExecTime)
		h[hdrExecMS] = vals[0:1:1]
	}
	// Azure's inference server answers every scored request with
	// x-ms-run-function-failed (its AMLResponse always sets it).
	if resp.RunFailed {
		h[hdrRunFailed] = hdrTrue
	} else if _, ok := h[hdrRunFailed]; !ok {
		h[hdrRunFailed] = hdrFalse
	}
	status := resp.Status
	if status == 0 {
		status = http.StatusOK
	}
	vals[1] = strconv.Itoa(len(resp.Body))
	h["Content-Length"] = vals[1:2:2]
	w.WriteHeader(status)
	w.Write(resp.Body)
	if ev != nil {
		ev.ResponseBody = resp.Body
	}
	return status
}

// formatMS formats d in milliseconds with three decimals.
func formatMS(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64)
}

// cors adds the CORS headers for an allowed Origin. A pre-flight also gets
// the allowed methods and the requested headers.
func (s *Server) cors(out, in http.Header, preflight bool) {
	if !s.corsAny && s.corsOrigins == nil {
		return
	}
	origin := headerValue(in, hdrOrigin)
	if origin == "" || !(s.corsAny || s.corsOrigins[origin]) {
		return
	}
	out["Access-Control-Allow-Origin"] = []string{origin}
	out["Vary"] = []string{"Origin"}
	if !preflight {
		return
	}
	out["Access-Control-Allow-Methods"] = []string{"GET, POST, OPTIONS"}
	if reqHeaders := headerValue(in, "Access-Control-Request-Headers"); reqHeaders != "" {
		out["Access-Control-Allow-Headers"] = []string{reqHeaders}
	}
}

// swaggerVersions maps the accepted ?version= values to the version asked
// of the runtime.
var swaggerVersions = map[string]string{
	"": "2", "2": "2", "2.0": "2",
	"3": "3", "3.0": "3", "3.1": "3.1",
}

// handleSwagger serves GET /swagger.json?version=2|3|3.1.
func (s *Server) handleSwagger(w http.ResponseWriter, r *http.Request) int {
	asked := r.URL.Query().Get("version")
	version, ok := swaggerVersions[asked]
	if !ok {
		return writeJSON(w, http.StatusNotFound, jsonObject("message",
			"Swagger version "+strconv.Quote(asked)+" is not supported; use 2, 3 or 3.1"))
	}
	doc, err := s.rt.Swagger(r.Context(), version)
	if errors.Is(err, ErrNotReady) {
		return writeJSON(w, http.StatusServiceUnavailable, jsonObject("message", err.Error()))
	}
	if errors.Is(err, ErrNoSwagger) {
		return writeJSON(w, http.StatusNotFound, jsonObject("message",
			"Swagger version "+asked+" is not available for this service"))
	}
	if err != nil {
		s.log.Error("swagger failed", "err", err)
		return writeJSON(w, http.StatusInternalServerError, jsonObject("message", err.Error()))
	}
	return writeJSON(w, http.StatusOK, doc)
}

// jsonObject returns {key: value} as JSON.
func jsonObject(key, value string) []byte {
	return mustJSON(map[string]string{key: value})
}

// mustJSON encodes v, which must be encodable.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("modelserver: encoding JSON: " + err.Error())
	}
	return b
}
