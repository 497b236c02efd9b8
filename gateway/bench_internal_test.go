package gateway

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/modelship/modelship"
)

func sixVersionGateway(b *testing.B) *Gateway {
	g := New(Config{AutoscaleInterval: -1, Registry: prometheus.NewRegistry()})
	b.Cleanup(func() { g.Close() })
	var vs []modelship.RouteVersion
	for i, share := range []float64{5, 10, 15, 20, 25, 25} {
		v := modelship.RouteVersion{Name: fmt.Sprint("v", i), TrafficPercent: share, MaxConcurrentRequestsPerContainer: 1 << 20}
		for j := range 3 {
			v.Replicas = append(v.Replicas, modelship.ReplicaEndpoint{ID: fmt.Sprint("r", j), URL: fmt.Sprintf("http://127.0.0.1:%d", 2000+10*i+j), Ready: true})
		}
		vs = append(vs, v)
	}
	vs[0].MirrorPercent = 1
	g.Update(&modelship.RouteTable{Routes: []modelship.Route{{Kind: modelship.RouteEndpoint, Name: "ep", Auth: modelship.AuthNone, Versions: vs}}})
	return g
}

// BenchmarkSelect is the routing decision of one request with six
// versions: table load, route lookup, weighted version choice, mirror
// draw, least-outstanding replica slot taken and given back, and the
// statistics recorded.
func BenchmarkSelect(b *testing.B) {
	g := sixVersionGateway(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rt := g.table.Load().routes["ep"]
			v, _ := rt.versionFor("", "", rand.Float64)
			for _, m := range rt.mirrors {
				_ = g.rand() < m.mirror
			}
			r := v.tryAcquire()
			if r == nil {
				b.Fatal("no slot")
			}
			v.st.release(r)
			v.st.record(200, 300*time.Microsecond)
		}
	})
}

// BenchmarkSelectVersion is the weighted choice alone.
func BenchmarkSelectVersion(b *testing.B) {
	g := sixVersionGateway(b)
	rt := g.table.Load().routes["ep"]
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if v, _ := rt.versionFor("", "", rand.Float64); v == nil {
				b.Fatal("nil")
			}
		}
	})
}

// TestSelectLatency checks the bound: selection p50 <= 5 µs with
// six versions, measured per call over a bounded count.
func TestSelectLatency(t *testing.T) {
	g := New(Config{AutoscaleInterval: -1, Registry: prometheus.NewRegistry()})
	defer g.Close()
	var vs []modelship.RouteVersion
	for i, share := range []float64{5, 10, 15, 20, 25, 25} {
		v := modelship.RouteVersion{Name: fmt.Sprint("v", i), TrafficPercent: share, MaxConcurrentRequestsPerContainer: 1 << 20}
		v.Replicas = []modelship.ReplicaEndpoint{{ID: "r", URL: fmt.Sprintf("http://127.0.0.1:%d", 3000+i), Ready: true}}
		vs = append(vs, v)
	}
	g.Update(&modelship.RouteTable{Routes: []modelship.Route{{Kind: modelship.RouteEndpoint, Name: "ep", Auth: modelship.AuthNone, Versions: vs}}})
	const n = 20000
	d := make([]time.Duration, n)
	for i := range n {
		start := time.Now()
		rt := g.table.Load().routes["ep"]
		v, _ := rt.versionFor("", "", rand.Float64)
		r := v.tryAcquire()
		v.st.release(r)
		d[i] = time.Since(start)
	}
	p50 := percentile(d, 0.5)
	t.Logf("selection p50 %v p99 %v", p50, percentile(d, 0.99))
	if p50 > 5*time.Microsecond {
		t.Fatalf("selection p50 %v > 5µs", p50)
	}
}

func percentile(d []time.Duration, q float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1))]
}
