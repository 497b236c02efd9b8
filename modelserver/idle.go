package modelserver

import (
	"context"
	"runtime/debug"
	"time"

	"github.com/modelship/modelship/internal/memtrim"
)

// ReleaseMemoryWhenIdle returns freed heap memory to the operating system
// and drops the pages of mapped files (the executable, ONNX Runtime's
// library) that the traffic faulted in (internal/memtrim), once s has
// answered scoring requests and then none for idleFor, so an idle
// replica's resident memory goes back down instead of staying at its peak.
// It checks s.Activity every second and stops when ctx ends.
//
// The answered count, not only the requests in flight, tells traffic from
// idleness: an ONNX inference lasts microseconds and is almost never in
// flight at the moment of a check.
func ReleaseMemoryWhenIdle(ctx context.Context, s *Server, idleFor time.Duration) {
	releaseWhenIdle(ctx, s.Activity, idleFor, time.Second, releaseMemory)
}

func releaseMemory() {
	debug.FreeOSMemory()
	memtrim.ReleaseFilePages()
}

// releaseWhenIdle calls release once per burst of traffic, after activity
// has reported no request in flight and no new answer for idleFor.
func releaseWhenIdle(ctx context.Context, activity func() (int64, uint64), idleFor, every time.Duration, release func()) {
	t := time.NewTicker(every)
	defer t.Stop()
	dirty := false
	var idleSince time.Time
	_, last := activity()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			inFlight, answered := activity()
			if inFlight > 0 || answered != last {
				last = answered
				dirty, idleSince = true, time.Time{}
				continue
			}
			if idleSince.IsZero() {
				idleSince = now
			}
			if dirty && now.Sub(idleSince) >= idleFor {
				release()
				dirty = false
			}
		}
	}
}
