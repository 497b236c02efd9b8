package modelserver

import (
	"context"
	"runtime/debug"
	"time"

	"github.com/modelship/modelship/internal/memtrim"
)

// ReleaseMemoryWhenIdle returns freed heap memory to the operating system,
// and drops the executable's pages the traffic faulted in (internal/memtrim),
// once a replica has been idle (no request active or queued) for idleFor
// after serving traffic, so an idle replica's resident memory goes back
// down instead of staying at its peak. It samples busy every second and
// stops when ctx ends.
func ReleaseMemoryWhenIdle(ctx context.Context, busy func() (active, queued int), idleFor time.Duration) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	dirty := false
	var idleSince time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			a, q := busy()
			if a+q > 0 {
				dirty, idleSince = true, time.Time{}
				continue
			}
			if idleSince.IsZero() {
				idleSince = now
			}
			if dirty && now.Sub(idleSince) >= idleFor {
				debug.FreeOSMemory()
				memtrim.ReleaseExecutablePages()
				dirty = false
			}
		}
	}
}
