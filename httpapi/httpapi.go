// Package httpapi is the control plane's REST API: JSON over HTTP under
// /api/v1, bearer-token auth, and the mapping between modelship error codes
// and HTTP statuses (the client package maps them back).
package httpapi

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/modelship/modelship"
)

// DefaultMaxUploadBytes is the default limit on a model upload (10 GiB).
const DefaultMaxUploadBytes int64 = 10 << 30

// Server serves the control-plane API.
type Server struct {
	Workspaces     modelship.WorkspaceService
	Models         modelship.ModelService
	Deployments    modelship.DeploymentService
	Endpoints      modelship.EndpointService
	Sources        SourceUploader
	AdminToken     string
	MaxUploadBytes int64
	Version        string
	Log            *slog.Logger

	mux    *http.ServeMux
	routes []route
}

type route struct {
	method, pattern, summary, tag string
	handler                       http.HandlerFunc
	public                        bool
	// out names the response schema (components/schemas); "[]X" for arrays.
	out string
}

// Handler returns the API's http.Handler.
func (s *Server) Handler() http.Handler {
	if s.mux == nil {
		s.init()
	}
	return s.mux
}

func (s *Server) init() {
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	if s.MaxUploadBytes <= 0 {
		s.MaxUploadBytes = DefaultMaxUploadBytes
	}
	s.routes = s.routeTable()
	s.mux = http.NewServeMux()
	for _, rt := range s.routes {
		h := rt.handler
		if !rt.public {
			h = s.requireAdmin(h)
		}
		s.mux.Handle(rt.method+" "+rt.pattern, h)
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, s.Log, modelship.Errorf(modelship.ENOTFOUND, "no route for %s %s; see /api/v1/openapi.json", r.Method, r.URL.Path))
	})
}

// Routes lists "METHOD pattern" for every route, for tests and docs.
func (s *Server) Routes() []string {
	if s.mux == nil {
		s.init()
	}
	out := make([]string, len(s.routes))
	for i, rt := range s.routes {
		out[i] = rt.method + " " + rt.pattern
	}
	return out
}

func (s *Server) routeTable() []route {
	return []route{
		{method: "GET", pattern: "/healthz", summary: "Liveness of the control plane (no auth)", tag: "system", handler: s.handleHealth, public: true},
		{method: "GET", pattern: "/api/v1/openapi.json", summary: "This OpenAPI document", tag: "system", handler: s.handleOpenAPI},
		{method: "GET", pattern: "/api/v1/version", summary: "Server version", tag: "system", handler: s.handleVersion},
		{method: "GET", pattern: "/api/v1/workspaces", summary: "List workspaces", tag: "workspaces", handler: s.handleListWorkspaces},
		{method: "POST", pattern: "/api/v1/workspaces", summary: "Create a workspace", tag: "workspaces", handler: s.handleCreateWorkspace},
		{method: "GET", pattern: "/api/v1/workspaces/{ws}", summary: "Show a workspace", tag: "workspaces", handler: s.handleGetWorkspace},
		{method: "DELETE", pattern: "/api/v1/workspaces/{ws}", summary: "Delete an empty workspace", tag: "workspaces", handler: s.handleDeleteWorkspace},
		{method: "GET", pattern: "/api/v1/workspaces/{ws}/models", summary: "List model versions (filters: name, tag=k[=v])", tag: "models", handler: s.handleListModels},
		{method: "GET", pattern: "/api/v1/workspaces/{ws}/models/{name}", summary: "Show the latest version of a model", tag: "models", handler: s.handleGetModel},
		{method: "GET", pattern: "/api/v1/workspaces/{ws}/models/{name}/versions", summary: "List the versions of a model", tag: "models", handler: s.handleListModelVersions},
		{method: "POST", pattern: "/api/v1/workspaces/{ws}/models/{name}/versions", summary: "Register a new version: the body streams the file (application/octet-stream) or a tar of the folder (application/x-tar)", tag: "models", handler: s.handleRegisterModel},
		{method: "GET", pattern: "/api/v1/workspaces/{ws}/models/{name}/versions/{version}", summary: "Show a model version", tag: "models", handler: s.handleGetModel},
		{method: "PATCH", pattern: "/api/v1/workspaces/{ws}/models/{name}/versions/{version}", summary: "Update tags, properties (add-only) or description", tag: "models", handler: s.handleUpdateModel},
		{method: "DELETE", pattern: "/api/v1/workspaces/{ws}/models/{name}/versions/{version}", summary: "Delete a model version", tag: "models", handler: s.handleDeleteModel},
		{method: "GET", pattern: "/api/v1/workspaces/{ws}/models/{name}/versions/{version}/content", summary: "Download a version's bytes (the file, or a tar of the folder)", tag: "models", handler: s.handleModelContent},
		{method: "POST", pattern: "/api/v1/workspaces/{ws}/sources", summary: "Upload a source folder (tar) for deployments; returns its sha256", tag: "services", out: "Source", handler: s.handleUploadSource},
		{method: "GET", pattern: "/api/v1/workspaces/{ws}/services", summary: "List services", tag: "services", out: "[]Service", handler: s.handleListServices},
		{method: "POST", pattern: "/api/v1/workspaces/{ws}/services", summary: "Deploy a service (asynchronous; follow the operation)", tag: "services", out: "DeployResponse", handler: s.handleDeploy},
		{method: "GET", pattern: "/api/v1/workspaces/{ws}/services/{svc}", summary: "Show a service", tag: "services", out: "Service", handler: s.handleGetService},
		{method: "PATCH", pattern: "/api/v1/workspaces/{ws}/services/{svc}", summary: "Update a service (rolling; asynchronous)", tag: "services", out: "DeployResponse", handler: s.handleUpdateService},
		{method: "DELETE", pattern: "/api/v1/workspaces/{ws}/services/{svc}", summary: "Delete a service (asynchronous)", tag: "services", out: "DeployResponse", handler: s.handleDeleteService},
		{method: "POST", pattern: "/api/v1/workspaces/{ws}/services/{svc}/listkeys", summary: "Get the service's keys", tag: "services", out: "ServiceKeys", handler: s.handleListKeys},
		{method: "POST", pattern: "/api/v1/workspaces/{ws}/services/{svc}/regenerateKeys", summary: "Regenerate the Primary or Secondary key", tag: "services", out: "ServiceKeys", handler: s.handleRegenKey},
		{method: "POST", pattern: "/api/v1/workspaces/{ws}/services/{svc}/token", summary: "Get an access token (token-auth services)", tag: "services", out: "AccessToken", handler: s.handleToken},
		{method: "GET", pattern: "/api/v1/workspaces/{ws}/services/{svc}/logs", summary: "Replica logs (tail, init, replica)", tag: "services", out: "Logs", handler: s.handleLogs},
		{method: "GET", pattern: "/api/v1/workspaces/{ws}/services/{svc}/collected-data", summary: "Rows collected by score.py's ModelDataCollector as CSV (designation, model, since)", tag: "services", out: "CSV", handler: s.handleCollectedData},
		{method: "POST", pattern: "/api/v1/workspaces/{ws}/services/{svc}/fetchaccess", summary: "A fetch URL and token for replicas of a deployment running elsewhere (a service, or <endpoint>.<version>)", tag: "services", out: "FetchAccess", handler: s.handleFetchAccess},
		{method: "GET", pattern: "/api/v1/fetch/{ws}/{dep}/manifest", summary: "A deployment's files (fetch token)", tag: "fetch", out: "FetchManifest", handler: s.requireFetch(s.handleFetchManifest), public: true},
		{method: "GET", pattern: "/api/v1/fetch/{ws}/{dep}/blobs/{sha256}", summary: "One of a deployment's files by sha256 (fetch token)", tag: "fetch", out: "Blob", handler: s.requireFetch(s.handleFetchBlob), public: true},
		{method: "GET", pattern: "/api/v1/workspaces/{ws}/operations/{id}", summary: "An asynchronous operation and its log (after=N for new lines)", tag: "services", out: "Operation", handler: s.handleOperation},
		{method: "GET", pattern: "/api/v1/workspaces/{ws}/endpoints", summary: "List endpoints", tag: "endpoints", out: "[]Endpoint", handler: s.handleListEndpoints},
		{method: "POST", pattern: "/api/v1/workspaces/{ws}/endpoints", summary: "Create an endpoint with its first version (asynchronous)", tag: "endpoints", out: "DeployResponse", handler: s.handleCreateEndpoint},
		{method: "GET", pattern: "/api/v1/workspaces/{ws}/endpoints/{ep}", summary: "Show an endpoint (metrics=true adds live stats and version comparisons)", tag: "endpoints", out: "Endpoint", handler: s.handleGetEndpoint},
		{method: "PATCH", pattern: "/api/v1/workspaces/{ws}/endpoints/{ep}", summary: "Update endpoint-level settings (auth, app insights, description, tags)", tag: "endpoints", out: "EndpointResponse", handler: s.handleUpdateEndpoint},
		{method: "DELETE", pattern: "/api/v1/workspaces/{ws}/endpoints/{ep}", summary: "Delete an endpoint and all its versions (asynchronous)", tag: "endpoints", out: "DeployResponse", handler: s.handleDeleteEndpoint},
		{method: "POST", pattern: "/api/v1/workspaces/{ws}/endpoints/{ep}/versions", summary: "Create a version (asynchronous)", tag: "endpoints", out: "DeployResponse", handler: s.handleCreateVersion},
		{method: "PATCH", pattern: "/api/v1/workspaces/{ws}/endpoints/{ep}/versions/{version}", summary: "Update a version's traffic, flags or deployment", tag: "endpoints", out: "EndpointResponse", handler: s.handleUpdateVersion},
		{method: "DELETE", pattern: "/api/v1/workspaces/{ws}/endpoints/{ep}/versions/{version}", summary: "Delete a version (not the default or the control)", tag: "endpoints", out: "DeployResponse", handler: s.handleDeleteVersion},
		{method: "POST", pattern: "/api/v1/workspaces/{ws}/endpoints/{ep}/versions/{version}/promote", summary: "Make a version the control and the default", tag: "endpoints", out: "EndpointResponse", handler: s.handlePromoteVersion},
		{method: "POST", pattern: "/api/v1/workspaces/{ws}/endpoints/{ep}/listkeys", summary: "Get the endpoint's keys", tag: "endpoints", out: "ServiceKeys", handler: s.handleEndpointKeys},
		{method: "POST", pattern: "/api/v1/workspaces/{ws}/endpoints/{ep}/regenerateKeys", summary: "Regenerate an endpoint key", tag: "endpoints", out: "ServiceKeys", handler: s.handleEndpointRegenKey},
		{method: "POST", pattern: "/api/v1/workspaces/{ws}/endpoints/{ep}/token", summary: "Get an access token (token-auth endpoints)", tag: "endpoints", out: "AccessToken", handler: s.handleEndpointToken},
		{method: "GET", pattern: "/api/v1/workspaces/{ws}/endpoints/{ep}/logs", summary: "Replica logs of every version or one (version=)", tag: "endpoints", out: "Logs", handler: s.handleEndpointLogs},
		{method: "GET", pattern: "/api/v1/workspaces/{ws}/computetargets", summary: "List compute targets", tag: "computetargets", out: "[]ComputeTarget", handler: s.handleListTargets},
		{method: "POST", pattern: "/api/v1/workspaces/{ws}/computetargets", summary: "Create a local compute target with a capacity budget", tag: "computetargets", out: "CreateTargetResponse", handler: s.handleCreateTarget},
		{method: "POST", pattern: "/api/v1/workspaces/{ws}/computetargets/attach", summary: "Attach a Kubernetes cluster as a compute target (validated before it is saved; installs the in-cluster front end)", tag: "computetargets", out: "CreateTargetResponse", handler: s.handleAttachTarget},
		{method: "POST", pattern: "/api/v1/workspaces/{ws}/computetargets/{target}/detach", summary: "Detach a Kubernetes target and remove what modelship created in the cluster (?force=true deletes its services first)", tag: "computetargets", handler: s.handleDetachTarget},
		{method: "GET", pattern: "/api/v1/workspaces/{ws}/computetargets/{target}", summary: "Show a compute target", tag: "computetargets", out: "ComputeTarget", handler: s.handleGetTarget},
		{method: "DELETE", pattern: "/api/v1/workspaces/{ws}/computetargets/{target}", summary: "Delete a compute target no service uses", tag: "computetargets", handler: s.handleDeleteTarget},
	}
}

// requireAdmin checks the bearer token in constant time.
func (s *Server) requireAdmin(next http.HandlerFunc) http.HandlerFunc {
	want := []byte(s.AdminToken)
	return func(w http.ResponseWriter, r *http.Request) {
		got, ok := bearer(r)
		if !ok || len(want) == 0 || subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="modelship"`)
			writeError(w, r, s.Log, modelship.Errorf(modelship.EUNAUTHORIZED, "missing or invalid bearer token; send Authorization: Bearer <admin token>"))
			return
		}
		next(w, r)
	}
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

// errorStatus maps error codes to HTTP statuses.
var errorStatus = map[string]int{
	modelship.EINVALID:      http.StatusBadRequest,
	modelship.EUNAUTHORIZED: http.StatusUnauthorized,
	modelship.EFORBIDDEN:    http.StatusForbidden,
	modelship.ENOTFOUND:     http.StatusNotFound,
	modelship.ECONFLICT:     http.StatusConflict,
	modelship.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	modelship.EUNSUPPORTED:  http.StatusUnsupportedMediaType,
	modelship.EINTERNAL:     http.StatusInternalServerError,
	modelship.EUNAVAILABLE:  http.StatusServiceUnavailable,
	modelship.ECANCELED:     499,
}

// StatusCode returns the HTTP status for an error code.
func StatusCode(code string) int {
	if s, ok := errorStatus[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// CodeForStatus returns the error code for an HTTP status (client side).
func CodeForStatus(status int) string {
	for code, s := range errorStatus {
		if s == status {
			return code
		}
	}
	if status >= 400 && status < 500 {
		return modelship.EINVALID
	}
	return modelship.EINTERNAL
}

var timeZero = time.Time{}

// ErrorBody is the JSON body of every error response.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail carries the code and the user-facing message.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	code := modelship.ErrorCode(err)
	if code == modelship.EINTERNAL {
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, StatusCode(code), ErrorBody{Error: ErrorDetail{Code: code, Message: modelship.ErrorMessage(err)}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// decodeJSON reads a small JSON body, rejecting unknown fields.
func decodeJSON(r *http.Request, v any) error {
	body := http.MaxBytesReader(nil, r.Body, 1<<20)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return modelship.Errorf(modelship.ETOOLARGE, "request body is over 1 MiB")
		}
		if err == io.EOF {
			return modelship.Errorf(modelship.EINVALID, "request body is empty; send a JSON object")
		}
		return modelship.Errorf(modelship.EINVALID, "request body is not valid JSON for this call: %v", err)
	}
	return nil
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) handleVersion(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"version": s.Version})
}
