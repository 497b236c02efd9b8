package gateway_test

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/auth"
	"github.com/modelship/modelship/gateway"
)

// fakeReplica is a model server replica on loopback.
type fakeReplica struct {
	*httptest.Server
	name    string
	hits    atomic.Int64
	mu      sync.Mutex
	last    http.Header
	handler atomic.Pointer[http.HandlerFunc]
}

func newReplica(t testing.TB, name string) *fakeReplica {
	t.Helper()
	f := &fakeReplica{name: name}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		f.mu.Lock()
		f.last = r.Header.Clone()
		f.mu.Unlock()
		if h := f.handler.Load(); h != nil {
			(*h)(w, r)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("x-replica", name)
		_, _ = w.Write([]byte(`"` + name + `"`))
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeReplica) handle(h http.HandlerFunc) { f.handler.Store(&h) }

func (f *fakeReplica) lastHeader() http.Header {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

func (f *fakeReplica) endpoint() modelship.ReplicaEndpoint {
	return modelship.ReplicaEndpoint{ID: f.name, URL: f.URL, Ready: true}
}

// harness is a gateway behind a loopback server and a client for it.
type harness struct {
	g      *gateway.Gateway
	srv    *httptest.Server
	client *http.Client
	reg    *prometheus.Registry
}

func newHarness(t testing.TB, cfg gateway.Config) *harness {
	t.Helper()
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.AutoscaleInterval == 0 {
		cfg.AutoscaleInterval = -1
	}
	g := gateway.New(cfg)
	srv := httptest.NewServer(g)
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	h := &harness{g: g, srv: srv, client: &http.Client{Transport: tr, Timeout: 10 * time.Second}, reg: cfg.Registry}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		srv.Close()
		g.Close()
	})
	return h
}

type result struct {
	status int
	header http.Header
	body   string
}

func (h *harness) do(t testing.TB, method, path string, header map[string]string, body string) result {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{resp.StatusCode, resp.Header, string(bytes.TrimSpace(b))}
}

func score(h *harness, t testing.TB, kind, name string, header map[string]string) result {
	t.Helper()
	return h.do(t, http.MethodPost, "/api/v1/"+kind+"/"+name+"/score", header, `{"data":[[1,2]]}`)
}

func bearerHeader(cred string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + cred}
}

// version builds a RouteVersion.
func version(name string, traffic float64, reps ...*fakeReplica) modelship.RouteVersion {
	v := modelship.RouteVersion{
		Name: name, TrafficPercent: traffic,
		MaxConcurrentRequestsPerContainer: 1,
		MaxQueueWait:                      2 * time.Second,
		ScoringTimeout:                    5 * time.Second,
	}
	for _, r := range reps {
		v.Replicas = append(v.Replicas, r.endpoint())
	}
	return v
}

func openService(name string, v modelship.RouteVersion) modelship.Route {
	return modelship.Route{Kind: modelship.RouteService, Workspace: "ws", Name: name, Auth: modelship.AuthNone, Versions: []modelship.RouteVersion{v}}
}

// lockedRand is a deterministic, concurrency-safe Config.Rand.
func lockedRand(seed uint64) func() float64 {
	var mu sync.Mutex
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return func() float64 {
		mu.Lock()
		defer mu.Unlock()
		return r.Float64()
	}
}

func mustKey(t testing.TB) string {
	t.Helper()
	k, err := auth.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mathrandN(n int) int { return rand.IntN(n) }
