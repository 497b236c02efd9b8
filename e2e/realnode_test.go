package e2e

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/compute/kubernetes"
	"github.com/modelship/modelship/internal/k8snode"
	"github.com/modelship/modelship/ociimage"
)

// realImage is the modelship image the node runs (imported, never pulled).
const realImage = "modelship.local/modelship:e2e"

// TestRealNode is issue 8 end to end: modelship's own image on a real
// single-node cluster (kubelet, containerd, kube-proxy), the control plane
// on the host, scoring through the in-cluster front end.
func TestRealNode(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the test on a real single-node cluster")
	}
	n := k8snode.Start(t)
	ctx := context.Background()

	start := time.Now()
	img, err := ociimage.Build(ctx, ociimage.Options{Binary: binPath})
	if err != nil {
		t.Fatalf("building the image: %v", err)
	}
	if err := n.LoadImage(ctx, realImage, img); err != nil {
		t.Fatalf("loading the image: %v", err)
	}
	t.Logf("image built and loaded in %s", time.Since(start).Round(time.Millisecond))

	// The control plane listens on the node IP so pods can fetch their
	// files; a fixed port so a restart keeps the pods' fetch URL.
	dataDir := t.TempDir()
	listen := n.IP + ":" + freePort(t)
	args := []string{"--listen", listen, "--scale-down-delay", "5s"}
	s := startServer(t, dataDir, args...)
	dir := t.TempDir()
	kc := n.KubeconfigPath
	const ns = "ml"

	start = time.Now()
	s.ok(t, "computetarget", "attach", "kubernetes", "-n", "node1", "--kubeconfig", kc, "--namespace", ns, "--cluster-purpose", "DevTest",
		"--image", realImage, "--image-pull-policy", "Never")
	t.Logf("attach: %s", time.Since(start).Round(time.Millisecond))
	var fe string
	waitFor(t, 60*time.Second, "the front end to be ready", s.log, func() bool {
		ct := decode[modelship.ComputeTarget](t, s.ok(t, "computetarget", "show", "node1", "-o", "json"))
		fe = ct.Kubernetes.FrontEndURL
		return fe != "" && ct.Kubernetes.FrontEndReady > 0
	})
	t.Logf("front end at %s", fe)

	// An ONNX service with two replicas: the pods fetch the model from the
	// control plane and turn Ready; the service turns Healthy.
	model, err := os.ReadFile(filepath.Join("..", "examples", "onnx-digits", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "digits.onnx"), model)
	s.ok(t, "model", "register", "-n", "digits", "-p", filepath.Join(dir, "digits.onnx"), "--model-framework", "Onnx")
	s.ok(t, "model", "register", "-n", "digits", "-p", filepath.Join(dir, "digits.onnx"), "--model-framework", "Onnx", "--description", "v2")
	body, err := os.ReadFile(filepath.Join("..", "examples", "onnx-digits", "sample-request.json"))
	if err != nil {
		t.Fatal(err)
	}
	dc := func(name, content string) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, []byte(content))
		return p
	}
	small := `"containerResourceRequirements": {"cpu": 0.1, "memoryInGB": 0.25}`
	start = time.Now()
	s.ok(t, "model", "deploy", "-ct", "node1", "-m", "digits:1", "-n", "digits", "-dc", dc("dc.json", `{"computeType": "aks", "numReplicas": 2, `+small+`}`), "--no-wait")
	svc := waitState(t, s, "digits", modelship.StateHealthy, 120*time.Second)
	t.Logf("deploy -> Healthy (2 replicas, real pods): %s", time.Since(start).Round(time.Millisecond))
	if !strings.HasPrefix(svc.ScoringURI, fe+"/api/v1/service/digits/score") {
		t.Errorf("scoring URI %s, front end %s", svc.ScoringURI, fe)
	}

	// Keys: primary, secondary, after a regeneration; a wrong key.
	keys := s.keys(t, "digits")
	scoreURL := fe + "/api/v1/service/digits/score"
	waitFor(t, 30*time.Second, "scoring through the in-cluster front end", s.log, func() bool {
		code, _ := post(scoreURL, keys.PrimaryKey, string(body), nil)
		return code == http.StatusOK
	})
	for _, k := range []string{keys.PrimaryKey, keys.SecondaryKey} {
		if code, out := post(scoreURL, k, string(body), nil); code != http.StatusOK {
			t.Errorf("score with a key: %d %s", code, out)
		}
	}
	if code, _ := post(scoreURL, "wrong", string(body), nil); code != http.StatusUnauthorized {
		t.Errorf("wrong key: %d, want 401", code)
	}
	s.ok(t, "service", "regen-key", "digits", "--key", "Primary")
	newKeys := s.keys(t, "digits")
	waitFor(t, 30*time.Second, "the regenerated key to reach the front end", s.log, func() bool {
		c1, _ := post(scoreURL, newKeys.PrimaryKey, string(body), nil)
		c2, _ := post(scoreURL, keys.PrimaryKey, string(body), nil)
		return c1 == http.StatusOK && c2 == http.StatusUnauthorized
	})
	keys = newKeys

	// Logs from the pods.
	if logs := s.ok(t, "service", "get-logs", "digits"); !strings.Contains(logs, "runtime ready") {
		t.Errorf("get-logs lacks the replicas' output:\n%s", logs)
	}

	// A token-auth service.
	s.ok(t, "model", "deploy", "-ct", "node1", "-m", "digits:1", "-n", "digitstok", "-dc",
		dc("tok.json", `{"computeType": "aks", "numReplicas": 1, "authEnabled": false, "tokenAuthEnabled": true, `+small+`}`), "--no-wait")
	waitState(t, s, "digitstok", modelship.StateHealthy, 120*time.Second)
	tok := decode[modelship.AccessToken](t, s.ok(t, "service", "get-access-token", "digitstok", "-o", "json"))
	tokURL := fe + "/api/v1/service/digitstok/score"
	waitFor(t, 30*time.Second, "scoring with a token", s.log, func() bool {
		code, _ := post(tokURL, tok.AccessToken, string(body), nil)
		return code == http.StatusOK
	})

	// An endpoint with two versions: the split holds within ±3 points over
	// 2,000 requests, and the pin header wins.
	s.ok(t, "endpoint", "create", "-ct", "node1", "-n", "digitsep", "-m", "digits:1", "--version-name", "blue", "--traffic-percentile", "70",
		"--num-replicas", "1", "--cpu-cores", "0.1", "--memory-gb", "0.25")
	s.ok(t, "endpoint", "version", "create", "digitsep", "--version-name", "green", "-m", "digits:2", "--traffic-percentile", "30",
		"--num-replicas", "1", "--cpu-cores", "0.1", "--memory-gb", "0.25")
	epKey := decode[modelship.ServiceKeys](t, s.ok(t, "endpoint", "get-keys", "digitsep", "-o", "json")).PrimaryKey
	epURL := fe + "/api/v1/endpoint/digitsep/score"
	waitFor(t, 120*time.Second, "both endpoint versions to answer", s.log, func() bool {
		ep := decode[modelship.Endpoint](t, s.ok(t, "endpoint", "show", "digitsep", "-o", "json"))
		if ep.State != modelship.StateHealthy {
			return false
		}
		counts, _ := hitURL(epURL, epKey, string(body), 50, nil)
		return counts["blue"] > 0 && counts["green"] > 0
	})
	const total = 2000
	counts, failed := hitURL(epURL, epKey, string(body), total, nil)
	if failed != 0 {
		t.Errorf("%d of %d endpoint requests failed", failed, total)
	}
	for v, want := range map[string]float64{"blue": 70, "green": 30} {
		if got := 100 * float64(counts[v]) / total; math.Abs(got-want) > 3 {
			t.Errorf("version %s got %.1f%%, want %g%% ±3 (%v)", v, got, want, counts)
		}
	}
	pinned, _ := hitURL(epURL, epKey, string(body), 100, map[string]string{"azureml-model-deployment": "green"})
	if pinned["green"] != 100 {
		t.Errorf("pinned to green: %v", pinned)
	}
	s.ok(t, "endpoint", "delete", "digitsep")
	s.ok(t, "service", "delete", "digitstok")

	// An update to a new model version under nodeLoad load: no failed request.
	l := loadOn(scoreURL, keys.PrimaryKey, string(body), 4)
	time.Sleep(time.Second)
	start = time.Now()
	s.ok(t, "service", "update", "digits", "-m", "digits:2")
	svc = waitState(t, s, "digits", modelship.StateHealthy, 120*time.Second)
	time.Sleep(2 * time.Second)
	ok, bad := l.stop()
	t.Logf("rolling update of 2 replicas under load: %s; %d requests, %d failed", time.Since(start).Round(time.Millisecond), ok+bad, bad)
	if bad != 0 || ok == 0 || svc.Models[0] != "digits:2" {
		t.Errorf("update under load: %d ok, %d failed (%v), models %v", ok, bad, l.errs(), svc.Models)
	}

	// Kill a model pod's process under load: at most the requests in
	// flight on it fail, and the pod is Ready again.
	pods, err := n.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: kubernetes.LabelDeployment + "=" + kubernetes.LabelValue("default/digits")})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("pods: %v %v", pods, err)
	}
	victim := pods.Items[0].Name
	pid := podPID(t, victim)
	l = loadOn(scoreURL, keys.PrimaryKey, string(body), 4)
	time.Sleep(time.Second)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the killed pod to be Ready again", s.log, func() bool {
		p, err := n.Client.CoreV1().Pods(ns).Get(ctx, victim, metav1.GetOptions{})
		if err != nil || len(p.Status.ContainerStatuses) == 0 {
			return false
		}
		cs := p.Status.ContainerStatuses[0]
		return cs.RestartCount > 0 && cs.Ready
	})
	time.Sleep(time.Second)
	ok, bad = l.stop()
	t.Logf("kill -9 of a replica under load (4 clients): %d requests, %d failed", ok+bad, bad)
	if bad > 4 {
		t.Errorf("%d requests failed when one replica was killed (4 in flight at most): %v", bad, l.errs())
	}

	// The autoscaler scales the Deployment up under load and back down.
	s.ok(t, "model", "deploy", "-ct", "node1", "-m", "digits:1", "-n", "digitsauto", "-dc", dc("auto.json",
		`{"computeType": "aks", "autoScaler": {"autoscaleEnabled": true, "minReplicas": 1, "maxReplicas": 3, "refreshPeriodInSeconds": 1, "targetUtilization": 10}, `+small+`}`), "--no-wait")
	waitState(t, s, "digitsauto", modelship.StateHealthy, 120*time.Second)
	autoKey := s.keys(t, "digitsauto").PrimaryKey
	autoURL := fe + "/api/v1/service/digitsauto/score"
	l = loadOn(autoURL, autoKey, string(body), 6)
	depName := kubernetes.ObjectName("default/digitsauto")
	waitFor(t, 90*time.Second, "the autoscaler to scale up", s.log, func() bool {
		d, err := n.Client.AppsV1().Deployments(ns).Get(ctx, depName, metav1.GetOptions{})
		return err == nil && *d.Spec.Replicas >= 2
	})
	l.stop()
	waitFor(t, 90*time.Second, "the autoscaler to scale back down", s.log, func() bool {
		d, err := n.Client.AppsV1().Deployments(ns).Get(ctx, depName, metav1.GetOptions{})
		return err == nil && *d.Spec.Replicas == 1
	})
	s.ok(t, "service", "delete", "digitsauto")

	// More CPU than the node has: Unschedulable with the reason.
	s.ok(t, "model", "deploy", "-ct", "node1", "-m", "digits:1", "-n", "digitsbig", "-dc",
		dc("big.json", `{"computeType": "aks", "numReplicas": 1, "containerResourceRequirements": {"cpu": 64, "memoryInGB": 0.25}}`), "--no-wait")
	big := waitState(t, s, "digitsbig", modelship.StateUnschedulable, 60*time.Second)
	if big.Error == nil || !strings.Contains(big.Error.Message, "Insufficient cpu") {
		t.Errorf("unschedulable: %+v", big.Error)
	}
	s.ok(t, "service", "delete", "digitsbig")

	// The control plane goes away: scoring keeps working with keys and
	// tokens; it comes back and reconciles without duplicates.
	s.ok(t, "model", "deploy", "-ct", "node1", "-m", "digits:1", "-n", "digitstok", "-dc",
		dc("tok.json", `{"computeType": "aks", "numReplicas": 1, "authEnabled": false, "tokenAuthEnabled": true, `+small+`}`), "--no-wait")
	waitState(t, s, "digitstok", modelship.StateHealthy, 120*time.Second)
	tok = decode[modelship.AccessToken](t, s.ok(t, "service", "get-access-token", "digitstok", "-o", "json"))
	waitFor(t, 30*time.Second, "scoring with a token", s.log, func() bool {
		code, _ := post(tokURL, tok.AccessToken, string(body), nil)
		return code == http.StatusOK
	})
	if err := s.stop(); err != nil {
		t.Fatalf("stopping the server: %v", err)
	}
	for i := range 20 {
		if code, out := post(scoreURL, keys.PrimaryKey, string(body), nil); code != http.StatusOK {
			t.Fatalf("with the control plane down, request %d with a key: %d %s", i, code, out)
		}
		if code, out := post(tokURL, tok.AccessToken, string(body), nil); code != http.StatusOK {
			t.Fatalf("with the control plane down, request %d with a token: %d %s", i, code, out)
		}
	}
	s = startServer(t, dataDir, args...)
	waitState(t, s, "digits", modelship.StateHealthy, 60*time.Second)
	deps, err := n.Client.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{LabelSelector: kubernetes.LabelManagedBy + "=" + kubernetes.ManagedBy})
	if err != nil {
		t.Fatal(err)
	}
	if len(deps.Items) != 3 { // front end, digits, digitstok
		names := []string{}
		for _, d := range deps.Items {
			names = append(names, d.Name)
		}
		t.Errorf("after the restart: deployments %v, want the front end, digits and digitstok", names)
	}
	if code, out := post(scoreURL, keys.PrimaryKey, string(body), nil); code != http.StatusOK {
		t.Errorf("after the restart: %d %s", code, out)
	}

	// Detach leaves nothing behind.
	start = time.Now()
	s.ok(t, "computetarget", "detach", "node1", "--force")
	t.Logf("detach --force: %s", time.Since(start).Round(time.Millisecond))
	sel := metav1.ListOptions{LabelSelector: kubernetes.LabelManagedBy + "=" + kubernetes.ManagedBy}
	left := 0
	if l, err := n.Client.AppsV1().Deployments(ns).List(ctx, sel); err == nil {
		left += len(l.Items)
	}
	if l, err := n.Client.CoreV1().Pods(ns).List(ctx, sel); err == nil {
		left += len(l.Items)
	}
	if l, err := n.Client.CoreV1().Services(ns).List(ctx, sel); err == nil {
		left += len(l.Items)
	}
	if l, err := n.Client.CoreV1().Secrets(ns).List(ctx, sel); err == nil {
		left += len(l.Items)
	}
	if left != 0 {
		t.Errorf("%d objects left after detach", left)
	}
	_ = corev1.PodRunning
}

// post sends body with a bearer credential and returns the status and body.
func post(url, cred, body string, header map[string]string) (int, string) {
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// hitURL sends n requests from 8 clients and counts answers per version
// (the azureml-model-deployment response header) and failures.
func hitURL(url, key, body string, n int, header map[string]string) (map[string]int, int) {
	var mu sync.Mutex
	counts, failed := map[string]int{}, 0
	next := make(chan struct{}, n)
	for range n {
		next <- struct{}{}
	}
	close(next)
	client := &http.Client{Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				req, _ := http.NewRequest("POST", url, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+key)
				for k, v := range header {
					req.Header.Set(k, v)
				}
				resp, err := client.Do(req)
				mu.Lock()
				if err != nil {
					failed++
				} else {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						counts[resp.Header.Get("azureml-model-deployment")]++
					} else {
						failed++
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return counts, failed
}

// nodeLoad is a bounded closed-loop load of c clients.
type nodeLoad struct {
	done     chan struct{}
	wg       sync.WaitGroup
	ok, bad  atomic.Int64
	mu       sync.Mutex
	failures []string
}

// loadOn starts c clients posting body to url until stop (at most 2
// minutes).
func loadOn(url, key, body string, c int) *nodeLoad {
	l := &nodeLoad{done: make(chan struct{})}
	deadline := time.Now().Add(2 * time.Minute)
	for range c {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for time.Now().Before(deadline) {
				select {
				case <-l.done:
					return
				default:
				}
				code, out := post(url, key, body, nil)
				if code == http.StatusOK {
					l.ok.Add(1)
					continue
				}
				l.bad.Add(1)
				l.mu.Lock()
				if len(l.failures) < 5 {
					l.failures = append(l.failures, fmt.Sprintf("%d %s", code, strings.TrimSpace(out)))
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *nodeLoad) stop() (ok, bad int64) {
	close(l.done)
	l.wg.Wait()
	return l.ok.Load(), l.bad.Load()
}

func (l *nodeLoad) errs() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failures
}

// podPID finds the host PID of the serve-model process of a pod (its
// environment names the pod).
func podPID(t *testing.T, pod string) int {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		if strings.Contains(string(env), "MODELSHIP_REPLICA_ID="+pod+"\x00") {
			return pid
		}
	}
	t.Fatalf("no process of pod %s", pod)
	return 0
}
