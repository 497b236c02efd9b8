package telemetry

import (
	"bytes"

	"github.com/modelship/modelship/modelserver"
)

// skipped are the routes without telemetry: liveness/readiness probes
// and metric scrapes (Azure skips "/").
var skipped = map[string]bool{"/": true, "/metrics": true, "/v2/health/live": true, "/v2/health/ready": true}

// Observe records ev; use it as, or inside,
// modelserver.ServerConfig.OnRequest. With payloads it keeps the /score
// request and response bodies up to MaxPayload each (copied). It never
// blocks.
func (w *Writer) Observe(ev *modelserver.RequestEvent, payloads bool) {
	if skipped[ev.Route] {
		return
	}
	rec := &Record{
		Time: ev.Start, Duration: ev.Duration, Method: ev.Method, Path: ev.Path,
		RequestID: ev.RequestID, ClientRequestID: ev.ClientRequestID, Status: ev.Status,
	}
	if tp := ev.Header["Traceparent"]; len(tp) > 0 {
		rec.TraceParent = tp[0]
	}
	if payloads {
		if len(ev.RequestBody) <= MaxPayload {
			rec.Input = bytes.Clone(ev.RequestBody)
		}
		if len(ev.ResponseBody) <= MaxPayload {
			rec.Prediction = bytes.Clone(ev.ResponseBody)
		}
	}
	w.Record(rec)
}
