package httpapi

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/modelship/modelship"
)

// SourceUploader stores source folders (tar streams) for deployments.
type SourceUploader interface {
	UploadSource(ctx context.Context, content io.Reader) (string, error)
}

// DeployResponse is the body of an accepted deploy or update (202). A
// deploy whose config has computeType AKSENDPOINT creates an endpoint.
type DeployResponse struct {
	Service     *modelship.Service  `json:"service,omitempty"`
	Endpoint    *modelship.Endpoint `json:"endpoint,omitempty"`
	OperationID string              `json:"operationId"`
}

// RegenKeyRequest is Azure's regenerateKeys body.
type RegenKeyRequest struct {
	KeyType  string `json:"keyType"`
	KeyValue string `json:"keyValue,omitempty"`
}

// SourceResponse names an uploaded source folder.
type SourceResponse struct {
	SHA256 string `json:"sha256"`
}

func (s *Server) opLocation(w http.ResponseWriter, ws, id string) {
	w.Header().Set("Operation-Location", "/api/v1/workspaces/"+ws+"/operations/"+id)
	w.Header().Set("Location", "/api/v1/workspaces/"+ws+"/operations/"+id)
}

func (s *Server) handleUploadSource(w http.ResponseWriter, r *http.Request) {
	if _, err := s.Workspaces.FindWorkspace(r.Context(), r.PathValue("ws")); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	body := limitedBody{r: http.MaxBytesReader(w, r.Body, s.MaxUploadBytes), limit: s.MaxUploadBytes}
	digest, err := s.Sources.UploadSource(r.Context(), body)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	writeJSON(w, http.StatusCreated, SourceResponse{SHA256: digest})
}

func (s *Server) handleListServices(w http.ResponseWriter, r *http.Request) {
	list, err := s.Deployments.List(r.Context(), r.PathValue("ws"))
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) handleDeploy(w http.ResponseWriter, r *http.Request) {
	var req modelship.DeployRequest
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	if s.Endpoints != nil && modelship.IsEndpointConfig(req.DeploymentConfig) {
		ep, op, err := s.Endpoints.CreateEndpoint(r.Context(), r.PathValue("ws"), &modelship.EndpointCreateRequest{
			Name: req.Name, ComputeTarget: req.ComputeTarget, DeploymentConfig: req.DeploymentConfig,
			Version: modelship.VersionRequest{Models: req.Models, Inference: &req.Inference},
		})
		if err != nil {
			writeError(w, r, s.Log, err)
			return
		}
		s.opLocation(w, r.PathValue("ws"), op.ID)
		writeJSON(w, http.StatusAccepted, DeployResponse{Endpoint: ep, OperationID: op.ID})
		return
	}
	svc, op, err := s.Deployments.Deploy(r.Context(), r.PathValue("ws"), &req)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	s.opLocation(w, r.PathValue("ws"), op.ID)
	writeJSON(w, http.StatusAccepted, DeployResponse{Service: svc, OperationID: op.ID})
}

func (s *Server) handleGetService(w http.ResponseWriter, r *http.Request) {
	svc, err := s.Deployments.Get(r.Context(), r.PathValue("ws"), r.PathValue("svc"))
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, svc)
}

func (s *Server) handleUpdateService(w http.ResponseWriter, r *http.Request) {
	var req modelship.UpdateRequest
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	svc, op, err := s.Deployments.Update(r.Context(), r.PathValue("ws"), r.PathValue("svc"), &req)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	s.opLocation(w, r.PathValue("ws"), op.ID)
	writeJSON(w, http.StatusAccepted, DeployResponse{Service: svc, OperationID: op.ID})
}

func (s *Server) handleDeleteService(w http.ResponseWriter, r *http.Request) {
	op, err := s.Deployments.Delete(r.Context(), r.PathValue("ws"), r.PathValue("svc"))
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	s.opLocation(w, r.PathValue("ws"), op.ID)
	writeJSON(w, http.StatusAccepted, DeployResponse{OperationID: op.ID})
}

func (s *Server) handleListKeys(w http.ResponseWriter, r *http.Request) {
	keys, err := s.Deployments.Keys(r.Context(), r.PathValue("ws"), r.PathValue("svc"))
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, keys)
}

func (s *Server) handleRegenKey(w http.ResponseWriter, r *http.Request) {
	var req RegenKeyRequest
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	keys, err := s.Deployments.RegenKey(r.Context(), r.PathValue("ws"), r.PathValue("svc"), req.KeyType, req.KeyValue)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, keys)
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	tok, err := s.Deployments.Token(r.Context(), r.PathValue("ws"), r.PathValue("svc"))
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, tok)
}

// LogsResponse carries replica log lines.
type LogsResponse struct {
	Lines []string `json:"lines"`
}

// logOptions reads tail, replica and init from the query.
func logOptions(r *http.Request) (modelship.LogOptions, error) {
	q := r.URL.Query()
	opts := modelship.LogOptions{Replica: -1, Tail: 5000}
	var err error
	if v := q.Get("tail"); v != "" {
		if opts.Tail, err = strconv.Atoi(v); err != nil || opts.Tail < 0 {
			return opts, modelship.Errorf(modelship.EINVALID, "tail %q is invalid; give a whole number of lines", v)
		}
	}
	if v := q.Get("replica"); v != "" {
		if opts.Replica, err = strconv.Atoi(v); err != nil || opts.Replica < 0 {
			return opts, modelship.Errorf(modelship.EINVALID, "replica %q is invalid; give a replica index from 0", v)
		}
	}
	opts.Init = q.Get("init") == "true"
	return opts, nil
}

func (s *Server) handleLogs(w http.ResponseWriter, r *http.Request) {
	opts, err := logOptions(r)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	lines, err := s.Deployments.Logs(r.Context(), r.PathValue("ws"), r.PathValue("svc"), opts)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	if lines == nil {
		lines = []string{}
	}
	writeJSON(w, http.StatusOK, LogsResponse{Lines: lines})
}

func (s *Server) handleOperation(w http.ResponseWriter, r *http.Request) {
	after, _ := strconv.Atoi(r.URL.Query().Get("after"))
	op, err := s.Deployments.Operation(r.Context(), r.PathValue("id"), after)
	if err == nil && op.Workspace != r.PathValue("ws") {
		err = modelship.Errorf(modelship.ENOTFOUND, "operation %q not found in workspace %q", r.PathValue("id"), r.PathValue("ws"))
	}
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, op)
}

// CreateTargetRequest creates a local compute target.
type CreateTargetRequest struct {
	Name           string  `json:"name"`
	ComputeType    string  `json:"computeType"`
	ClusterPurpose string  `json:"clusterPurpose"`
	CPU            float64 `json:"cpu"`
	MemoryGB       float64 `json:"memoryGB"`
	GPUs           int     `json:"gpus"`
	Description    string  `json:"description,omitempty"`
}

// CreateTargetResponse returns the target and any warnings.
type CreateTargetResponse struct {
	Target   *modelship.ComputeTarget `json:"computeTarget"`
	Warnings []string                 `json:"warnings"`
}

func (s *Server) handleListTargets(w http.ResponseWriter, r *http.Request) {
	list, err := s.Deployments.Targets(r.Context(), r.PathValue("ws"))
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) handleCreateTarget(w http.ResponseWriter, r *http.Request) {
	var req CreateTargetRequest
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	if req.ComputeType != "" && req.ComputeType != modelship.TargetLocal {
		writeError(w, r, s.Log, modelship.Errorf(modelship.EINVALID, "compute type %q cannot be created; create %q targets (Kubernetes clusters are attached)", req.ComputeType, modelship.TargetLocal))
		return
	}
	ct := &modelship.ComputeTarget{Workspace: r.PathValue("ws"), Name: req.Name, ClusterPurpose: req.ClusterPurpose,
		CPU: req.CPU, MemoryGB: req.MemoryGB, GPUs: req.GPUs, Description: req.Description}
	warnings, err := s.Deployments.CreateLocalTarget(r.Context(), ct)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	ct, _ = s.Deployments.Target(r.Context(), ct.Workspace, ct.Name)
	if warnings == nil {
		warnings = []string{}
	}
	writeJSON(w, http.StatusCreated, CreateTargetResponse{Target: ct, Warnings: warnings})
}

func (s *Server) handleAttachTarget(w http.ResponseWriter, r *http.Request) {
	var req modelship.AttachRequest
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	ct, warnings, err := s.Deployments.AttachKubernetes(r.Context(), r.PathValue("ws"), &req)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	if warnings == nil {
		warnings = []string{}
	}
	writeJSON(w, http.StatusCreated, CreateTargetResponse{Target: ct, Warnings: warnings})
}

func (s *Server) handleDetachTarget(w http.ResponseWriter, r *http.Request) {
	force, err := parseBoolParam(r, "force")
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	if err := s.Deployments.Detach(r.Context(), r.PathValue("ws"), r.PathValue("target"), force); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleGetTarget(w http.ResponseWriter, r *http.Request) {
	ct, err := s.Deployments.Target(r.Context(), r.PathValue("ws"), r.PathValue("target"))
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, ct)
}

func (s *Server) handleDeleteTarget(w http.ResponseWriter, r *http.Request) {
	if err := s.Deployments.DeleteTarget(r.Context(), r.PathValue("ws"), r.PathValue("target")); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleCollectedData(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	since, err := ParseSince(q.Get("since"), time.Now())
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	designation := q.Get("designation")
	if designation == "" {
		writeError(w, r, s.Log, modelship.Errorf(modelship.EINVALID, "give designation: inputs, predictions, labels, signals or general"))
		return
	}
	// Collect into memory first so an error still gets a JSON error body.
	var buf bytes.Buffer
	if err := s.Deployments.CollectedData(r.Context(), r.PathValue("ws"), r.PathValue("svc"), designation, q.Get("model"), since, &buf); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Write(buf.Bytes())
}

// ParseSince reads "since" as an RFC 3339 time or a duration before now
// ("1h", "30m"); empty means no lower bound.
func ParseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, modelship.Errorf(modelship.EINVALID, "since %q is invalid; give a duration such as 1h or 30m, or an RFC 3339 time such as 2026-11-26T10:00:00Z", s)
}

// parseBoolParam reads an optional boolean query parameter.
func parseBoolParam(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, modelship.Errorf(modelship.EINVALID, "query parameter %s=%q is not a boolean; use true or false", name, v)
	}
	return b, nil
}
