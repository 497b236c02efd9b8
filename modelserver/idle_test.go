package modelserver

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestReleaseMemoryWhenIdleStops(t *testing.T) {
	var calls atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		ReleaseMemoryWhenIdle(ctx, func() (int, int) {
			if calls.Add(1) == 1 {
				return 1, 0 // busy once, then idle
			}
			return 0, 0
		}, 10*time.Millisecond)
		close(done)
	}()
	time.Sleep(2500 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("did not stop with its context")
	}
	if calls.Load() < 2 {
		t.Fatalf("busy sampled %d times", calls.Load())
	}
}
