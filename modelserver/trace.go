package modelserver

import (
	"context"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/modelship/modelship/tracing"
)

// Span attribute keys of the replica's spans.
const (
	attrRequestID = attribute.Key("modelship.request_id")
	attrModel     = attribute.Key("modelship.model")
	attrScoreMS   = attribute.Key("modelship.score_ms") // runtime call: worker wait + run()
	attrRunMS     = attribute.Key("modelship.run_ms")   // run() (or the model call) alone
	attrRunFailed = attribute.Key("modelship.run_failed")
	attrStatus    = attribute.Key("http.response.status_code")
	attrMethod    = attribute.Key("http.request.method")
)

// span is the replica's span of one scoring request.
type span struct {
	span   trace.Span
	ctx    context.Context // carries span
	header http.Header     // the request's headers with span's traceparent, for the runtime
}

// startSpan starts the span name as a child of the caller's traceparent
// (the gateway's span) and prepares the headers the runtime sees, whose
// traceparent is the new span's.
func (s *Server) startSpan(r *http.Request, name, requestID string) *span {
	parent := tracing.Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	attrs := []attribute.KeyValue{attrMethod.String(r.Method)}
	if requestID != "" {
		attrs = append(attrs, attrRequestID.String(requestID))
	}
	ctx, sp := s.tracer.Start(parent, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
	h := r.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	tracing.Propagator.Inject(ctx, propagation.HeaderCarrier(h))
	return &span{span: sp, ctx: ctx, header: h}
}

// scored records the runtime's Score call.
func (sp *span) scored(elapsed time.Duration, resp *ScoreResponse, err error) {
	attrs := []attribute.KeyValue{attrScoreMS.Float64(ms(elapsed))}
	if resp != nil {
		attrs = append(attrs, attrRunMS.Float64(ms(resp.ExecTime)))
		if resp.RunFailed {
			attrs = append(attrs, attrRunFailed.Bool(true))
		}
	}
	sp.span.SetAttributes(attrs...)
	if err != nil {
		sp.span.RecordError(err)
	}
}

// inferred records the runtime's Infer call.
func (sp *span) inferred(elapsed time.Duration, err error) {
	sp.span.SetAttributes(attrScoreMS.Float64(ms(elapsed)))
	if err != nil {
		sp.span.RecordError(err)
	}
}

// end ends the span with the status answered.
func (sp *span) end(status int) {
	sp.span.SetAttributes(attrStatus.Int(status))
	if status >= 500 {
		sp.span.SetStatus(codes.Error, http.StatusText(status))
	}
	sp.span.End()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
