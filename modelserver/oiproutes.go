package modelserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/modelship/modelship/oip"
)

var (
	bodyLive     = []byte(`{"live":true}`)
	bodyReady    = []byte(`{"ready":true}`)
	bodyNotReady = []byte(`{"ready":false}`)
)

// handleOIPGet serves the OIP v2 health and metadata routes.
func (s *Server) handleOIPGet(w http.ResponseWriter, r *http.Request, route string) int {
	switch route {
	case routeV2:
		return writeJSON(w, http.StatusOK, s.serverMeta)
	case routeV2Live:
		return writeJSON(w, http.StatusOK, bodyLive)
	case routeV2Ready:
		if !s.Ready() {
			return writeJSON(w, http.StatusServiceUnavailable, bodyNotReady)
		}
		return writeJSON(w, http.StatusOK, bodyReady)
	}
	name, version, _, _ := parseModelPath(r.URL.Path)
	md, ok := s.findModel(name, version)
	if !ok {
		if !s.rt.Ready() && len(s.rt.Models()) == 0 {
			return writeJSON(w, http.StatusServiceUnavailable, jsonObject("error", ErrNotReady.Error()))
		}
		return writeJSON(w, http.StatusNotFound, modelNotFound(name, version))
	}
	if route == routeModelMeta {
		return writeJSON(w, http.StatusOK, mustJSON(md))
	}
	ready := s.Ready()
	body := mustJSON(struct {
		Name  string `json:"name"`
		Ready bool   `json:"ready"`
	}{md.Name, ready})
	if !ready {
		return writeJSON(w, http.StatusServiceUnavailable, body)
	}
	return writeJSON(w, http.StatusOK, body)
}

// findModel returns the metadata of the named model; a non-empty version
// must be one of its versions.
func (s *Server) findModel(name, version string) (ModelMetadata, bool) {
	for _, m := range s.rt.Models() {
		if m.Name == name && (version == "" || slices.Contains(m.Versions, version)) {
			return m, true
		}
	}
	return ModelMetadata{}, false
}

// modelNotFound is the OIP error body for an unknown model.
func modelNotFound(name, version string) []byte {
	msg := "model " + name + " not found"
	if version != "" {
		msg = "model " + name + " version " + version + " not found"
	}
	return jsonObject("error", msg)
}

// handleInfer serves POST /v2/models/{name}[/versions/{v}]/infer.
func (s *Server) handleInfer(w http.ResponseWriter, r *http.Request) int {
	if s.tracer == nil || r.Method != http.MethodPost {
		return s.infer(w, r, nil)
	}
	sp := s.startSpan(r, "infer", "")
	status := s.infer(w, r, sp)
	sp.end(status)
	return status
}

// infer serves an inference; sp is its span (nil when tracing is off).
func (s *Server) infer(w http.ResponseWriter, r *http.Request, sp *span) int {
	if r.Method != http.MethodPost {
		w.Header()["Allow"] = []string{"POST"}
		return writeMethodNotAllowed(w, "error")
	}
	name, version, _, _ := parseModelPath(r.URL.Path)
	body, err := readBody(r, s.cfg.MaxBodyBytes)
	if err != nil {
		return s.bodyError(w, "error", err)
	}
	var req *oip.InferRequest
	if hl := r.Header.Get(oip.HeaderContentLength); hl != "" {
		// The binary tensor data extension (Triton's and KServe's clients'
		// default): JSON, then raw tensor bytes.
		n, perr := strconv.Atoi(hl)
		if perr != nil {
			return writeJSON(w, http.StatusBadRequest, jsonObject("error", fmt.Sprintf("invalid inference request: %s %q is not a whole number", oip.HeaderContentLength, hl)))
		}
		req, err = oip.DecodeInferRequestBinary(body, n)
	} else {
		req, err = oip.DecodeInferRequest(body)
	}
	if err != nil {
		return writeJSON(w, http.StatusBadRequest, jsonObject("error", "invalid inference request: "+err.Error()))
	}

	base := r.Context()
	if sp != nil {
		base = sp.ctx
		sp.span.SetAttributes(attrModel.String(name))
	}
	ctx, cancel := context.WithTimeout(base, s.cfg.ScoringTimeout)
	var start time.Time
	if sp != nil {
		start = time.Now()
	}
	resp, err := s.rt.Infer(ctx, name, version, req)
	cancel()
	if sp != nil {
		sp.inferred(time.Since(start), err)
	}
	if err != nil {
		return s.inferError(w, err)
	}
	bp := responseBuffers.Get().(*[]byte)
	out, err := oip.AppendInferResponse((*bp)[:0], resp)
	if err != nil {
		responseBuffers.Put(bp)
		return s.inferError(w, fmt.Errorf("encoding inference response: %w", err))
	}
	status := writeJSON(w, http.StatusOK, out)
	if cap(out) <= maxPooledBuffer {
		*bp = out
		responseBuffers.Put(bp)
	}
	return status
}

// responseBuffers recycles the buffers inference responses are encoded
// into; buffers over maxPooledBuffer are left to the GC.
var responseBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

const maxPooledBuffer = 1 << 20

// inferError answers an OIP error: the status of an *InferError, 500 with
// the scoring-timeout message for a timeout, else 500.
func (s *Server) inferError(w http.ResponseWriter, err error) int {
	var ie *InferError
	switch {
	case errors.As(err, &ie):
		status := ie.Status
		if status < 400 || status > 599 {
			status = http.StatusInternalServerError
		}
		return writeJSON(w, status, jsonObject("error", ie.Message))
	case errors.Is(err, ErrNotReady):
		return writeJSON(w, http.StatusServiceUnavailable, jsonObject("error", err.Error()))
	case errors.Is(err, ErrScoringTimeout) || errors.Is(err, context.DeadlineExceeded):
		return writeJSON(w, http.StatusInternalServerError, s.timeoutError)
	}
	s.log.Error("inference failed", "err", err)
	return writeJSON(w, http.StatusInternalServerError, jsonObject("error", err.Error()))
}
