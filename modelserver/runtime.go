// Package modelserver is the replica process of a deployed service: one HTTP
// server in front of one Runtime. It serves Azure ML's routes (GET / ->
// Healthy, GET|POST|OPTIONS /score, GET /swagger.json) and the Open Inference
// Protocol v2 (/v2, /v2/health/*, /v2/models/{name}[/versions/{v}][/ready|/infer]).
package modelserver

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/modelship/modelship/oip"
)

// ScoreRequest is one call of the Azure /score route (GET or POST).
type ScoreRequest struct {
	RequestID       string      // x-request-id (generated when absent)
	ClientRequestID string      // x-ms-client-request-id, may be empty
	Method          string      // "GET", "POST" (or "OPTIONS" for RawRequests runtimes)
	Host            string      // the Host header (Go keeps it out of Header)
	Path            string      // URL path as received, e.g. "/score"
	RawQuery        string      // query string without '?'
	Header          http.Header // request headers
	Body            []byte      // request body (POST)
}

// ScoreResponse is what the runtime answers. The HTTP layer adds the
// request-id headers and x-ms-run-fn-exec-ms.
type ScoreResponse struct {
	Status    int           // HTTP status
	Header    http.Header   // headers to send, Content-Type included
	Body      []byte        // body to send
	RunFailed bool          // adds "x-ms-run-function-failed: True"
	ExecTime  time.Duration // time spent in the user's run() (or the model call)
}

// ModelMetadata is OIP v2 model metadata.
type ModelMetadata = oip.ModelMetadata

// Runtime runs models for one replica. Implementations are safe for
// concurrent use and bound their own concurrency (a worker pool, sessions).
type Runtime interface {
	// Score handles the Azure /score route. The context carries the scoring
	// deadline; when it expires the runtime returns ErrScoringTimeout and
	// frees whatever was stuck (e.g. kills and replaces a Python worker).
	// A returned error (other than timeout) becomes a 500 with
	// {"message": ...}; user-level failures are returned as a ScoreResponse.
	Score(ctx context.Context, req *ScoreRequest) (*ScoreResponse, error)
	// Swagger returns the swagger document for version "2" or "3", or
	// ErrNoSwagger when the version is not supported.
	Swagger(ctx context.Context, version string) ([]byte, error)
	// Models lists the models served, for OIP metadata and readiness.
	Models() []ModelMetadata
	// Infer runs an OIP v2 inference on the named model (version may be
	// empty). Errors are *InferError (status + message) or plain errors (500).
	Infer(ctx context.Context, model, version string, req *oip.InferRequest) (*oip.InferResponse, error)
	// Ready reports whether the runtime can take requests.
	Ready() bool
	// Busy returns the number of requests being processed and waiting.
	Busy() (active, queued int)
	// Close stops the runtime, waiting for in-flight work until ctx ends.
	Close(ctx context.Context) error
}

// RawRequests is implemented by runtimes whose scoring function takes the
// raw HTTP request (a score.py with @rawhttp). Such a runtime also gets
// OPTIONS /score, as Azure's inference server passed it to run() (Azure's
// CORS sample answers pre-flights there), unless the server answers CORS
// pre-flights itself because CORS origins are configured.
type RawRequests interface {
	RawRequests() bool
}

// ErrScoringTimeout is returned by Score when the context deadline passed.
var ErrScoringTimeout = errors.New("scoring timeout")

// ErrNoSwagger is returned by Swagger for an unsupported version.
var ErrNoSwagger = errors.New("swagger version not supported")

// InferError is an OIP error with an HTTP status, e.g. 400 for a bad tensor
// or 404 for an unknown model.
type InferError struct {
	Status  int
	Message string
}

func (e *InferError) Error() string { return e.Message }
