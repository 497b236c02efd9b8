package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/auth"
	"github.com/modelship/modelship/compute/kubernetes"
	"github.com/modelship/modelship/gateway"
	"github.com/modelship/modelship/gateway/incluster"
	"github.com/modelship/modelship/internal/k8stest"
)

func TestGatewayNamespace(t *testing.T) {
	dir := t.TempDir()
	nsFile := filepath.Join(dir, "namespace")
	t.Setenv("POD_NAMESPACE", "")
	if _, err := gatewayNamespace("", nsFile); err == nil || !strings.Contains(err.Error(), "--namespace is required") {
		t.Errorf("no namespace anywhere: %v", err)
	}
	if err := os.WriteFile(nsFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if ns, err := gatewayNamespace("", nsFile); ns != "from-file" || err != nil {
		t.Errorf("service account file: %q, %v", ns, err)
	}
	t.Setenv("POD_NAMESPACE", "from-env")
	if ns, err := gatewayNamespace("", nsFile); ns != "from-env" || err != nil {
		t.Errorf("$POD_NAMESPACE: %q, %v", ns, err)
	}
	if ns, err := gatewayNamespace("from-flag", nsFile); ns != "from-flag" || err != nil {
		t.Errorf("--namespace: %q, %v", ns, err)
	}
}

// gatewayProc is a running `modelship gateway`.
type gatewayProc struct {
	cmd    *exec.Cmd
	url    string
	stderr *syncBuffer
	done   chan struct{}
	err    error
}

func startGateway(t *testing.T, args ...string) *gatewayProc {
	t.Helper()
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(modelshipBin, append([]string{"gateway", "--listen", addr}, args...)...)
	g := &gatewayProc{cmd: cmd, url: "http://" + addr, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = g.stderr, g.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		g.err = cmd.Wait()
		close(g.done)
	}()
	t.Cleanup(func() {
		select {
		case <-g.done:
		default:
			_ = cmd.Process.Kill()
			<-g.done
		}
		if t.Failed() {
			t.Logf("modelship gateway output:\n%s", g.stderr)
		}
	})
	return g
}

// get returns the status and body of GET path, or 0 when the gateway
// does not answer (yet).
func (g *gatewayProc) get(path string) (int, string) {
	resp, err := http.Get(g.url + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitUntil polls cond (the gateway is another process: there is no event
// to wait on) until it holds, the gateway exits or timeout passes.
func (g *gatewayProc) waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	start := time.Now()
	for !cond() {
		select {
		case <-g.done:
			t.Fatalf("modelship gateway exited (%v) while waiting for %s\n%s", g.err, what, g.stderr)
		default:
		}
		if time.Since(start) > timeout {
			t.Fatalf("waiting %s for %s", timeout, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Logf("%s: after %s", what, time.Since(start).Round(time.Millisecond))
}

// TestGatewayCommand runs the real binary against a real API server with
// only the documented RBAC: it becomes ready once its watches sync, scores
// through a replica, follows an EndpointSlice (seen in /metrics, since
// the API server refuses loopback endpoint addresses), and drains a
// request in flight on SIGTERM before exiting 0.
func TestGatewayCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping a test against a real Kubernetes API server")
	}
	c := k8stest.Start(t)
	ctx := context.Background()
	const ns = "frontend"
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	const user = "system:serviceaccount:frontend:modelship-frontend"
	if _, err := c.Client.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: kubernetes.FrontEndName}, Rules: incluster.PolicyRules()}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: kubernetes.FrontEndName},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: kubernetes.FrontEndName},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: user}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kc, err := c.UserKubeconfig(user)
	if err != nil {
		t.Fatal(err)
	}
	kcPath := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kcPath, kc, 0o600); err != nil {
		t.Fatal(err)
	}

	// The replica: /score answers at once, or after a while for "slow".
	slowStarted := make(chan struct{}, 1)
	replica := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if strings.Contains(string(b), "slow") {
			slowStarted <- struct{}{}
			time.Sleep(1500 * time.Millisecond)
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"replica":"A"}`)
	}))
	defer replica.Close()

	key := "frontend-key-" + strings.Repeat("k", 30)
	table := &modelship.RouteTable{Generation: 1, Routes: []modelship.Route{
		// A version without a deployment keeps the replicas the Secret
		// lists: the replica on 127.0.0.1, which no EndpointSlice may name.
		{Kind: modelship.RouteService, Workspace: "ws", Name: "svc", Auth: modelship.AuthKey, KeyHashes: []string{auth.HashKey(key)},
			Versions: []modelship.RouteVersion{{Name: "svc", TrafficPercent: 100, IsDefault: true,
				Replicas: []modelship.ReplicaEndpoint{{ID: "static-a", URL: replica.URL, Ready: true}}}}},
		{Kind: modelship.RouteEndpoint, Workspace: "ws", Name: "ep", Auth: modelship.AuthKey, KeyHashes: []string{auth.HashKey(key)},
			Versions: []modelship.RouteVersion{
				{Name: "v1", TrafficPercent: 100, IsDefault: true, Replicas: []modelship.ReplicaEndpoint{{ID: "static-a", URL: replica.URL, Ready: true}}},
				{Name: "v2", Deployment: "ws/ep.v2", MaxQueueWait: 100 * time.Millisecond},
			}},
	}}
	data, err := json.Marshal(table)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: kubernetes.RoutesSecretName},
		Data: map[string][]byte{kubernetes.RoutesSecretKey: data}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	g := startGateway(t, "--kubeconfig", kcPath, "--namespace", ns)
	g.waitUntil(t, 30*time.Second, "/readyz 200", func() bool { code, _ := g.get("/readyz"); return code == 200 })
	t.Logf("start -> ready: %s", time.Since(start).Round(time.Millisecond))
	if code, body := g.get("/healthz"); code != 200 {
		t.Errorf("/healthz: %d %s", code, body)
	}
	bearer := map[string]string{"Authorization": "Bearer " + key}
	if r := do(t, "POST", g.url+"/api/v1/service/svc/score", `{"data":[1]}`, bearer); r.status != 200 || !strings.Contains(r.body, `"A"`) {
		t.Fatalf("score: %d %s", r.status, r.body)
	}
	if r := do(t, "POST", g.url+"/api/v1/service/svc/score", `{"data":[1]}`, map[string]string{"Authorization": "Bearer wrong"}); r.status != 401 {
		t.Errorf("score with a wrong key: %d %s", r.status, r.body)
	}
	if r := do(t, "POST", g.url+"/api/v1/endpoint/ep/score", `{"data":[1]}`, bearer); r.status != 200 || r.header.Get(gateway.DeploymentHeader) != "v1" {
		t.Errorf("endpoint score: %d %s (version %q)", r.status, r.body, r.header.Get(gateway.DeploymentHeader))
	}

	// v2's replica appears through an EndpointSlice of its Service.
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: kubernetes.ObjectName("ws/ep.v2") + "-abcde", Labels: map[string]string{
			discoveryv1.LabelServiceName: kubernetes.ObjectName("ws/ep.v2"), kubernetes.LabelManagedBy: kubernetes.ManagedBy}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptrTo("http"), Port: ptrTo(int32(kubernetes.ServicePort))}},
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"198.51.100.7"}, Conditions: discoveryv1.EndpointConditions{Ready: ptrTo(false)},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "ms-ws-ep-v2-pod"}}},
	}
	if sl, err = c.Client.DiscoveryV1().EndpointSlices(ns).Create(ctx, sl, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	metric := func(re string) func() bool {
		rx := regexp.MustCompile(re)
		return func() bool { code, body := g.get("/metrics"); return code == 200 && rx.MatchString(body) }
	}
	g.waitUntil(t, 10*time.Second, "v2's pod in /metrics, not ready", metric(`modelship_gateway_replica_inflight_requests\{replica="ms-ws-ep-v2-pod",route="ep",version="v2"\} 0`))
	if !metric(`modelship_gateway_ready_replicas\{route="ep",version="v2"\} 0`)() {
		t.Errorf("v2 has a ready replica before its endpoint is ready")
	}
	if r := do(t, "POST", g.url+"/api/v1/endpoint/ep/score", `{"data":[1]}`, map[string]string{"Authorization": "Bearer " + key, gateway.DeploymentHeader: "v2"}); r.status != 503 {
		t.Errorf("pinned to v2 without a ready replica: %d %s", r.status, r.body)
	}
	sl.Endpoints[0].Conditions.Ready = ptrTo(true)
	if _, err := c.Client.DiscoveryV1().EndpointSlices(ns).Update(ctx, sl, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	g.waitUntil(t, 10*time.Second, "v2's pod ready in /metrics", metric(`modelship_gateway_ready_replicas\{route="ep",version="v2"\} 1`))
	if code, body := g.get("/metrics"); !strings.Contains(body, `modelship_gateway_requests_total{`) {
		t.Errorf("/metrics: %d, no request counter:\n%s", code, body)
	}

	// SIGTERM with a request in flight: it completes, then the process exits 0.
	type result struct {
		status int
		body   string
		err    error
	}
	resc := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("POST", g.url+"/api/v1/service/svc/score", strings.NewReader(`{"data":"slow"}`))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			resc <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		resc <- result{resp.StatusCode, string(b), err}
	}()
	select {
	case <-slowStarted:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow request did not reach the replica")
	}
	stop := time.Now()
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.done:
	case <-time.After(20 * time.Second):
		t.Fatal("modelship gateway still running 20s after SIGTERM")
	}
	t.Logf("SIGTERM -> exit: %s", time.Since(stop).Round(time.Millisecond))
	if g.err != nil {
		t.Errorf("exit: %v; want 0\n%s", g.err, g.stderr)
	}
	r := <-resc
	if r.err != nil || r.status != 200 || !strings.Contains(r.body, `"A"`) {
		t.Errorf("request in flight at SIGTERM: %d %q %v", r.status, r.body, r.err)
	}
	if out := g.stderr.String(); !strings.Contains(out, "draining requests in flight") || !strings.Contains(out, "stopped") {
		t.Errorf("log does not mention the drain:\n%s", out)
	}
	if _, err := c.Client.CoreV1().Secrets(ns).Get(ctx, kubernetes.RoutesSecretName, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		t.Error("the front end must not delete the route Secret")
	}
}

func ptrTo[T any](v T) *T { return &v }
