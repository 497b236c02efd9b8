package telemetry

import (
	"encoding/json"
	"time"
)

// GatewayRecord is one scoring request as seen by the front end (gateway),
// written with FilePrefix "gateway" under <Dir>/<workspace>/<route>/. The
// Writer's Service is the route (service or endpoint) name.
type GatewayRecord struct {
	Time            time.Time     // when the request arrived at the front end
	Duration        time.Duration // until the response was sent
	QueueTime       time.Duration // waiting for a free replica
	Method          string        // HTTP method
	Path            string        // URL path
	RequestID       string        // x-request-id (the caller's, or generated)
	ClientRequestID string        // x-ms-client-request-id
	TraceID         string        // W3C trace id (32 hex digits), when traced
	Kind            string        // "service" or "endpoint"
	Version         string        // endpoint version that served it (the service name for a service)
	Models          []string      // name:version of the version's models
	Replica         string        // replica id; empty when none was reached
	Status          int           // HTTP status answered (499: the caller went away)
}

// gatewayLine is the JSON form of a GatewayRecord.
type gatewayLine struct {
	Time            string   `json:"time"`
	Name            string   `json:"name"`
	Method          string   `json:"httpMethod"`
	RequestID       string   `json:"requestId"`
	ClientRequestID string   `json:"clientRequestId,omitempty"`
	TraceID         string   `json:"traceId,omitempty"`
	Workspace       string   `json:"workspaceName"`
	Kind            string   `json:"routeKind"`
	Route           string   `json:"route"`
	Version         string   `json:"version"`
	Models          []string `json:"models"`
	Replica         string   `json:"replica,omitempty"`
	Status          int      `json:"resultCode"`
	Success         bool     `json:"success"`
	DurationMS      float64  `json:"durationMs"`
	QueueMS         float64  `json:"queueMs"`
}

func (rec *GatewayRecord) at() time.Time { return rec.Time }

func (rec *GatewayRecord) marshal(w *Writer, t time.Time) ([]byte, error) {
	models := rec.Models
	if models == nil {
		models = w.models
	}
	return json.Marshal(&gatewayLine{
		Time: t.Format(time.RFC3339Nano), Name: rec.Path, Method: rec.Method,
		RequestID: rec.RequestID, ClientRequestID: rec.ClientRequestID, TraceID: rec.TraceID,
		Workspace: w.cfg.Workspace, Kind: rec.Kind, Route: w.cfg.Service, Version: rec.Version,
		Models: models, Replica: rec.Replica,
		Status: rec.Status, Success: rec.Status > 0 && rec.Status < 400,
		DurationMS: float64(rec.Duration.Microseconds()) / 1000,
		QueueMS:    float64(rec.QueueTime.Microseconds()) / 1000,
	})
}
