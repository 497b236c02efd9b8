package httpapi

import (
	"net/http"
	"strconv"

	"github.com/modelship/modelship"
)

// EndpointResponse is the body of endpoint calls; OperationID is set when
// an asynchronous deployment started (202).
type EndpointResponse struct {
	Endpoint    *modelship.Endpoint `json:"endpoint,omitempty"`
	OperationID string              `json:"operationId,omitempty"`
}

func (s *Server) writeEndpoint(w http.ResponseWriter, ws string, ep *modelship.Endpoint, op *modelship.Operation) {
	if op != nil {
		s.opLocation(w, ws, op.ID)
		writeJSON(w, http.StatusAccepted, EndpointResponse{Endpoint: ep, OperationID: op.ID})
		return
	}
	writeJSON(w, http.StatusOK, EndpointResponse{Endpoint: ep})
}

func (s *Server) handleListEndpoints(w http.ResponseWriter, r *http.Request) {
	list, err := s.Endpoints.ListEndpoints(r.Context(), r.PathValue("ws"))
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) handleCreateEndpoint(w http.ResponseWriter, r *http.Request) {
	var req modelship.EndpointCreateRequest
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	ep, op, err := s.Endpoints.CreateEndpoint(r.Context(), r.PathValue("ws"), &req)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	s.writeEndpoint(w, r.PathValue("ws"), ep, op)
}

func (s *Server) handleGetEndpoint(w http.ResponseWriter, r *http.Request) {
	metrics, _ := strconv.ParseBool(r.URL.Query().Get("metrics"))
	ep, err := s.Endpoints.GetEndpoint(r.Context(), r.PathValue("ws"), r.PathValue("ep"), metrics)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, ep)
}

func (s *Server) handleUpdateEndpoint(w http.ResponseWriter, r *http.Request) {
	var req modelship.EndpointUpdateRequest
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	ep, err := s.Endpoints.UpdateEndpoint(r.Context(), r.PathValue("ws"), r.PathValue("ep"), &req)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	s.writeEndpoint(w, r.PathValue("ws"), ep, nil)
}

func (s *Server) handleDeleteEndpoint(w http.ResponseWriter, r *http.Request) {
	op, err := s.Endpoints.DeleteEndpoint(r.Context(), r.PathValue("ws"), r.PathValue("ep"))
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	s.writeEndpoint(w, r.PathValue("ws"), nil, op)
}

func (s *Server) handleCreateVersion(w http.ResponseWriter, r *http.Request) {
	var req modelship.VersionRequest
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	ep, op, err := s.Endpoints.CreateVersion(r.Context(), r.PathValue("ws"), r.PathValue("ep"), &req)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	s.writeEndpoint(w, r.PathValue("ws"), ep, op)
}

func (s *Server) handleUpdateVersion(w http.ResponseWriter, r *http.Request) {
	var req modelship.VersionRequest
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	if req.Name == "" {
		req.Name = r.PathValue("version")
	} else if req.Name != r.PathValue("version") {
		writeError(w, r, s.Log, modelship.Errorf(modelship.EINVALID, "versionName %q in the body differs from %q in the URL", req.Name, r.PathValue("version")))
		return
	}
	ep, op, err := s.Endpoints.UpdateVersion(r.Context(), r.PathValue("ws"), r.PathValue("ep"), &req)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	s.writeEndpoint(w, r.PathValue("ws"), ep, op)
}

func (s *Server) handleDeleteVersion(w http.ResponseWriter, r *http.Request) {
	op, err := s.Endpoints.DeleteVersion(r.Context(), r.PathValue("ws"), r.PathValue("ep"), r.PathValue("version"))
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	s.writeEndpoint(w, r.PathValue("ws"), nil, op)
}

func (s *Server) handlePromoteVersion(w http.ResponseWriter, r *http.Request) {
	ep, err := s.Endpoints.PromoteVersion(r.Context(), r.PathValue("ws"), r.PathValue("ep"), r.PathValue("version"))
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	s.writeEndpoint(w, r.PathValue("ws"), ep, nil)
}

func (s *Server) handleEndpointKeys(w http.ResponseWriter, r *http.Request) {
	keys, err := s.Endpoints.EndpointKeys(r.Context(), r.PathValue("ws"), r.PathValue("ep"))
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, keys)
}

func (s *Server) handleEndpointRegenKey(w http.ResponseWriter, r *http.Request) {
	var req RegenKeyRequest
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	keys, err := s.Endpoints.RegenEndpointKey(r.Context(), r.PathValue("ws"), r.PathValue("ep"), req.KeyType, req.KeyValue)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, keys)
}

func (s *Server) handleEndpointToken(w http.ResponseWriter, r *http.Request) {
	tok, err := s.Endpoints.EndpointToken(r.Context(), r.PathValue("ws"), r.PathValue("ep"))
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, tok)
}

func (s *Server) handleEndpointLogs(w http.ResponseWriter, r *http.Request) {
	opts, err := logOptions(r)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	lines, err := s.Endpoints.EndpointLogs(r.Context(), r.PathValue("ws"), r.PathValue("ep"), r.URL.Query().Get("version"), opts)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, LogsResponse{Lines: lines})
}
