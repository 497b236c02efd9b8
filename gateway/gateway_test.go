package gateway_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/auth"
	"github.com/modelship/modelship/gateway"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestAuthMatrix(t *testing.T) {
	rep := newReplica(t, "r1")
	h := newHarness(t, gateway.Config{})
	primary, secondary, other := mustKey(t), mustKey(t), mustKey(t)
	_, sk, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := auth.NewTokenSigner(sk, nil)
	_, strangerKey, _ := ed25519.GenerateKey(rand.Reader)
	stranger, _ := auth.NewTokenSigner(strangerKey, nil)

	keyRoute := openService("keysvc", version("keysvc", 100, rep))
	keyRoute.Auth = modelship.AuthKey
	keyRoute.KeyHashes = []string{auth.HashKey(primary), auth.HashKey(secondary)}
	tokRoute := openService("toksvc", version("toksvc", 100, rep))
	tokRoute.Auth, tokRoute.TokenAudience = modelship.AuthToken, "ws/toksvc"
	tokRoute2 := openService("toksvc2", version("toksvc2", 100, rep))
	tokRoute2.Auth, tokRoute2.TokenAudience = modelship.AuthToken, "ws/toksvc2"
	openRoute := openService("opensvc", version("opensvc", 100, rep))
	table := &modelship.RouteTable{
		Generation:      1,
		Routes:          []modelship.Route{keyRoute, tokRoute, tokRoute2, openRoute},
		TokenPublicKeys: signer.PublicKeys(),
	}
	h.g.Update(table)

	good, _ := signer.Issue("ws/toksvc", time.Hour)
	otherSvc, _ := signer.Issue("ws/toksvc2", time.Hour)
	expired, _ := signer.IssueAt("ws/toksvc", time.Hour, time.Now().Add(-3*time.Hour))
	forged, _ := stranger.Issue("ws/toksvc", time.Hour)
	parts := strings.Split(good.AccessToken, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), "ws/toksvc", "ws/toksvc2", 1))) + "." + parts[2]

	tests := []struct {
		name   string
		route  string
		header map[string]string
		want   int
	}{
		{"Missing", "keysvc", nil, 401},
		{"MalformedScheme", "keysvc", map[string]string{"Authorization": "Basic " + primary}, 401},
		{"EmptyBearer", "keysvc", map[string]string{"Authorization": "Bearer "}, 401},
		{"WrongKey", "keysvc", bearerHeader(other), 401},
		{"PrimaryKey", "keysvc", bearerHeader(primary), 200},
		{"SecondaryKey", "keysvc", bearerHeader(secondary), 200},
		{"LowercaseScheme", "keysvc", map[string]string{"Authorization": "bearer " + primary}, 200},
		{"TokenOnKeyRoute", "keysvc", bearerHeader(good.AccessToken), 401},
		{"Token", "toksvc", bearerHeader(good.AccessToken), 200},
		{"TokenAgainFromCache", "toksvc", bearerHeader(good.AccessToken), 200},
		{"KeyOnTokenRoute", "toksvc", bearerHeader(primary), 401},
		{"ExpiredToken", "toksvc", bearerHeader(expired.AccessToken), 401},
		{"TokenForAnotherService", "toksvc", bearerHeader(otherSvc.AccessToken), 401},
		{"CachedTokenForAnotherService", "toksvc2", bearerHeader(good.AccessToken), 401},
		{"TamperedToken", "toksvc", bearerHeader(tampered), 401},
		{"TokenFromAnotherSigner", "toksvc", bearerHeader(forged.AccessToken), 401},
		{"MissingOnTokenRoute", "toksvc", nil, 401},
		{"OpenNoHeader", "opensvc", nil, 200},
		{"OpenWithGarbage", "opensvc", bearerHeader("whatever"), 200},
	}
	var unauthorizedBody string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := score(h, t, "service", tt.route, tt.header)
			if res.status != tt.want {
				t.Fatalf("status %d, want %d (%s)", res.status, tt.want, res.body)
			}
			if tt.want == 401 {
				if !strings.HasPrefix(res.header.Get("WWW-Authenticate"), "Bearer") {
					t.Fatalf("WWW-Authenticate = %q", res.header.Get("WWW-Authenticate"))
				}
				if unauthorizedBody == "" {
					unauthorizedBody = res.body
				} else if res.body != unauthorizedBody {
					t.Fatalf("401 bodies differ: %q vs %q", res.body, unauthorizedBody)
				}
			}
		})
	}
	if got := rep.lastHeader().Get("Authorization"); got != "" {
		t.Fatalf("replica saw the credential %q", got)
	}

	t.Run("OldKeyAfterRegen", func(t *testing.T) {
		newPrimary := mustKey(t)
		keyRoute.KeyHashes = []string{auth.HashKey(newPrimary), auth.HashKey(secondary)}
		table.Routes[0] = keyRoute
		table.Generation++
		h.g.Update(table)
		if res := score(h, t, "service", "keysvc", bearerHeader(primary)); res.status != 401 {
			t.Fatalf("old primary: %d", res.status)
		}
		if res := score(h, t, "service", "keysvc", bearerHeader(newPrimary)); res.status != 200 {
			t.Fatalf("new primary: %d", res.status)
		}
	})
	t.Run("PreviousSigningKeyAfterRotation", func(t *testing.T) {
		before, _ := signer.Issue("ws/toksvc2", time.Hour)
		if err := signer.Rotate(); err != nil {
			t.Fatal(err)
		}
		table.TokenPublicKeys = signer.PublicKeys()
		h.g.Update(table)
		if res := score(h, t, "service", "toksvc2", bearerHeader(before.AccessToken)); res.status != 200 {
			t.Fatalf("token signed before rotation: %d", res.status)
		}
		signer.Rotate()
		table.TokenPublicKeys = signer.PublicKeys()
		h.g.Update(table)
		if res := score(h, t, "service", "toksvc2", bearerHeader(before.AccessToken)); res.status != 401 {
			t.Fatalf("token from two rotations ago (cached before): %d", res.status)
		}
	})
}

func TestRoutingBasics(t *testing.T) {
	rep := newReplica(t, "r1")
	rep.handle(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/swagger.json":
			w.Write([]byte(`{"swagger":"2.0"}`))
		case r.Method == http.MethodOptions:
			w.WriteHeader(200)
		default:
			io.Copy(io.Discard, r.Body)
			w.Header().Set("x-echo-query", r.URL.RawQuery)
			w.Write([]byte(`"ok"`))
		}
	})
	h := newHarness(t, gateway.Config{})
	svc := openService("svc", version("svc", 100, rep))
	svc.Auth = modelship.AuthKey
	svc.KeyHashes = []string{auth.HashKey("k")}
	h.g.Update(&modelship.RouteTable{Routes: []modelship.Route{svc}})

	tests := []struct {
		name, method, path string
		header             map[string]string
		want               int
		body               string
	}{
		{"Healthy", "GET", "/", nil, 200, "Healthy"},
		{"UnknownService", "POST", "/api/v1/service/nope/score", bearerHeader("k"), 404, ""},
		{"ServiceUnderEndpointPath", "POST", "/api/v1/endpoint/svc/score", bearerHeader("k"), 404, ""},
		{"UnknownPath", "GET", "/api/v1/service/svc/other", nil, 404, ""},
		{"Swagger", "GET", "/api/v1/service/svc/swagger.json", bearerHeader("k"), 200, `{"swagger":"2.0"}`},
		{"OptionsWithoutAuth", "OPTIONS", "/api/v1/service/svc/score", nil, 200, ""},
		{"GetScoreWithQuery", "GET", "/api/v1/service/svc/score?a=1&b=2", bearerHeader("k"), 200, `"ok"`},
		{"DeleteNotAllowed", "DELETE", "/api/v1/service/svc/score", bearerHeader("k"), 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := h.do(t, tt.method, tt.path, tt.header, "")
			if res.status != tt.want {
				t.Fatalf("status %d, want %d: %s", res.status, tt.want, res.body)
			}
			if tt.body != "" && res.body != tt.body {
				t.Fatalf("body %q, want %q", res.body, tt.body)
			}
			if tt.want == 404 && tt.path != "/" {
				var m map[string]string
				if json.Unmarshal([]byte(res.body), &m) != nil || m["message"] == "" {
					t.Fatalf("404 body %q is not {\"message\": ...}", res.body)
				}
			}
		})
	}
	res := h.do(t, "GET", "/api/v1/service/svc/score?a=1&b=2", bearerHeader("k"), "")
	if res.header.Get("x-echo-query") != "a=1&b=2" {
		t.Fatalf("query not forwarded: %q", res.header.Get("x-echo-query"))
	}
}

func TestRequestIDsAndTrace(t *testing.T) {
	rep := newReplica(t, "r1")
	h := newHarness(t, gateway.Config{})
	h.g.Update(&modelship.RouteTable{Routes: []modelship.Route{openService("svc", version("svc", 100, rep))}})

	res := score(h, t, "service", "svc", nil)
	id := res.header.Get("x-request-id")
	if len(id) != 36 || res.header.Get("x-ms-request-id") != id || rep.lastHeader().Get("x-request-id") != id {
		t.Fatalf("generated request id %q not propagated: response %v, replica %v", id, res.header, rep.lastHeader())
	}
	tp := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	res = score(h, t, "service", "svc", map[string]string{
		"x-request-id": "abc", "x-ms-client-request-id": "client-1", "traceparent": tp,
	})
	seen := rep.lastHeader()
	if res.header.Get("x-request-id") != "abc" || res.header.Get("x-ms-client-request-id") != "client-1" ||
		seen.Get("x-request-id") != "abc" || seen.Get("x-ms-client-request-id") != "client-1" || seen.Get("traceparent") != tp {
		t.Fatalf("ids: response %v, replica %v", res.header, seen)
	}
}

func TestErrorMapping(t *testing.T) {
	slow := newReplica(t, "slow")
	release := make(chan struct{})
	slow.handle(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.Write([]byte(`"slow"`))
	})
	t.Cleanup(func() { close(release) })
	failing := newReplica(t, "failing")
	failing.handle(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("status") {
		case "400":
			w.WriteHeader(400)
			w.Write([]byte(`{"message":"bad input"}`))
		case "404":
			w.WriteHeader(404)
		default:
			w.Header().Set("x-ms-run-function-failed", "True")
			w.WriteHeader(500)
			w.Write([]byte(`{"message":"An unexpected error occurred in scoring script."}`))
		}
	})

	h := newHarness(t, gateway.Config{MaxBodyBytes: 1024, ReplayableBodyBytes: 256})
	queued := version("queued", 100, slow)
	queued.MaxQueueWait = 150 * time.Millisecond
	timeout := version("timeout", 100, slow)
	timeout.MaxConcurrentRequestsPerContainer = 10
	timeout.ScoringTimeout = 150 * time.Millisecond
	noreps := version("noreps", 100)
	noreps.MaxQueueWait = 100 * time.Millisecond
	notReady := version("notready", 100, failing)
	notReady.Replicas[0].Ready = false
	notReady.MaxQueueWait = 100 * time.Millisecond
	h.g.Update(&modelship.RouteTable{Routes: []modelship.Route{
		openService("queued", queued), openService("timeout", timeout), openService("noreps", noreps),
		openService("notready", notReady), openService("failing", version("failing", 100, failing)),
		openService("echo", version("echo", 100, newReplica(t, "echo"))),
	}})

	t.Run("QueueFull503", func(t *testing.T) {
		done := make(chan result)
		go func() { done <- score(h, t, "service", "queued", nil) }()
		waitFor(t, func() bool { return slow.hits.Load() >= 1 })
		start := time.Now()
		res := score(h, t, "service", "queued", nil)
		el := time.Since(start)
		if res.status != 503 || !strings.Contains(res.body, "maxQueueWait") {
			t.Fatalf("status %d %s", res.status, res.body)
		}
		if el < 140*time.Millisecond || el > 600*time.Millisecond {
			t.Fatalf("503 after %v, want about 150ms", el)
		}
		release <- struct{}{}
		if r := <-done; r.status != 200 {
			t.Fatalf("first request: %d", r.status)
		}
	})
	t.Run("Timeout504", func(t *testing.T) {
		res := score(h, t, "service", "timeout", nil)
		if res.status != 504 || !strings.Contains(res.body, "request has timed out") {
			t.Fatalf("status %d %s", res.status, res.body)
		}
	})
	t.Run("NoReplicas503", func(t *testing.T) {
		for _, name := range []string{"noreps", "notready"} {
			res := score(h, t, "service", name, nil)
			if res.status != 503 || !strings.Contains(res.body, "No ready replicas for service "+name) {
				t.Fatalf("%s: status %d %s", name, res.status, res.body)
			}
		}
	})
	statusTests := []struct {
		query string
		want  int
		body  string
	}{
		{"", 502, "An unexpected error occurred"},
		{"?status=400", 400, "bad input"},
		{"?status=404", 404, ""},
	}
	for _, tt := range statusTests {
		t.Run("Replica"+tt.query, func(t *testing.T) {
			res := h.do(t, "POST", "/api/v1/service/failing/score"+tt.query, nil, "{}")
			if res.status != tt.want || !strings.Contains(res.body, tt.body) {
				t.Fatalf("status %d body %q, want %d", res.status, res.body, tt.want)
			}
		})
	}
	t.Run("BodyTooLarge413", func(t *testing.T) {
		big := strings.Repeat("x", 2048)
		if res := h.do(t, "POST", "/api/v1/service/echo/score", nil, big); res.status != 413 {
			t.Fatalf("Content-Length body: %d", res.status)
		}
		// Chunked (unknown length): streamed and cut at the limit.
		req, _ := http.NewRequest("POST", h.srv.URL+"/api/v1/service/echo/score", io.MultiReader(strings.NewReader(big)))
		req.ContentLength = -1
		resp, err := h.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 413 && resp.StatusCode != 502 {
			t.Fatalf("chunked body: %d", resp.StatusCode)
		}
		if res := h.do(t, "POST", "/api/v1/service/echo/score", nil, strings.Repeat("y", 600)); res.status != 200 {
			t.Fatalf("streamed body under the limit: %d", res.status)
		}
	})
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestRetryOnRefusedConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + ln.Addr().String()
	ln.Close()
	live := newReplica(t, "live")
	h := newHarness(t, gateway.Config{})
	v := version("svc", 100, live)
	v.MaxConcurrentRequestsPerContainer = 4
	v.Replicas = append([]modelship.ReplicaEndpoint{{ID: "dead", URL: deadURL, Ready: true}}, v.Replicas...)
	h.g.Update(&modelship.RouteTable{Routes: []modelship.Route{openService("svc", v)}})
	for i := range 20 {
		if res := score(h, t, "service", "svc", nil); res.status != 200 {
			t.Fatalf("request %d: %d %s", i, res.status, res.body)
		}
	}
	if live.hits.Load() != 20 {
		t.Fatalf("live replica got %d requests", live.hits.Load())
	}
}

func TestLeastOutstanding(t *testing.T) {
	release := make(chan struct{})
	var reps []*fakeReplica
	for i := range 2 {
		r := newReplica(t, fmt.Sprint("r", i))
		r.handle(func(w http.ResponseWriter, r *http.Request) {
			<-release
			w.Write([]byte(`"ok"`))
		})
		reps = append(reps, r)
	}
	h := newHarness(t, gateway.Config{})
	v := version("svc", 100, reps...)
	v.MaxConcurrentRequestsPerContainer = 4
	h.g.Update(&modelship.RouteTable{Routes: []modelship.Route{openService("svc", v)}})
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			if res := score(h, t, "service", "svc", nil); res.status != 200 {
				t.Errorf("status %d", res.status)
			}
		})
		waitFor(t, func() bool { return reps[0].hits.Load()+reps[1].hits.Load() == int64(i+1) })
	}
	a, b := reps[0].hits.Load(), reps[1].hits.Load()
	st, _ := h.g.Stats("svc", "svc")
	close(release)
	wg.Wait()
	if a != 3 || b != 3 {
		t.Fatalf("distribution %d/%d, want 3/3", a, b)
	}
	if st.InFlight != 6 || st.BusyReplicas != 2 {
		t.Fatalf("stats while busy: %+v", st)
	}
	st, _ = h.g.Stats("svc", "svc")
	if st.Requests["2xx"] != 6 || st.InFlight != 0 || st.P50 <= 0 {
		t.Fatalf("stats after: %+v", st)
	}
}

func endpoint(name string, versions ...modelship.RouteVersion) modelship.Route {
	return modelship.Route{Kind: modelship.RouteEndpoint, Workspace: "ws", Name: name, Auth: modelship.AuthNone, Versions: versions}
}

func TestWeightedSplit(t *testing.T) {
	names := []string{"a", "b", "c", "d", "e", "f"}
	reps := map[string]*fakeReplica{}
	for _, n := range names {
		reps[n] = newReplica(t, n)
	}
	h := newHarness(t, gateway.Config{Rand: lockedRand(42)})
	configs := [][]float64{
		{90, 10},                // the seed's A=20 (default), B=10
		{20, 80},                // then B=40 and default
		{5, 10, 15, 20, 25, 25}, // six versions
		{0, 100},                // everything on one
	}
	const n = 10000
	for ci, shares := range configs {
		t.Run(fmt.Sprint(shares), func(t *testing.T) {
			var vs []modelship.RouteVersion
			for i, s := range shares {
				v := version(names[i], s, reps[names[i]])
				v.MaxConcurrentRequestsPerContainer = 8
				vs = append(vs, v)
			}
			vs[0].IsDefault = true
			h.g.Update(&modelship.RouteTable{Generation: int64(ci), Routes: []modelship.Route{endpoint("ep", vs...)}})
			counts := map[string]int{}
			var mu sync.Mutex
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Go(func() {
					for range n / 4 {
						res := score(h, t, "endpoint", "ep", nil)
						if res.status != 200 {
							t.Errorf("status %d", res.status)
							return
						}
						got := res.header.Get(gateway.DeploymentHeader)
						if res.body != `"`+got+`"` {
							t.Errorf("header names %q, body %s", got, res.body)
						}
						mu.Lock()
						counts[got]++
						mu.Unlock()
					}
					_ = w
				})
			}
			wg.Wait()
			for i, s := range shares {
				got := 100 * float64(counts[names[i]]) / n
				if math.Abs(got-s) > 1.5 {
					t.Errorf("version %s: %.2f%%, want %.0f%% ± 1.5", names[i], got, s)
				}
			}
		})
	}
}

func TestPinnedVersion(t *testing.T) {
	blue, green := newReplica(t, "blue"), newReplica(t, "green")
	h := newHarness(t, gateway.Config{})
	h.g.Update(&modelship.RouteTable{Routes: []modelship.Route{endpoint("ep", version("blue", 100, blue), version("green", 0, green))}})
	for range 20 {
		res := score(h, t, "endpoint", "ep", map[string]string{gateway.DeploymentHeader: "green"})
		if res.status != 200 || res.body != `"green"` || res.header.Get(gateway.DeploymentHeader) != "green" {
			t.Fatalf("pinned: %d %s %v", res.status, res.body, res.header)
		}
		res = h.do(t, "POST", "/api/v1/endpoint/ep/versions/green/score", nil, "{}")
		if res.status != 200 || res.body != `"green"` {
			t.Fatalf("per-version URI: %d %s", res.status, res.body)
		}
	}
	res := score(h, t, "endpoint", "ep", map[string]string{gateway.DeploymentHeader: "purple"})
	if res.status != 404 || !strings.Contains(res.body, "blue, green") {
		t.Fatalf("unknown pin: %d %s", res.status, res.body)
	}
	if res := h.do(t, "POST", "/api/v1/endpoint/ep/versions/purple/score", nil, "{}"); res.status != 404 {
		t.Fatalf("unknown per-version URI: %d", res.status)
	}
}

func TestMirror(t *testing.T) {
	live := newReplica(t, "live")
	shadow := newReplica(t, "shadow")
	var bodies atomic.Int64
	shadow.handle(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if string(b) == `{"data":[[1,2]]}` {
			bodies.Add(1)
		}
		time.Sleep(time.Millisecond)
		w.WriteHeader(500) // a broken shadow must not matter
	})
	h := newHarness(t, gateway.Config{Rand: lockedRand(7), MirrorQueue: 4096})
	lv := version("live", 100, live)
	lv.MaxConcurrentRequestsPerContainer = 8
	sv := version("shadow", 0, shadow)
	sv.MirrorPercent = 20
	sv.MaxConcurrentRequestsPerContainer = 8
	h.g.Update(&modelship.RouteTable{Routes: []modelship.Route{endpoint("ep", lv, sv)}})
	const n = 4000
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range n / 4 {
				res := score(h, t, "endpoint", "ep", nil)
				if res.status != 200 || res.body != `"live"` || res.header.Get(gateway.DeploymentHeader) != "live" {
					t.Errorf("caller saw %d %s", res.status, res.body)
					return
				}
			}
		})
	}
	wg.Wait()
	var st gateway.VersionStats
	waitFor(t, func() bool {
		st, _ = h.g.Stats("ep", "shadow")
		return st.MirrorSent+st.MirrorDropped+st.MirrorFailed >= uint64(shadow.hits.Load()) && shadow.hits.Load() > 0 && st.Total == st.MirrorSent+st.MirrorFailed
	})
	share := 100 * float64(shadow.hits.Load()+int64(st.MirrorDropped)) / n
	if math.Abs(share-20) > 1.5 {
		t.Fatalf("mirrored %.2f%% (hits %d, dropped %d), want 20%% ± 1.5", share, shadow.hits.Load(), st.MirrorDropped)
	}
	if bodies.Load() != shadow.hits.Load() {
		t.Fatalf("%d of %d copies had the caller's body", bodies.Load(), shadow.hits.Load())
	}
	if st.Requests["5xx"] == 0 {
		t.Fatalf("shadow stats: %+v", st)
	}
	// Pinned requests are not mirrored.
	before := shadow.hits.Load()
	for range 50 {
		score(h, t, "endpoint", "ep", map[string]string{gateway.DeploymentHeader: "live"})
	}
	time.Sleep(50 * time.Millisecond)
	if shadow.hits.Load() != before {
		t.Fatal("pinned requests were mirrored")
	}
}

func TestMirrorQueueFullDrops(t *testing.T) {
	live := newReplica(t, "live")
	shadow := newReplica(t, "shadow")
	block := make(chan struct{})
	shadow.handle(func(w http.ResponseWriter, r *http.Request) {
		<-block
	})
	h := newHarness(t, gateway.Config{MirrorQueue: 2, MirrorWorkers: 1})
	sv := version("shadow", 0, shadow)
	sv.MirrorPercent = 50
	h.g.Update(&modelship.RouteTable{Routes: []modelship.Route{endpoint("ep", version("live", 100, live), sv)}})
	start := time.Now()
	for range 200 {
		if res := score(h, t, "endpoint", "ep", nil); res.status != 200 {
			t.Fatalf("status %d", res.status)
		}
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("200 requests took %v with a stuck mirror", el)
	}
	st, _ := h.g.Stats("ep", "shadow")
	if st.MirrorDropped < 50 {
		t.Fatalf("dropped %d copies, want most of ~100", st.MirrorDropped)
	}
	close(block)
}

func TestSwapUnderLoad(t *testing.T) {
	var reps []*fakeReplica
	for i := range 6 {
		r := newReplica(t, fmt.Sprint("r", i))
		r.handle(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			time.Sleep(time.Duration(1+mathrandN(3)) * time.Millisecond)
			w.Write([]byte(`"ok"`))
		})
		reps = append(reps, r)
	}
	h := newHarness(t, gateway.Config{})
	mk := func(gen int, blueShare float64, withGreen bool) *modelship.RouteTable {
		b := version("blue", blueShare, reps[gen%3], reps[(gen+1)%3])
		b.MaxConcurrentRequestsPerContainer = 4
		vs := []modelship.RouteVersion{b}
		if withGreen {
			g := version("green", 100-blueShare, reps[3+gen%3])
			g.MaxConcurrentRequestsPerContainer = 4
			vs = append(vs, g)
		} else {
			vs[0].TrafficPercent = 100
		}
		vs[0].IsDefault = true
		return &modelship.RouteTable{Generation: int64(gen), Routes: []modelship.Route{endpoint("ep", vs...)}}
	}
	h.g.Update(mk(0, 90, true))
	stop := make(chan struct{})
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				res := score(h, t, "endpoint", "ep", nil)
				if res.status == 200 {
					ok.Add(1)
				} else {
					failed.Add(1)
					t.Errorf("status %d %s", res.status, res.body)
				}
			}
		})
	}
	for gen := 1; gen <= 10; gen++ {
		time.Sleep(60 * time.Millisecond)
		h.g.Update(mk(gen, float64(90-8*gen), true))
	}
	time.Sleep(60 * time.Millisecond)
	h.g.Update(mk(11, 100, false)) // delete a version
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || ok.Load() < 100 {
		t.Fatalf("ok %d, failed %d", ok.Load(), failed.Load())
	}
	t.Logf("%d requests, 0 failed, across 11 table swaps", ok.Load())
}

func TestMetricsHandler(t *testing.T) {
	rep := newReplica(t, "r1")
	h := newHarness(t, gateway.Config{})
	h.g.Update(&modelship.RouteTable{Routes: []modelship.Route{openService("svc", version("svc", 100, rep))}})
	score(h, t, "service", "svc", nil)
	srv := h.g.MetricsHandler()
	rec := &recorder{header: http.Header{}}
	req, _ := http.NewRequest("GET", "/metrics", nil)
	srv.ServeHTTP(rec, req)
	for _, want := range []string{
		`modelship_gateway_requests_total{class="2xx",route="svc",version="svc"} 1`,
		`modelship_gateway_request_duration_seconds_bucket{class="2xx",route="svc",version="svc"`,
		`modelship_gateway_ready_replicas{route="svc",version="svc"} 1`,
		`modelship_gateway_inflight_requests{route="svc",version="svc"} 0`,
	} {
		if !strings.Contains(rec.body.String(), want) {
			t.Fatalf("metrics lack %q:\n%s", want, rec.body.String())
		}
	}
}

type recorder struct {
	header http.Header
	body   strings.Builder
	code   int
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(c int)           { r.code = c }
