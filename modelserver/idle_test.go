package modelserver

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestReleaseWhenIdle(t *testing.T) {
	var inFlight atomic.Int64
	var answered atomic.Uint64
	released := make(chan time.Time, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		releaseWhenIdle(ctx, func() (int64, uint64) { return inFlight.Load(), answered.Load() },
			50*time.Millisecond, 10*time.Millisecond, func() { released <- time.Now() })
		close(done)
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			t.Fatal("did not stop with its context")
		}
	}()

	// No traffic yet: nothing to give back.
	select {
	case <-released:
		t.Fatal("released before any traffic")
	case <-time.After(200 * time.Millisecond):
	}
	// Short requests, never in flight at a check: the answered count
	// alone marks the traffic (an ONNX replica's case).
	for range 5 {
		answered.Add(100)
		time.Sleep(15 * time.Millisecond)
	}
	quiet := time.Now()
	select {
	case at := <-released:
		if d := at.Sub(quiet); d < 40*time.Millisecond {
			t.Fatalf("released %v after the traffic stopped, before the idle time", d)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("not released after the traffic stopped")
	}
	// Once per burst: idle on, no second release.
	select {
	case <-released:
		t.Fatal("released twice for one burst")
	case <-time.After(200 * time.Millisecond):
	}
	// A long request in flight holds the release off.
	inFlight.Store(1)
	answered.Add(1)
	select {
	case <-released:
		t.Fatal("released while a request was in flight")
	case <-time.After(200 * time.Millisecond):
	}
	inFlight.Store(0)
	select {
	case <-released:
	case <-time.After(2 * time.Second):
		t.Fatal("not released after the long request ended")
	}
}
