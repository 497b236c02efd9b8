package gateway

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/modelship/modelship"
)

type fakeScaler struct {
	mu    sync.Mutex
	calls []int
}

func (f *fakeScaler) SetReplicas(_ context.Context, workspace, route, version string, n int) error {
	if workspace != "ws" || route != "svc" || version != "v1" {
		return fmt.Errorf("unexpected target %s/%s/%s", workspace, route, version)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, n)
	return nil
}

func (f *fakeScaler) last() (int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		return 0, 0
	}
	return f.calls[len(f.calls)-1], len(f.calls)
}

func autoscaleTable(replicas int) *modelship.RouteTable {
	v := modelship.RouteVersion{
		Name: "v1", TrafficPercent: 100, MaxConcurrentRequestsPerContainer: 1,
		Autoscale: &modelship.AutoscaleSettings{
			MinReplicas: 1, MaxReplicas: 6, RefreshPeriod: time.Second,
			TargetUtilization: 70, ScaleDownDelay: 10 * time.Second,
		},
	}
	for i := range replicas {
		v.Replicas = append(v.Replicas, modelship.ReplicaEndpoint{ID: fmt.Sprint("r", i), URL: fmt.Sprintf("http://127.0.0.1:%d", 1000+i), Ready: true})
	}
	return &modelship.RouteTable{Routes: []modelship.Route{{Kind: modelship.RouteService, Workspace: "ws", Name: "svc", Auth: modelship.AuthNone, Versions: []modelship.RouteVersion{v}}}}
}

// setBusy marks the first n replicas of svc/v1 as busy.
func setBusy(g *Gateway, n int) {
	v := g.table.Load().routes["svc"].byName["v1"]
	for i, r := range v.ready {
		if i < n {
			r.inflight.Store(1)
		} else {
			r.inflight.Store(0)
		}
	}
}

func TestAutoscaler(t *testing.T) {
	sc := &fakeScaler{}
	g := New(Config{Scaler: sc, AutoscaleInterval: -1, Registry: prometheus.NewRegistry()})
	defer g.Close()
	ctx := context.Background()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	// tick runs one second of 100 ms samples.
	tick := func() {
		for range 10 {
			now = now.Add(100 * time.Millisecond)
			g.autoscaleTick(ctx, now)
		}
	}

	g.Update(autoscaleTable(1))
	setBusy(g, 1)
	tick()
	if n, calls := sc.last(); n != 2 || calls != 1 {
		t.Fatalf("one busy replica of one: SetReplicas(%d) after %d calls, want 2 (ceil(1/0.7))", n, calls)
	}
	st, ok := g.ScaleStatus("svc", "v1")
	if !ok || st.Action != "up" || st.Desired != 2 || st.Utilization < 99 {
		t.Fatalf("status %+v", st)
	}
	// The control plane has not added the replica yet: no repeated call.
	tick()
	if _, calls := sc.last(); calls != 1 {
		t.Fatalf("%d calls while the requested replica starts", calls)
	}

	// Both replicas busy, with queued requests: scale to cover the queue.
	g.Update(autoscaleTable(2))
	setBusy(g, 2)
	g.table.Load().routes["svc"].byName["v1"].st.queued.Store(2)
	tick()
	if n, _ := sc.last(); n != 6 {
		t.Fatalf("2 busy + 2 queued: SetReplicas(%d), want ceil(4/0.7)=6", n)
	}
	g.table.Load().routes["svc"].byName["v1"].st.queued.Store(0)

	// Six replicas, one busy: utilization 17 % < 70 %; desired 2; down
	// only after 10 s low.
	g.Update(autoscaleTable(6))
	setBusy(g, 1)
	_, calls := sc.last()
	for i := range 9 {
		tick()
		if _, c := sc.last(); c != calls {
			t.Fatalf("scaled down after %d s, before the 10 s delay", i+1)
		}
		if st, _ := g.ScaleStatus("svc", "v1"); st.Action != "hold" {
			t.Fatalf("status %+v", st)
		}
	}
	tick()
	tick()
	st, _ = g.ScaleStatus("svc", "v1")
	t.Logf("%+v", st)
	if n, c := sc.last(); n != 2 || c != calls+1 {
		t.Fatalf("after the delay: SetReplicas(%d), %d calls; want 2", n, c)
	}
	// A burst resets the low window.
	g.Update(autoscaleTable(2))
	setBusy(g, 0)
	for range 5 {
		tick()
	}
	setBusy(g, 2)
	tick() // 2/2 busy -> up to 3 at once
	if n, _ := sc.last(); n != 3 {
		t.Fatalf("burst: SetReplicas(%d), want 3", n)
	}
	// Never below min, never above max.
	g.Update(autoscaleTable(0))
	setBusy(g, 0)
	for range 12 {
		tick()
	}
	if n, _ := sc.last(); n != 1 {
		t.Fatalf("idle with no replicas: SetReplicas(%d), want min 1", n)
	}
}
