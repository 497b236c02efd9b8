package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelship/modelship"
)

const systemPython = "/usr/bin/python3"

func needPython(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(systemPython); err != nil {
		t.Skip("/usr/bin/python3 is missing; run scripts/setup.sh")
	}
}

// project writes a score.py project: <dir>/src/score.py, ic.json, dc.json.
func project(t *testing.T, dir, score, dc string) {
	t.Helper()
	writeFile(t, filepath.Join(dir, "src", "score.py"), []byte(score))
	ic := fmt.Sprintf(`{"entryScript": "score.py", "sourceDirectory": "src", "environment": {"python": {"interpreterPath": %q}}}`, systemPython)
	writeFile(t, filepath.Join(dir, "ic.json"), []byte(ic))
	writeFile(t, filepath.Join(dir, "dc.json"), []byte(dc))
}

const sumScore = `import json, os, time
def init():
    print("init done; model dir", os.environ.get("AZUREML_MODEL_DIR"), "GOMAXPROCS", os.environ.get("GOMAXPROCS"))
def run(raw):
    body = json.loads(raw)
    if body.get("fail"):
        raise ValueError("boom")
    if body.get("sleep"):
        time.sleep(body["sleep"])
    return {"sum": [sum(r) for r in body["data"]], "version": VERSION}
VERSION = 1
`

// score posts body to the gateway with an Authorization header.
func (s *server) score(t *testing.T, name, auth, body string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("POST", s.gateway+"/api/v1/service/"+name+"/score", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func (s *server) keys(t *testing.T, name string) modelship.ServiceKeys {
	return decode[modelship.ServiceKeys](t, s.ok(t, "service", "get-keys", name, "-o", "json"))
}

func (s *server) deploy(t *testing.T, dir, name string, extra ...string) modelship.Service {
	t.Helper()
	args := append([]string{"model", "deploy", "-ct", "local", "-m", "m:1", "-n", name, "-ic", filepath.Join(dir, "ic.json"), "-dc", filepath.Join(dir, "dc.json"), "-o", "json"}, extra...)
	return decode[modelship.Service](t, s.ok(t, args...))
}

func registerDummy(t *testing.T, s *server, dir string) {
	writeFile(t, filepath.Join(dir, "model.pkl"), []byte("weights"))
	s.ok(t, "model", "register", "-n", "m", "-p", filepath.Join(dir, "model.pkl"))
}

func TestDeployScoreKeysAndLogs(t *testing.T) {
	needPython(t)
	s := startServer(t, "")
	dir := t.TempDir()
	registerDummy(t, s, dir)
	project(t, dir, sumScore, `{"computeType": "aks", "numReplicas": 2, "containerResourceRequirements": {"cpu": 0.1, "memoryInGB": 0.5}}`)
	r := s.cli(t, "model", "deploy", "-ct", "local", "-m", "m:1", "-n", "mysvc", "-ic", filepath.Join(dir, "ic.json"), "-dc", filepath.Join(dir, "dc.json"), "--show-output")
	if r.code != 0 {
		t.Fatalf("deploy: %s %s\nserver log:\n%s", r.stdout, r.stderr, s.log)
	}
	if !strings.Contains(r.stderr, "is Healthy") || !strings.Contains(r.stdout, "Healthy") {
		t.Fatalf("--show-output did not stream progress:\n%s\n%s", r.stderr, r.stdout)
	}
	svc := decode[modelship.Service](t, s.ok(t, "service", "show", "mysvc", "-o", "json"))
	var raw map[string]any
	json.Unmarshal([]byte(s.ok(t, "service", "show", "mysvc", "-o", "json")), &raw)
	for _, f := range []string{"name", "state", "scoringUri", "swaggerUri", "computeType", "models", "error"} {
		if _, ok := raw[f]; !ok {
			t.Errorf("service show -o json lacks %q", f)
		}
	}
	if svc.State != "Healthy" || len(svc.Replicas) != 2 || svc.ScoringURI != s.gateway+"/api/v1/service/mysvc/score" || svc.Models[0] != "m:1" {
		t.Fatalf("service = %+v", svc)
	}
	keys := s.keys(t, "mysvc")
	// az ml's spellings: -n for the name, --workspace-name, -g and -v.
	if azKeys := decode[modelship.ServiceKeys](t, s.ok(t, "service", "get-keys", "-n", "mysvc", "--workspace-name", "default", "-g", "my-rg", "-v", "-o", "json")); azKeys != keys {
		t.Fatalf("get-keys -n = %+v, want %+v", azKeys, keys)
	}
	s.fails(t, `not found in workspace "nope"`, "service", "show", "-n", "mysvc", "--workspace-name", "nope")
	body := `{"data": [[1,2,3],[4,5,6]]}`
	for _, k := range []string{keys.PrimaryKey, keys.SecondaryKey} {
		code, out, h := s.score(t, "mysvc", k, body)
		if code != 200 || !strings.Contains(out, `"sum": [6, 15]`) || h.Get("x-request-id") == "" {
			t.Fatalf("score: %d %s %v", code, out, h)
		}
	}
	// service run fetches the key and scores, as az ml service run.
	if out := s.ok(t, "service", "run", "mysvc", "-d", body); !strings.Contains(out, `"sum": [6, 15]`) {
		t.Fatalf("service run: %s", out)
	}
	writeFile(t, filepath.Join(dir, "req.json"), []byte(body))
	if out := s.ok(t, "service", "run", "mysvc", "-d", "@"+filepath.Join(dir, "req.json")); !strings.Contains(out, `"sum": [6, 15]`) {
		t.Fatalf("service run @file: %s", out)
	}
	s.fails(t, "give the input", "service", "run", "mysvc")
	// The auth matrix on a key service.
	for _, bad := range []string{"", "nope", keys.PrimaryKey + "x", "Basic " + keys.PrimaryKey} {
		code, out, h := s.score(t, "mysvc", bad, body)
		if code != 401 || h.Get("WWW-Authenticate") == "" || strings.Contains(out, "sum") {
			t.Fatalf("auth %q: %d %s", bad, code, out)
		}
	}
	// Regenerating the primary key: the old one stops working at once.
	regen := decode[modelship.ServiceKeys](t, s.ok(t, "service", "regen-key", "mysvc", "--key", "Primary", "-o", "json"))
	if regen.PrimaryKey == keys.PrimaryKey || regen.SecondaryKey != keys.SecondaryKey {
		t.Fatalf("regen = %+v", regen)
	}
	if code, _, _ := s.score(t, "mysvc", keys.PrimaryKey, body); code != 401 {
		t.Fatalf("old primary key after regen: %d", code)
	}
	if code, _, _ := s.score(t, "mysvc", regen.PrimaryKey, body); code != 200 {
		t.Fatalf("new primary key: %d", code)
	}
	s.ok(t, "service", "regen-key", "mysvc", "--key", "Secondary", "--value", "my-own-secret-key")
	if code, _, _ := s.score(t, "mysvc", "my-own-secret-key", body); code != 200 {
		t.Fatalf("chosen secondary key: %d", code)
	}
	s.fails(t, "Primary or Secondary", "service", "regen-key", "mysvc", "--key", "primary")
	// A chosen key follows the rule of keys in a deployment config.
	s.fails(t, "contains a space", "service", "regen-key", "mysvc", "--key", "Secondary", "--value", "has a space")
	s.fails(t, "does not use token auth", "service", "get-access-token", "mysvc")

	// run() raising -> 502 through the front end, request id echoed.
	code, out, _ := s.score(t, "mysvc", regen.PrimaryKey, `{"fail": true, "data": []}`)
	if code != 502 || !strings.Contains(out, "unexpected error") {
		t.Fatalf("run() error: %d %s", code, out)
	}
	// Swagger through the gateway.
	req, _ := http.NewRequest("GET", svc.SwaggerURI, nil)
	req.Header.Set("Authorization", "Bearer "+regen.PrimaryKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("swagger: %v %v", resp, err)
	}
	resp.Body.Close()
	logs := s.ok(t, "service", "get-logs", "mysvc")
	if !strings.Contains(logs, "init done") || !strings.Contains(logs, "boom") {
		t.Fatalf("logs lack init output or the run() traceback:\n%s", logs)
	}
	// cpu 0.1: the replica's Go side runs on one thread (replicaProcs).
	if !strings.Contains(logs, "GOMAXPROCS 1") {
		t.Errorf("a replica with cpu 0.1 did not get GOMAXPROCS=1:\n%s", logs)
	}
	if initLogs := s.ok(t, "service", "get-logs", "mysvc", "--init", "--replica", "0"); !strings.Contains(initLogs, "init done") {
		t.Fatalf("init logs:\n%s", initLogs)
	}
	// A model in use cannot be deleted; after the service goes, it can.
	s.fails(t, "used by service", "model", "delete", "m:1")
	s.ok(t, "service", "delete", "mysvc")
	if code, _, _ := s.score(t, "mysvc", regen.PrimaryKey, body); code != 404 {
		t.Fatalf("score after delete: %d", code)
	}
	s.fails(t, "not found", "service", "show", "mysvc")
	s.ok(t, "model", "delete", "m:1")
}

func TestTokenAuth(t *testing.T) {
	needPython(t)
	s := startServer(t, "")
	dir := t.TempDir()
	registerDummy(t, s, dir)
	project(t, dir, sumScore, `{"computeType": "aks", "numReplicas": 1, "authEnabled": false, "tokenAuthEnabled": true}`)
	s.deploy(t, dir, "toksvc")
	project(t, filepath.Join(dir, "b"), sumScore, `{"computeType": "aks", "numReplicas": 1, "authEnabled": false, "tokenAuthEnabled": true}`)
	s.ok(t, "model", "deploy", "-m", "m:1", "-n", "othersvc", "-ic", filepath.Join(dir, "b", "ic.json"), "-dc", filepath.Join(dir, "b", "dc.json"))
	tok := decode[modelship.AccessToken](t, s.ok(t, "service", "get-access-token", "toksvc", "-o", "json"))
	if tok.TokenType != "Bearer" || !tok.RefreshAfter.Before(tok.ExpiryOn) || tok.AccessToken == "" {
		t.Fatalf("token = %+v", tok)
	}
	other := decode[modelship.AccessToken](t, s.ok(t, "service", "get-access-token", "othersvc", "-o", "json"))
	body := `{"data": [[1]]}`
	if code, out, _ := s.score(t, "toksvc", tok.AccessToken, body); code != 200 {
		t.Fatalf("token: %d %s", code, out)
	}
	tampered := tok.AccessToken[:len(tok.AccessToken)-4] + "AAAA"
	for name, bad := range map[string]string{"other service": other.AccessToken, "tampered": tampered, "garbage": "a.b.c", "none": ""} {
		if code, _, _ := s.score(t, "toksvc", bad, body); code != 401 {
			t.Fatalf("%s token: %d", name, code)
		}
	}
	s.fails(t, "does not use key auth", "service", "get-keys", "toksvc")
	if out := s.ok(t, "service", "run", "toksvc", "-d", body); !strings.Contains(out, `"sum": [1]`) {
		t.Fatalf("service run with a token: %s", out)
	}
	// Switching to key auth needs authEnabled with tokenAuthEnabled false.
	s.fails(t, "tokenAuthEnabled", "service", "update", "toksvc", "--auth-enabled")
	s.ok(t, "service", "update", "toksvc", "--auth-enabled", "--token-auth-enabled=false")
	keys := s.keys(t, "toksvc")
	if code, _, _ := s.score(t, "toksvc", tok.AccessToken, body); code != 401 {
		t.Fatalf("token on a key service: %d", code)
	}
	if code, _, _ := s.score(t, "toksvc", keys.PrimaryKey, body); code != 200 {
		t.Fatalf("key after switch: %d", code)
	}
}

func TestRejectedDeployments(t *testing.T) {
	s := startServer(t, "")
	dir := t.TempDir()
	registerDummy(t, s, dir)
	writeFile(t, filepath.Join(dir, "src", "score.py"), []byte(sumScore))
	writeFile(t, filepath.Join(dir, "ic.json"), []byte(`{"entryScript": "score.py", "sourceDirectory": "src"}`))
	cases := []struct{ name, dc, want string }{
		{"AutoscaleAndReplicas", `{"computeType": "aks", "autoScaler": {"autoscaleEnabled": true}, "numReplicas": 2}`, "numReplicas"},
		{"KeyAndToken", `{"computeType": "aks", "authEnabled": true, "tokenAuthEnabled": true}`, "tokenAuthEnabled"},
		{"LimitBelowRequest", `{"computeType": "aks", "containerResourceRequirements": {"cpu": 2, "cpuLimit": 1}}`, "cpuLimit"},
		{"MinOverMax", `{"computeType": "aks", "autoScaler": {"autoscaleEnabled": true, "minReplicas": 5, "maxReplicas": 2}}`, "minReplicas"},
		{"UnknownField", `{"computeType": "aks", "autoScaler": {"minReplica": 1}}`, "minReplica"},
		{"AutoscaleOffNoReplicas", `{"computeType": "aks", "autoScaler": {"autoscaleEnabled": false}}`, "numReplicas"},
		{"NegativeCPU", `{"computeType": "aks", "containerResourceRequirements": {"cpu": -1}}`, "cpu"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			writeFile(t, filepath.Join(dir, "dc.json"), []byte(tc.dc))
			s.fails(t, tc.want, "model", "deploy", "-m", "m:1", "-n", "badsvc", "-ic", filepath.Join(dir, "ic.json"), "-dc", filepath.Join(dir, "dc.json"))
		})
	}
	s.fails(t, "service name", "model", "deploy", "-m", "m:1", "-n", "Bad_Name", "-ic", filepath.Join(dir, "ic.json"))
	s.fails(t, "not found", "model", "deploy", "-m", "ghost:1", "-n", "svc1", "-ic", filepath.Join(dir, "ic.json"))
	s.fails(t, "not found", "model", "deploy", "-m", "m:1", "-n", "svc1", "-ct", "nowhere", "-ic", filepath.Join(dir, "ic.json"))
	s.fails(t, "no-code deploy", "model", "deploy", "-m", "m:1", "-n", "svc1")
	if list := decode[[]modelship.Service](t, s.ok(t, "service", "list", "-o", "json")); len(list) != 0 {
		t.Fatalf("rejected deployments created services: %+v", list)
	}
}

func TestUnschedulableThenFailed(t *testing.T) {
	needPython(t)
	s := startServer(t, "", "--unschedulable-timeout", "2s")
	dir := t.TempDir()
	registerDummy(t, s, dir)
	project(t, dir, sumScore, `{"computeType": "aks", "numReplicas": 1, "containerResourceRequirements": {"cpu": 500, "memoryInGB": 1}}`)
	r := s.cli(t, "model", "deploy", "-m", "m:1", "-n", "bigsvc", "-ic", filepath.Join(dir, "ic.json"), "-dc", filepath.Join(dir, "dc.json"), "--no-wait")
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	svc := waitState(t, s, "bigsvc", "Unschedulable", 10*time.Second)
	if svc.Error == nil || !strings.Contains(svc.Error.Message, "Insufficient cpu") {
		t.Fatalf("unschedulable reason: %+v", svc.Error)
	}
	// A service waiting for capacity can be deleted (its create is canceled).
	if r := s.cli(t, "model", "deploy", "-m", "m:1", "-n", "bigsvc2", "-ic", filepath.Join(dir, "ic.json"), "-dc", filepath.Join(dir, "dc.json"), "--no-wait"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	waitState(t, s, "bigsvc2", "Unschedulable", 10*time.Second)
	s.ok(t, "service", "delete", "bigsvc2")
	s.fails(t, "not found", "service", "show", "bigsvc2")
	svc = waitState(t, s, "bigsvc", "Failed", 15*time.Second)
	if !strings.Contains(svc.Error.Message, "available resources") {
		t.Fatalf("failed error: %+v", svc.Error)
	}
	// Waiting without --show-output still says why it waits.
	r = s.cli(t, "model", "deploy", "-m", "m:1", "-n", "bigsvc3", "-ic", filepath.Join(dir, "ic.json"), "-dc", filepath.Join(dir, "dc.json"))
	if r.code == 0 || !strings.Contains(r.stderr, "Unschedulable: ") || !strings.Contains(r.stderr, "waiting for capacity") || !strings.Contains(r.stderr, "available resources") {
		t.Fatalf("deploy of an unschedulable service: exit %d\n%s", r.code, r.stderr)
	}
	// A local target with a small budget: DevTest warns under 2 vCPU, FastProd needs 12.
	s.fails(t, "at least 12 vCPU", "computetarget", "create", "local", "-n", "prod", "--cpu", "4", "--memory-gb", "8")
	r = s.cli(t, "computetarget", "create", "local", "-n", "tiny", "--cluster-purpose", "DevTest", "--cpu", "1", "--memory-gb", "2")
	if r.code != 0 || !strings.Contains(r.stderr, "at least 2 vCPU") {
		t.Fatalf("create DevTest: %d %s %s", r.code, r.stdout, r.stderr)
	}
	list := s.ok(t, "computetarget", "list")
	if !strings.Contains(list, "tiny") || !strings.Contains(list, "local") {
		t.Fatalf("targets:\n%s", list)
	}
}

func waitState(t *testing.T, s *server, name, state string, timeout time.Duration) modelship.Service {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var svc modelship.Service
	for time.Now().Before(deadline) {
		svc = decode[modelship.Service](t, s.ok(t, "service", "show", name, "-o", "json"))
		if svc.State == state {
			return svc
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("service %s state %s, want %s (error %+v)\nserver log:\n%s", name, svc.State, state, svc.Error, s.log)
	return svc
}

func TestInitFailureIsReported(t *testing.T) {
	needPython(t)
	s := startServer(t, "")
	dir := t.TempDir()
	registerDummy(t, s, dir)
	project(t, dir, "import json\ndef init():\n    raise RuntimeError('cannot load model.pkl')\ndef run(raw):\n    return 1\n", `{"computeType": "aks", "numReplicas": 1}`)
	r := s.cli(t, "model", "deploy", "-m", "m:1", "-n", "crashsvc", "-ic", filepath.Join(dir, "ic.json"), "-dc", filepath.Join(dir, "dc.json"), "--show-output")
	if r.code == 0 {
		t.Fatal("deploy of a crashing init() succeeded")
	}
	if !strings.Contains(r.stderr+r.stdout, "cannot load model.pkl") || !strings.Contains(r.stdout, "Failed") {
		t.Fatalf("deploy output lacks the init error:\nstdout %s\nstderr %s", r.stdout, r.stderr)
	}
	svc := decode[modelship.Service](t, s.ok(t, "service", "show", "crashsvc", "-o", "json"))
	if svc.State != "Failed" || svc.Error == nil || svc.Error.Code != "CrashLoopBackOff" {
		t.Fatalf("service = %s %+v", svc.State, svc.Error)
	}
	if logs := s.ok(t, "service", "get-logs", "crashsvc", "--init"); !strings.Contains(logs, "cannot load model.pkl") {
		t.Fatalf("init logs:\n%s", logs)
	}
}

func TestQueueFullAndTimeout(t *testing.T) {
	needPython(t)
	s := startServer(t, "")
	dir := t.TempDir()
	registerDummy(t, s, dir)
	project(t, dir, sumScore, `{"computeType": "aks", "numReplicas": 1, "authEnabled": false, "maxQueueWaitMs": 200, "scoringTimeoutMs": 1500}`)
	s.deploy(t, dir, "slowsvc")
	// A request running 1 s holds the only slot; a second waits 200 ms and gets 503.
	var wg sync.WaitGroup
	wg.Add(1)
	var first int
	go func() {
		defer wg.Done()
		first, _, _ = s.score(t, "slowsvc", "", `{"sleep": 1, "data": []}`)
	}()
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	code, out, _ := s.score(t, "slowsvc", "", `{"data": []}`)
	if code != 503 || time.Since(start) > 900*time.Millisecond {
		t.Fatalf("queued request: %d %s after %s", code, out, time.Since(start))
	}
	wg.Wait()
	if first != 200 {
		t.Fatalf("the slow request: %d", first)
	}
	code, out, _ = s.score(t, "slowsvc", "", `{"sleep": 3, "data": []}`)
	if code != 504 {
		t.Fatalf("over the scoring timeout: %d %s", code, out)
	}
	// The replica recovers (run() was interrupted in its worker).
	deadline := time.Now().Add(15 * time.Second)
	for {
		if code, _, _ := s.score(t, "slowsvc", "", `{"data": [[1]]}`); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("service did not recover after a timeout")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// load sends requests from n clients until stop is closed and counts
// failures (any status other than 200).
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	failures   []string
	versions   map[string]int
	wg         sync.WaitGroup
	stop       chan struct{}
}

func startLoad(t *testing.T, s *server, name, key string, n int) *load {
	l := &load{stop: make(chan struct{}), versions: map[string]int{}}
	client := &http.Client{Timeout: 20 * time.Second}
	for range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; i < 5000; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				req, _ := http.NewRequest("POST", s.gateway+"/api/v1/service/"+name+"/score", strings.NewReader(`{"data": [[1, 2]]}`))
				req.Header.Set("Authorization", "Bearer "+key)
				resp, err := client.Do(req)
				if err != nil {
					l.failed.Add(1)
					l.note(err.Error())
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					l.failed.Add(1)
					l.note(fmt.Sprintf("%d %s", resp.StatusCode, b))
					continue
				}
				l.ok.Add(1)
				var v struct{ Version int }
				json.Unmarshal(b, &v)
				l.mu.Lock()
				l.versions[fmt.Sprint(v.Version)]++
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *load) note(s string) {
	l.mu.Lock()
	if len(l.failures) < 5 {
		l.failures = append(l.failures, s)
	}
	l.mu.Unlock()
}

func (l *load) finish() { close(l.stop); l.wg.Wait() }

func TestRollingUpdateUnderLoadAndRollback(t *testing.T) {
	needPython(t)
	s := startServer(t, "")
	dir := t.TempDir()
	registerDummy(t, s, dir)
	project(t, dir, sumScore, `{"computeType": "aks", "numReplicas": 1}`)
	s.deploy(t, dir, "rollsvc")
	key := s.keys(t, "rollsvc").PrimaryKey
	v2 := filepath.Join(dir, "v2")
	project(t, v2, strings.Replace(sumScore, "VERSION = 1", "VERSION = 2", 1), `{"computeType": "aks", "numReplicas": 1}`)
	l := startLoad(t, s, "rollsvc", key, 3)
	time.Sleep(300 * time.Millisecond)
	r := s.cli(t, "service", "update", "rollsvc", "-ic", filepath.Join(v2, "ic.json"), "--show-output")
	time.Sleep(300 * time.Millisecond)
	l.finish()
	if r.code != 0 {
		t.Fatalf("update: %s %s", r.stdout, r.stderr)
	}
	if l.failed.Load() != 0 || l.versions["1"] == 0 || l.versions["2"] == 0 {
		t.Fatalf("update under load (1 replica): %d ok, %d failed %v, versions %v", l.ok.Load(), l.failed.Load(), l.failures, l.versions)
	}
	t.Logf("rolling update under load: %d requests, 0 failed, versions %v", l.ok.Load(), l.versions)

	// An update whose init() fails is rolled back; v2 keeps serving.
	bad := filepath.Join(dir, "bad")
	project(t, bad, "def init():\n    raise RuntimeError('broken release')\ndef run(raw):\n    return 0\n", `{"computeType": "aks"}`)
	l = startLoad(t, s, "rollsvc", key, 2)
	r = s.cli(t, "service", "update", "rollsvc", "-ic", filepath.Join(bad, "ic.json"), "--show-output")
	l.finish()
	if r.code == 0 || !strings.Contains(r.stderr+r.stdout, "rolled back") {
		t.Fatalf("failed update reported success:\n%s\n%s", r.stdout, r.stderr)
	}
	if l.failed.Load() != 0 || l.versions["2"] == 0 {
		t.Fatalf("during the failed update: %d failed %v, versions %v", l.failed.Load(), l.failures, l.versions)
	}
	svc := decode[modelship.Service](t, s.ok(t, "service", "show", "rollsvc", "-o", "json"))
	if svc.State != "Healthy" || svc.Error == nil || !strings.Contains(svc.Error.Message, "rolled back") {
		t.Fatalf("after rollback: %s %+v", svc.State, svc.Error)
	}
	if code, out, _ := s.score(t, "rollsvc", key, `{"data": [[1]]}`); code != 200 || !strings.Contains(out, `"version": 2`) {
		t.Fatalf("after rollback: %d %s", code, out)
	}
	s.fails(t, "No parameters provided to update", "service", "update", "rollsvc")
}

func TestAutoscaleUpAndDown(t *testing.T) {
	needPython(t)
	s := startServer(t, "", "--scale-down-delay", "2s")
	dir := t.TempDir()
	registerDummy(t, s, dir)
	project(t, dir, strings.Replace(sumScore, "def run(raw):", "def run(raw):\n    time.sleep(0.05)", 1),
		`{"computeType": "aks", "authEnabled": false, "autoScaler": {"autoscaleEnabled": true, "minReplicas": 1, "maxReplicas": 4, "refreshPeriodInSeconds": 1, "targetUtilization": 70}, "maxQueueWaitMs": 5000}`)
	s.deploy(t, dir, "autosvc")
	l := startLoad(t, s, "autosvc", "", 4)
	start := time.Now()
	var grown time.Duration
	for time.Since(start) < 20*time.Second {
		svc := decode[modelship.Service](t, s.ok(t, "service", "show", "autosvc", "-o", "json"))
		if svc.DesiredReplicas >= 3 {
			grown = time.Since(start)
			if !strings.Contains(svc.Scaling, "replica(s)") {
				t.Errorf("the autoscaler's decision is not shown: %q", svc.Scaling)
			}
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	l.finish()
	if grown == 0 {
		t.Fatalf("replicas did not grow under 4 concurrent clients\n%s", s.log)
	}
	if l.failed.Load() != 0 {
		t.Fatalf("%d failed requests while scaling: %v", l.failed.Load(), l.failures)
	}
	t.Logf("scaled to 3+ replicas %s after the load started", grown)
	deadline := time.Now().Add(30 * time.Second)
	for {
		svc := decode[modelship.Service](t, s.ok(t, "service", "show", "autosvc", "-o", "json"))
		if svc.DesiredReplicas == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("did not scale back down: %d replicas", svc.DesiredReplicas)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func TestServerKillRecovers(t *testing.T) {
	needPython(t)
	s := startServer(t, "")
	dir := t.TempDir()
	registerDummy(t, s, dir)
	project(t, dir, sumScore, `{"computeType": "aks", "numReplicas": 2}`)
	s.deploy(t, dir, "durable")
	keys := s.keys(t, "durable")
	s.kill()
	// Replicas die with the server (no orphans).
	time.Sleep(300 * time.Millisecond)
	if out, _ := exec.Command("pgrep", "-f", "SERVICE_NAME=durable").Output(); len(bytes.TrimSpace(out)) > 0 {
		t.Logf("note: pgrep matched %s", out)
	}
	s2 := startServer(t, s.dataDir)
	svc := waitState(t, s2, "durable", "Healthy", 30*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for {
		svc = decode[modelship.Service](t, s2.ok(t, "service", "show", "durable", "-o", "json"))
		ready := 0
		for _, r := range svc.Replicas {
			if r.Ready {
				ready++
			}
		}
		if ready == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replicas not back: %+v", svc.Replicas)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := s2.keys(t, "durable"); got != keys {
		t.Fatalf("keys changed across a crash: %+v vs %+v", got, keys)
	}
	if code, out, _ := s2.score(t, "durable", keys.PrimaryKey, `{"data": [[2, 2]]}`); code != 200 || !strings.Contains(out, "[4]") {
		t.Fatalf("score after recovery: %d %s", code, out)
	}
}

func TestBusyServiceConflict(t *testing.T) {
	needPython(t)
	s := startServer(t, "")
	dir := t.TempDir()
	registerDummy(t, s, dir)
	project(t, dir, "import time\ndef init():\n    time.sleep(2)\ndef run(raw):\n    return 1\n", `{"computeType": "aks", "numReplicas": 1}`)
	r := s.cli(t, "model", "deploy", "-m", "m:1", "-n", "busysvc", "-ic", filepath.Join(dir, "ic.json"), "-dc", filepath.Join(dir, "dc.json"), "--no-wait")
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	s.fails(t, "busy", "service", "update", "busysvc", "--scoring-timeout-ms", "5000")
	s.fails(t, "already exists", "model", "deploy", "-m", "m:1", "-n", "busysvc", "-ic", filepath.Join(dir, "ic.json"))
	s.ok(t, "service", "wait", "busysvc")
	_ = context.Background
}

// TestFolderModelLayout deploys a folder model the way Azure samples use
// one: the folder keeps its name under AZUREML_MODEL_DIR, and
// Model.get_model_path returns it.
func TestFolderModelLayout(t *testing.T) {
	needPython(t)
	s := startServer(t, "")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "tf_model", "weights.txt"), []byte("42"))
	writeFile(t, filepath.Join(dir, "tf_model", "vocab", "words.txt"), []byte("a b"))
	s.ok(t, "model", "register", "-n", "tf-dnn", "-p", filepath.Join(dir, "tf_model"))
	project(t, dir, `import os
from azureml.core.model import Model
def init():
    global weights, path
    model_root = os.path.join(os.getenv('AZUREML_MODEL_DIR'), 'tf_model')
    weights = open(os.path.join(model_root, 'weights.txt')).read()
    path = Model.get_model_path('tf-dnn')
def run(raw):
    return {"weights": weights, "path_ends": os.path.basename(path), "vocab": os.path.exists(os.path.join(path, "vocab", "words.txt"))}
`, `{"computeType": "aks", "numReplicas": 1, "authEnabled": false}`)
	r := s.cli(t, "model", "deploy", "-m", "tf-dnn:1", "-n", "foldersvc", "-ic", filepath.Join(dir, "ic.json"), "-dc", filepath.Join(dir, "dc.json"))
	if r.code != 0 {
		t.Fatalf("deploy: %s %s", r.stdout, r.stderr)
	}
	code, out, _ := s.score(t, "foldersvc", "", `{}`)
	if code != 200 || !strings.Contains(out, `"weights": "42"`) || !strings.Contains(out, `"path_ends": "tf_model"`) || !strings.Contains(out, `"vocab": true`) {
		t.Fatalf("score: %d %s", code, out)
	}
}

// TestDefaultPythonHasNumpy deploys an Azure-style score.py that imports
// numpy with an inference config that names no interpreter: the server
// picks a Python that has numpy.
func TestDefaultPythonHasNumpy(t *testing.T) {
	needPython(t)
	if exec.Command(systemPython, "-c", "import numpy").Run() != nil {
		t.Skip("no Python with numpy on this machine")
	}
	s := startServer(t, "")
	dir := t.TempDir()
	registerDummy(t, s, dir)
	writeFile(t, filepath.Join(dir, "src", "score.py"), []byte(`import json
import numpy as np
def init():
    pass
def run(raw_data):
    data = np.array(json.loads(raw_data)['data'])
    return data.sum(axis=1).tolist()
`))
	writeFile(t, filepath.Join(dir, "ic.json"), []byte(`{"entryScript": "score.py", "sourceDirectory": "src"}`))
	writeFile(t, filepath.Join(dir, "dc.json"), []byte(`{"computeType": "aks", "numReplicas": 1, "authEnabled": false}`))
	r := s.cliEnv(t, []string{"MODELSHIP_URL=" + s.url, "MODELSHIP_TOKEN=" + s.token}, "model", "deploy", "-m", "m:1", "-n", "numpysvc",
		"-ic", filepath.Join(dir, "ic.json"), "-dc", filepath.Join(dir, "dc.json"))
	if r.code != 0 {
		t.Fatalf("deploy: %s %s", r.stdout, r.stderr)
	}
	if code, out, _ := s.score(t, "numpysvc", "", `{"data": [[1, 2], [3, 4]]}`); code != 200 || !strings.Contains(out, "[3, 7]") {
		t.Fatalf("score: %d %s", code, out)
	}
}
