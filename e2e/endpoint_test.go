package e2e

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelship/modelship"
)

const okScore = `import json, random
def init():
    pass
def run(raw):
    body = json.loads(raw) if raw else {}
    if random.random() < FAIL_RATE:
        raise ValueError("injected failure")
    return "ok"
FAIL_RATE = 0.0
`

// endpointProject writes src/score.py and ic.json under dir.
func endpointProject(t *testing.T, dir string, failRate float64) string {
	t.Helper()
	project(t, dir, strings.Replace(okScore, "FAIL_RATE = 0.0", fmt.Sprintf("FAIL_RATE = %g", failRate), 1), `{"computeType": "AKSENDPOINT"}`)
	return filepath.Join(dir, "ic.json")
}

// hit sends n requests to an endpoint from 8 clients and counts the
// version that answered each (the azureml-model-deployment header) and the
// failures.
func (s *server) hit(t *testing.T, ep, key string, n int, header map[string]string) (map[string]int, int) {
	t.Helper()
	var mu sync.Mutex
	counts := map[string]int{}
	failed := 0
	var wg sync.WaitGroup
	next := make(chan struct{}, n)
	for range n {
		next <- struct{}{}
	}
	close(next)
	client := &http.Client{Timeout: 30 * time.Second}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				req, _ := http.NewRequest("POST", s.gateway+"/api/v1/endpoint/"+ep+"/score", strings.NewReader(`{"data": [[1]]}`))
				req.Header.Set("Authorization", "Bearer "+key)
				for k, v := range header {
					req.Header.Set(k, v)
				}
				resp, err := client.Do(req)
				if err != nil {
					mu.Lock()
					if failed++; failed == 1 {
						t.Logf("first failed request: %v", err)
					}
					mu.Unlock()
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				mu.Lock()
				if resp.StatusCode == 200 {
					counts[resp.Header.Get("azureml-model-deployment")]++
				} else if failed++; failed == 1 {
					t.Logf("first failed request: %d %s", resp.StatusCode, body)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return counts, failed
}

func checkShares(t *testing.T, counts map[string]int, n int, want map[string]float64) {
	t.Helper()
	for v, pct := range want {
		got := 100 * float64(counts[v]) / float64(n)
		if math.Abs(got-pct) > 1.5 {
			t.Errorf("version %s got %.2f%% of %d requests, want %g%% ±1.5 (all: %v)", v, got, n, pct, counts)
		}
	}
}

func effective(t *testing.T, s *server, ep string) map[string]float64 {
	e := decode[modelship.Endpoint](t, s.ok(t, "endpoint", "show", ep, "-o", "json"))
	out := map[string]float64{}
	for _, v := range e.Versions {
		out[v.Name] = v.EffectiveTrafficPercentile
	}
	return out
}

func TestEndpointTrafficSplit(t *testing.T) {
	needPython(t)
	s := startServer(t, "")
	dir := t.TempDir()
	registerDummy(t, s, dir)
	ic := endpointProject(t, dir, 0)
	// 8 clients share one replica slot per version: a queue wait of 10 s
	// (not Azure's 500 ms) keeps a busy machine's stalls from turning into
	// 503s, which this test is not about.
	wait := []string{"--max-request-wait-time", "10000"}
	s.ok(t, append([]string{"endpoint", "create", "-n", "fraud", "-m", "m:1", "-ic", ic, "--version-name", "blue", "--traffic-percentile", "20", "--num-replicas", "1"}, wait...)...)
	s.ok(t, append([]string{"endpoint", "version", "create", "fraud", "--version-name", "green", "-m", "m:1", "-ic", ic, "--traffic-percentile", "10", "--num-replicas", "1"}, wait...)...)
	// The seed's first example: 20 (default) + 10 -> 90/10.
	if eff := effective(t, s, "fraud"); eff["blue"] != 90 || eff["green"] != 10 {
		t.Fatalf("effective traffic = %v, want blue 90, green 10", eff)
	}
	key := decode[modelship.ServiceKeys](t, s.ok(t, "endpoint", "get-keys", "fraud", "-o", "json")).PrimaryKey
	const n = 10000
	counts, failed := s.hit(t, "fraud", key, n, nil)
	if failed != 0 {
		t.Fatalf("%d failed requests", failed)
	}
	checkShares(t, counts, n, map[string]float64{"blue": 90, "green": 10})
	// The seed's second example: green 40 and default -> blue 20, green 80.
	s.ok(t, "endpoint", "version", "update", "fraud", "--version-name", "green", "--traffic-percentile", "40", "--default")
	if eff := effective(t, s, "fraud"); eff["blue"] != 20 || eff["green"] != 80 {
		t.Fatalf("effective traffic = %v, want blue 20, green 80", eff)
	}
	counts, failed = s.hit(t, "fraud", key, n, nil)
	if failed != 0 {
		t.Fatalf("%d failed requests", failed)
	}
	checkShares(t, counts, n, map[string]float64{"blue": 20, "green": 80})
	// A third: red takes 30, the unallocated 10 goes to green (default).
	// (Its name and share from an AKSENDPOINT deployment config, as Azure's notebook writes it.)
	redDC := filepath.Join(t.TempDir(), "red.json")
	writeFile(t, redDC, []byte(`{"computeType": "AKSENDPOINT", "versionName": "red", "trafficPercentile": 30, "numReplicas": 1}`))
	s.ok(t, append([]string{"endpoint", "version", "create", "fraud", "-m", "m:1", "-ic", ic, "-dc", redDC}, wait...)...)
	counts, failed = s.hit(t, "fraud", key, n, nil)
	if failed != 0 {
		t.Fatalf("%d failed requests", failed)
	}
	checkShares(t, counts, n, map[string]float64{"blue": 20, "green": 50, "red": 30})
	// Pinned requests always hit the named version.
	counts, _ = s.hit(t, "fraud", key, 300, map[string]string{"azureml-model-deployment": "red"})
	if counts["red"] != 300 {
		t.Fatalf("pinned to red: %v", counts)
	}
	// endpoint run, pinned.
	if r := s.cli(t, "endpoint", "run", "fraud", "-d", `{"data": [[1]]}`, "--version-name", "blue"); r.code != 0 || !strings.Contains(r.stderr, "answered by version blue") {
		t.Fatalf("endpoint run: %d %s %s", r.code, r.stdout, r.stderr)
	}
	// Per-version URI.
	req, _ := http.NewRequest("POST", s.gateway+"/api/v1/endpoint/fraud/versions/blue/score", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("azureml-model-deployment") != "blue" {
		t.Fatalf("per-version URI: %v %v", resp, err)
	}
	resp.Body.Close()
	// Versions are internal: the service list stays empty.
	if list := decode[[]modelship.Service](t, s.ok(t, "service", "list", "-o", "json")); len(list) != 0 {
		t.Fatalf("endpoint versions leak into service list: %d", len(list))
	}
}

func TestEndpointRules(t *testing.T) {
	needPython(t)
	s := startServer(t, "")
	dir := t.TempDir()
	registerDummy(t, s, dir)
	ic := endpointProject(t, dir, 0)
	s.fails(t, "equals the endpoint's name", "endpoint", "create", "-n", "rules", "-m", "m:1", "-ic", ic, "--version-name", "rules")
	s.fails(t, "0 to 100", "endpoint", "create", "-n", "rules", "-m", "m:1", "-ic", ic, "--version-name", "v-one", "--traffic-percentile", "120")
	s.ok(t, "endpoint", "create", "-n", "rules", "-m", "m:1", "-ic", ic, "--version-name", "v-one", "--traffic-percentile", "60", "--num-replicas", "1")
	s.fails(t, "add up to 110", "endpoint", "version", "create", "rules", "--version-name", "v-two", "-m", "m:1", "-ic", ic, "--traffic-percentile", "50")
	s.fails(t, "--version-name (or versionName", "endpoint", "version", "create", "rules", "-m", "m:1", "-ic", ic)
	s.fails(t, "use 0 to 50", "endpoint", "version", "create", "rules", "--version-name", "v-two", "-m", "m:1", "-ic", ic, "--mirror-percentile", "60")
	s.fails(t, "version name", "endpoint", "version", "create", "rules", "--version-name", "Bad_Name", "-m", "m:1", "-ic", ic)
	for i := 2; i <= 6; i++ {
		s.ok(t, "endpoint", "version", "create", "rules", "--version-name", fmt.Sprintf("v-%d", i), "-m", "m:1", "-ic", ic, "--num-replicas", "1", "--no-wait")
		s.ok(t, "endpoint", "wait", "rules")
	}
	s.fails(t, "already has 6 versions", "endpoint", "version", "create", "rules", "--version-name", "v-seven", "-m", "m:1", "-ic", ic)
	s.fails(t, "already has a version", "endpoint", "version", "create", "rules", "--version-name", "v-2", "-m", "m:1", "-ic", ic)
	s.fails(t, "is the default version", "endpoint", "version", "delete", "rules", "--version-name", "v-one")
	// Marking a new control demotes the old one; promote makes it default too.
	ep := decode[modelship.Endpoint](t, s.ok(t, "endpoint", "version", "update", "rules", "--version-name", "v-2", "--control", "-o", "json"))
	controls := 0
	for _, v := range ep.Versions {
		if v.VersionType == modelship.VersionTypeControl {
			controls++
			if v.Name != "v-2" {
				t.Fatalf("control is %s", v.Name)
			}
		}
	}
	if controls != 1 {
		t.Fatalf("%d controls", controls)
	}
	s.fails(t, "is the control", "endpoint", "version", "delete", "rules", "--version-name", "v-2")
	ep = decode[modelship.Endpoint](t, s.ok(t, "endpoint", "version", "promote", "rules", "--version-name", "v-3", "-o", "json"))
	for _, v := range ep.Versions {
		if (v.Name == "v-3") != (v.IsDefault && v.VersionType == modelship.VersionTypeControl) {
			t.Fatalf("after promote: %+v", v)
		}
	}
	s.ok(t, "endpoint", "version", "delete", "rules", "--version-name", "v-one")
	s.fails(t, "no version", "endpoint", "version", "update", "rules", "--version-name", "v-one", "--traffic-percentile", "1")
	s.fails(t, "No parameters provided", "endpoint", "version", "update", "rules", "--version-name", "v-2")
	s.ok(t, "endpoint", "delete", "rules")
	if list := decode[[]modelship.Endpoint](t, s.ok(t, "endpoint", "list", "-o", "json")); len(list) != 0 {
		t.Fatalf("endpoints after delete: %+v", list)
	}
	s.ok(t, "model", "delete", "m:1")
}

func TestEndpointMirrorAndChangesUnderLoad(t *testing.T) {
	needPython(t)
	s := startServer(t, "")
	dir := t.TempDir()
	registerDummy(t, s, dir)
	ic := endpointProject(t, dir, 0)
	// Azure's way: model deploy with an AKSENDPOINT config.
	writeFile(t, filepath.Join(dir, "ep.json"), []byte(`{"computeType": "AKSENDPOINT", "versionName": "live", "numReplicas": 1, "authEnabled": false}`))
	r := s.cli(t, "model", "deploy", "-n", "shadowed", "-m", "m:1", "-ic", ic, "-dc", filepath.Join(dir, "ep.json"), "-o", "json")
	if r.code != 0 {
		t.Fatalf("model deploy AKSENDPOINT: %s %s", r.stdout, r.stderr)
	}
	s.ok(t, "endpoint", "version", "create", "shadowed", "--version-name", "shadow", "-m", "m:1", "-ic", ic, "--mirror-percentile", "30", "--num-replicas", "1")
	const n = 2000
	counts, failed := s.hit(t, "shadowed", "", n, nil)
	if failed != 0 || counts["live"] != n {
		t.Fatalf("callers must only see the live version: %v, %d failed", counts, failed)
	}
	var mirrored uint64
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ep := decode[modelship.Endpoint](t, s.ok(t, "endpoint", "show", "shadowed", "--metrics", "-o", "json"))
		for _, v := range ep.Versions {
			if v.Name == "shadow" && v.Stats != nil {
				mirrored = v.Stats.Total
			}
		}
		if float64(mirrored) >= 0.27*n {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if share := 100 * float64(mirrored) / n; math.Abs(share-30) > 3 {
		t.Fatalf("mirror received %.1f%% of live requests, want 30 ±3", share)
	}
	// Ten traffic changes and a version delete under steady load: no failure.
	s.ok(t, "endpoint", "version", "update", "shadowed", "--version-name", "shadow", "--mirror-percentile", "0")
	var wg sync.WaitGroup
	var loadCounts map[string]int
	var loadFailed int
	wg.Add(1)
	go func() {
		defer wg.Done()
		loadCounts, loadFailed = s.hit(t, "shadowed", "", 3000, nil)
	}()
	for i := 0; i < 10; i++ {
		s.ok(t, "endpoint", "version", "update", "shadowed", "--version-name", "shadow", "--traffic-percentile", fmt.Sprint(10*(i%5)))
	}
	s.ok(t, "endpoint", "version", "delete", "shadowed", "--version-name", "shadow")
	wg.Wait()
	if loadFailed != 0 {
		t.Fatalf("%d of 3000 requests failed during traffic changes (%v)", loadFailed, loadCounts)
	}
	t.Logf("traffic changes under load: %v, 0 failed", loadCounts)
}

func TestEndpointComparison(t *testing.T) {
	needPython(t)
	s := startServer(t, "")
	dir := t.TempDir()
	registerDummy(t, s, dir)
	ic := endpointProject(t, filepath.Join(dir, "good"), 0)
	bad := endpointProject(t, filepath.Join(dir, "bad"), 0.05)
	s.ok(t, "endpoint", "create", "-n", "abtest", "-m", "m:1", "-ic", ic, "--version-name", "control", "--num-replicas", "1", "--auth-enabled=false")
	s.ok(t, "endpoint", "version", "create", "abtest", "--version-name", "flaky", "-m", "m:1", "-ic", bad, "--traffic-percentile", "50", "--num-replicas", "1")
	s.ok(t, "endpoint", "version", "create", "abtest", "--version-name", "same", "-m", "m:1", "-ic", ic, "--traffic-percentile", "0", "--num-replicas", "1")
	s.hit(t, "abtest", "", 4000, nil)
	s.hit(t, "abtest", "", 1500, map[string]string{"azureml-model-deployment": "same"})
	ep := decode[modelship.Endpoint](t, s.ok(t, "endpoint", "show", "abtest", "--metrics", "-o", "json"))
	verdicts := map[string]modelship.VersionComparison{}
	for _, c := range ep.Comparisons {
		verdicts[c.Treatment] = c
	}
	if c := verdicts["flaky"]; c.ErrorRateVerdict != modelship.VerdictWorse || c.TreatmentRequests < 1500 {
		t.Fatalf("flaky vs control: %+v", c)
	}
	if c := verdicts["same"]; c.ErrorRateVerdict != modelship.VerdictNoDifference {
		t.Fatalf("identical version vs control: %+v", c)
	}
	table := s.ok(t, "endpoint", "show", "abtest", "--metrics")
	if !strings.Contains(table, "flaky vs control: error rate worse") {
		t.Fatalf("show --metrics:\n%s", table)
	}
}
