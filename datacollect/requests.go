package datacollect

import (
	"bytes"
	"math/rand/v2"

	"github.com/modelship/modelship/modelserver"
)

// RequestSampler feeds a sampled share of the /score requests of a
// replica to a Writer (the v2 data collector's request/response
// collection). Use Observe as, or inside, modelserver.ServerConfig.OnRequest.
type RequestSampler struct {
	Writer *Writer
	// Rate is the share of requests kept, 0 to 1 (v2's sampling_rate).
	Rate float64
}

// Observe collects ev when it is a /score request picked by the sampler.
// It copies the bodies and never blocks.
func (s *RequestSampler) Observe(ev *modelserver.RequestEvent) {
	if ev.Route != "/score" || ev.Method == "OPTIONS" || s.Rate <= 0 {
		return
	}
	if s.Rate < 1 && rand.Float64() >= s.Rate {
		return
	}
	s.Writer.CollectRequest(Request{
		Time: ev.Start, RequestID: ev.RequestID, ClientRequestID: ev.ClientRequestID,
		Status: ev.Status, Duration: ev.Duration,
		Request: bytes.Clone(ev.RequestBody), Response: bytes.Clone(ev.ResponseBody),
	})
}
