package gateway_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/auth"
	"github.com/modelship/modelship/gateway"
)

// proxyBench is a trivial replica, a key-auth gateway in front of it, and
// a client with enough keep-alive connections.
type proxyBench struct {
	direct, through string
	client          *http.Client
	key             string
}

func newProxyBench(b *testing.B) *proxyBench {
	body := []byte(`{"result":[0.5]}`)
	rep := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	g := gateway.New(gateway.Config{AutoscaleInterval: -1})
	key := "bench-key"
	v := modelship.RouteVersion{Name: "svc", TrafficPercent: 100, MaxConcurrentRequestsPerContainer: 64,
		Replicas: []modelship.ReplicaEndpoint{{ID: "r", URL: rep.URL, Ready: true}}}
	g.Update(&modelship.RouteTable{Routes: []modelship.Route{{Kind: modelship.RouteService, Name: "svc",
		Auth: modelship.AuthKey, KeyHashes: []string{auth.HashKey(key)}, Versions: []modelship.RouteVersion{v}}}})
	front := httptest.NewServer(g)
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	b.Cleanup(func() {
		tr.CloseIdleConnections()
		front.Close()
		g.Close()
		rep.Close()
	})
	return &proxyBench{direct: rep.URL + "/score", through: front.URL + "/api/v1/service/svc/score", client: &http.Client{Transport: tr}, key: key}
}

const benchPayload = `{"data":[[1.0,2.0,3.0,4.0]]}`

func (p *proxyBench) call(tb testing.TB, url string) {
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(benchPayload))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+p.key)
	resp, err := p.client.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		tb.Fatalf("status %d", resp.StatusCode)
	}
}

// BenchmarkProxy compares one request through the gateway with one request
// straight to the replica (sequential, loopback).
func BenchmarkProxy(b *testing.B) {
	p := newProxyBench(b)
	for _, c := range []struct{ name, url string }{{"Direct", p.direct}, {"Gateway", p.through}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.call(b, c.url)
			}
		})
	}
}

// BenchmarkProxyParallel is the same under concurrent clients (throughput).
func BenchmarkProxyParallel(b *testing.B) {
	p := newProxyBench(b)
	for _, c := range []struct{ name, url string }{{"Direct", p.direct}, {"Gateway", p.through}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					p.call(b, c.url)
				}
			})
		})
	}
}

// BenchmarkOverhead measures what issue 4 asks: the maximum rate direct and
// through the gateway (8 clients, 1.5 s each), then the latency of each at
// half the lower of the two maximum rates (paced, 2 s each), reporting p50/p99 and
// the gateway's added p50/p99. Run it with -benchtime 1x.
func BenchmarkOverhead(b *testing.B) {
	p := newProxyBench(b)
	for b.Loop() {
		maxDirect := maxRate(b, p, p.direct)
		maxGateway := maxRate(b, p, p.through)
		rate := min(maxDirect, maxGateway) / 2
		d50, d99 := pacedLatency(b, p, p.direct, rate)
		g50, g99 := pacedLatency(b, p, p.through, rate)
		b.ReportMetric(maxDirect, "direct-rps")
		b.ReportMetric(maxGateway, "gateway-rps")
		b.ReportMetric(100*maxGateway/maxDirect, "gateway-%-of-direct")
		b.ReportMetric(rate, "paced-rps")
		b.ReportMetric(float64(d50.Microseconds()), "direct-p50-µs")
		b.ReportMetric(float64(d99.Microseconds()), "direct-p99-µs")
		b.ReportMetric(float64(g50.Microseconds()), "gateway-p50-µs")
		b.ReportMetric(float64(g99.Microseconds()), "gateway-p99-µs")
		b.ReportMetric(float64((g50 - d50).Microseconds()), "added-p50-µs")
		b.ReportMetric(float64((g99 - d99).Microseconds()), "added-p99-µs")
	}
}

func maxRate(b *testing.B, p *proxyBench, url string) float64 {
	const clients, dur = 8, 1500 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	start := time.Now()
	for range clients {
		wg.Go(func() {
			n := 0
			for ctx.Err() == nil {
				p.call(b, url)
				n++
			}
			mu.Lock()
			total += n
			mu.Unlock()
		})
	}
	wg.Wait()
	return float64(total) / time.Since(start).Seconds()
}

// pacedLatency sends requests at rate (open loop, bounded to 2 s and
// 40,000 requests) and returns the p50 and p99 latency.
func pacedLatency(b *testing.B, p *proxyBench, url string, rate float64) (time.Duration, time.Duration) {
	n := min(int(rate*2), 40000)
	interval := time.Duration(float64(time.Second) / rate)
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	start := time.Now()
	for i := range n {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		sem <- struct{}{}
		wg.Go(func() {
			t0 := time.Now()
			p.call(b, url)
			lat[i] = time.Since(t0)
			<-sem
		})
	}
	wg.Wait()
	slices.Sort(lat)
	return lat[n/2], lat[n*99/100]
}
