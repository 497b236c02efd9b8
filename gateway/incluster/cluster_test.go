package incluster_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/auth"
	"github.com/modelship/modelship/compute"
	"github.com/modelship/modelship/compute/kubernetes"
	"github.com/modelship/modelship/gateway"
	"github.com/modelship/modelship/gateway/incluster"
	"github.com/modelship/modelship/internal/k8stest"
)

func TestMain(m *testing.M) { k8stest.Main(m) }

// testImage is the image of driver-made deployments (KWOK pods never pull it).
const testImage = "registry.example/modelship:test"

func cluster(t *testing.T) *k8stest.Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("incluster: -short: skipping tests against a real Kubernetes API server")
	}
	return k8stest.Shared(t)
}

// namespace creates ns (unless it exists) and deletes it when t ends.
func namespace(t *testing.T, c *k8stest.Cluster, ns string) {
	t.Helper()
	_, err := c.Client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Client.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	})
}

// frontendClient returns a client of a user that holds exactly
// incluster.PolicyRules in ns: what the front end's ServiceAccount gets.
func frontendClient(t *testing.T, c *k8stest.Cluster, ns, user string) k8s.Interface {
	t.Helper()
	ctx := context.Background()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: user}, Rules: incluster.PolicyRules()}
	if _, err := c.Client.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: user},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: user},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: user}},
	}
	if _, err := c.Client.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg, err := c.UserConfig(user)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := k8s.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// writeRoutes creates or updates the route Secret with data.
func writeRoutes(t *testing.T, c *k8stest.Cluster, ns string, data []byte) {
	t.Helper()
	ctx := context.Background()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: kubernetes.RoutesSecretName, Namespace: ns},
		Data: map[string][]byte{kubernetes.RoutesSecretKey: data}}
	_, err := c.Client.CoreV1().Secrets(ns).Update(ctx, s, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		_, err = c.Client.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
}

func routesJSON(t *testing.T, rt *modelship.RouteTable) []byte {
	t.Helper()
	b, err := json.Marshal(rt)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// modelService creates the selector-less Service of deployment id, as the
// driver's Services look (managed-by label, port 5001 "http").
func modelService(t *testing.T, c *k8stest.Cluster, ns, id string) {
	t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: kubernetes.ObjectName(id), Labels: map[string]string{kubernetes.LabelManagedBy: kubernetes.ManagedBy}},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: kubernetes.ServicePort, Protocol: corev1.ProtocolTCP}}},
	}
	if _, err := c.Client.CoreV1().Services(ns).Create(context.Background(), svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// putSlice creates or replaces the hand-made EndpointSlice of deployment
// id: one endpoint per address, all on port.
func putSlice(t *testing.T, c *k8stest.Cluster, ns, id string, port int, ready bool, addrs ...string) {
	t.Helper()
	ctx := context.Background()
	name := kubernetes.ObjectName(id) + "-manual"
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			discoveryv1.LabelServiceName: kubernetes.ObjectName(id), kubernetes.LabelManagedBy: kubernetes.ManagedBy}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(port)), Protocol: ptr(corev1.ProtocolTCP)}},
	}
	for i, a := range addrs {
		sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{Addresses: []string{a}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(ready)},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: fmt.Sprintf("%s-pod-%d", kubernetes.ObjectName(id), i)}})
	}
	cur, err := c.Client.DiscoveryV1().EndpointSlices(ns).Get(ctx, name, metav1.GetOptions{})
	if err == nil {
		sl.ResourceVersion = cur.ResourceVersion
		_, err = c.Client.DiscoveryV1().EndpointSlices(ns).Update(ctx, sl, metav1.UpdateOptions{})
	} else if apierrors.IsNotFound(err) {
		_, err = c.Client.DiscoveryV1().EndpointSlices(ns).Create(ctx, sl, metav1.CreateOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }

var seq atomic.Int64

// unique returns prefix-<n>: names of a namespace or node not used by an
// earlier run in this process (-count=N), whose deletion may not be over.
func unique(prefix string) string { return fmt.Sprintf("%s-%d", prefix, seq.Add(1)) }

// publisher wakes waiters at every published table.
type publisher struct {
	mu sync.Mutex
	ch chan struct{}
	n  int
}

func newPublisher() *publisher { return &publisher{ch: make(chan struct{})} }

func (p *publisher) published() {
	p.mu.Lock()
	p.n++
	close(p.ch)
	p.ch = make(chan struct{})
	p.mu.Unlock()
}

func (p *publisher) wait() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ch
}

// startDiscovery starts a Discovery publishing to gw (if not nil).
func startDiscovery(t *testing.T, client k8s.Interface, ns string, gw *gateway.Gateway) (*incluster.Discovery, *publisher) {
	t.Helper()
	p := newPublisher()
	d, err := incluster.NewDiscovery(incluster.Config{Client: client, Namespace: ns, Publish: func(rt *modelship.RouteTable) {
		if gw != nil {
			gw.Update(rt)
		}
		p.published()
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("discovery synced in %s", time.Since(start).Round(time.Millisecond))
	t.Cleanup(d.Close)
	return d, p
}

// waitTable waits (on publications) until cond holds for the table.
func waitTable(t *testing.T, d *incluster.Discovery, p *publisher, timeout time.Duration, what string, cond func(*modelship.RouteTable) bool) *modelship.RouteTable {
	t.Helper()
	start := time.Now()
	deadline := time.After(timeout)
	for {
		ch := p.wait()
		if rt := d.Table(); cond(rt) {
			t.Logf("%s: after %s (generation %d)", what, time.Since(start).Round(time.Millisecond), rt.Generation)
			return rt
		}
		select {
		case <-ch:
		case <-deadline:
			b, _ := json.Marshal(d.Table())
			t.Fatalf("waiting %s for %s; table: %s", timeout, what, b)
		}
	}
}

func version(rt *modelship.RouteTable, route, version string) *modelship.RouteVersion {
	for i := range rt.Routes {
		if rt.Routes[i].Name != route {
			continue
		}
		for j := range rt.Routes[i].Versions {
			if rt.Routes[i].Versions[j].Name == version {
				return &rt.Routes[i].Versions[j]
			}
		}
	}
	return nil
}

func readyCount(v *modelship.RouteVersion) int {
	n := 0
	if v != nil {
		for _, r := range v.Replicas {
			if r.Ready {
				n++
			}
		}
	}
	return n
}

// replicaServer is a model replica answering /score with its name.
func replicaServer(t *testing.T, name string) (*httptest.Server, int) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/score" {
			http.NotFound(w, r)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"replica":%q}`, name)
	}))
	t.Cleanup(srv.Close)
	return srv, srv.Listener.Addr().(*net.TCPAddr).Port
}

// fakeNet is the documentation range (TEST-NET-2) the hand-made slices
// use: the API server refuses loopback addresses in EndpointSlices, so the
// test gateway's transport dials 127.0.0.1 for these addresses.
const fakeNet = "198.51.100."

func loopbackTransport() http.RoundTripper {
	tr := gateway.NewTransport()
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err == nil && strings.HasPrefix(host, fakeNet) {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		return d.DialContext(ctx, network, addr)
	}
	return tr
}

type scoreResult struct {
	status  int
	body    string
	version string // the DeploymentHeader of the response
}

func score(t *testing.T, base, kind, name, credential, pin string) scoreResult {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/api/v1/"+kind+"/"+name+"/score", strings.NewReader(`{"data":[1]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if credential != "" {
		req.Header.Set("Authorization", "Bearer "+credential)
	}
	if pin != "" {
		req.Header.Set(gateway.DeploymentHeader, pin)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return scoreResult{status: resp.StatusCode, body: string(b), version: resp.Header.Get(gateway.DeploymentHeader)}
}

func mustStatus(t *testing.T, what string, got scoreResult, status int, bodyHas string) {
	t.Helper()
	if got.status != status || !strings.Contains(got.body, bodyHas) {
		t.Fatalf("%s: HTTP %d %s; want %d with %q", what, got.status, got.body, status, bodyHas)
	}
}

// TestDiscoveryScoring: routes from the Secret and replicas from hand-made
// EndpointSlices reach a real gateway, which scores on real HTTP replicas;
// readiness, key changes, traffic split, pinning, lending, a malformed and
// a missing Secret follow the watch events.
func TestDiscoveryScoring(t *testing.T) {
	c := cluster(t)
	ns := unique("incl-scoring")
	namespace(t, c, ns)
	client := frontendClient(t, c, ns, "frontend-scoring")

	_, portA := replicaServer(t, "A")
	_, portB := replicaServer(t, "B")
	key1, key2 := "key-one-"+strings.Repeat("1", 30), "key-two-"+strings.Repeat("2", 30)
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := auth.NewTokenSigner(priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	wait := 100 * time.Millisecond
	table := &modelship.RouteTable{Generation: 3, TokenPublicKeys: signer.PublicKeys(), Routes: []modelship.Route{
		{Kind: modelship.RouteService, Workspace: "ws", Name: "svc", Auth: modelship.AuthKey, KeyHashes: []string{auth.HashKey(key1)},
			Versions: []modelship.RouteVersion{{Name: "svc", Deployment: "ws/svc", TrafficPercent: 100, IsDefault: true, MaxQueueWait: wait, Replicas: []modelship.ReplicaEndpoint{}}}},
		{Kind: modelship.RouteService, Workspace: "ws", Name: "tsvc", Auth: modelship.AuthToken, TokenAudience: "aud-tsvc",
			Versions: []modelship.RouteVersion{{Name: "tsvc", Deployment: "ws/tsvc", TrafficPercent: 100, IsDefault: true, MaxQueueWait: wait}}},
		{Kind: modelship.RouteEndpoint, Workspace: "ws", Name: "ep", Auth: modelship.AuthKey, KeyHashes: []string{auth.HashKey(key1)},
			Versions: []modelship.RouteVersion{
				{Name: "v1", Deployment: "ws/ep.v1", TrafficPercent: 70, IsDefault: true, MaxQueueWait: wait, MaxConcurrentRequestsPerContainer: 4},
				{Name: "v2", Deployment: "ws/ep.v2", TrafficPercent: 30, MaxQueueWait: wait, MaxConcurrentRequestsPerContainer: 4},
			}},
	}}
	writeRoutes(t, c, ns, routesJSON(t, table))
	for _, id := range []string{"ws/svc", "ws/tsvc", "ws/ep.v1", "ws/ep.v2"} {
		modelService(t, c, ns, id)
	}
	putSlice(t, c, ns, "ws/svc", portA, true, fakeNet+"1")
	putSlice(t, c, ns, "ws/tsvc", portA, true, fakeNet+"1")
	putSlice(t, c, ns, "ws/ep.v1", portA, true, fakeNet+"1")
	putSlice(t, c, ns, "ws/ep.v2", portB, true, fakeNet+"2")

	gw := gateway.New(gateway.Config{Transport: loopbackTransport(), AutoscaleInterval: -1})
	t.Cleanup(func() { gw.Close() })
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	d, p := startDiscovery(t, client, ns, gw)
	rt := waitTable(t, d, p, 10*time.Second, "4 versions with a ready replica", func(rt *modelship.RouteTable) bool {
		for _, v := range [][2]string{{"svc", "svc"}, {"tsvc", "tsvc"}, {"ep", "v1"}, {"ep", "v2"}} {
			if readyCount(version(rt, v[0], v[1])) != 1 {
				return false
			}
		}
		return true
	})
	if v := version(rt, "svc", "svc"); v.Replicas[0] != (modelship.ReplicaEndpoint{ID: "ms-ws-svc-pod-0", URL: fmt.Sprintf("http://%s1:%d", fakeNet, portA), Ready: true}) {
		t.Errorf("svc replica %+v", v.Replicas[0])
	}
	if rt.Generation < 1 || len(rt.TokenPublicKeys) != 1 {
		t.Errorf("generation %d, %d public keys", rt.Generation, len(rt.TokenPublicKeys))
	}

	// Key auth.
	mustStatus(t, "svc with key1", score(t, srv.URL, "service", "svc", key1, ""), 200, `"A"`)
	mustStatus(t, "svc with a wrong key", score(t, srv.URL, "service", "svc", "nope", ""), 401, "Unauthorized")
	mustStatus(t, "unknown service", score(t, srv.URL, "service", "nope", key1, ""), 404, "")

	// Token auth.
	tok, err := signer.Issue("aud-tsvc", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, err := signer.Issue("aud-other", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	mustStatus(t, "tsvc with a token", score(t, srv.URL, "service", "tsvc", tok.AccessToken, ""), 200, `"A"`)
	mustStatus(t, "tsvc with another audience's token", score(t, srv.URL, "service", "tsvc", other.AccessToken, ""), 401, "")
	mustStatus(t, "tsvc with a key", score(t, srv.URL, "service", "tsvc", key1, ""), 401, "")

	// The endpoint goes not ready: no ready replica.
	putSlice(t, c, ns, "ws/svc", portA, false, fakeNet+"1")
	waitTable(t, d, p, 10*time.Second, "svc replica not ready", func(rt *modelship.RouteTable) bool {
		v := version(rt, "svc", "svc")
		return v != nil && len(v.Replicas) == 1 && !v.Replicas[0].Ready
	})
	mustStatus(t, "svc without a ready replica", score(t, srv.URL, "service", "svc", key1, ""), 503, "No ready replicas")
	putSlice(t, c, ns, "ws/svc", portA, true, fakeNet+"1")
	waitTable(t, d, p, 10*time.Second, "svc replica ready again", func(rt *modelship.RouteTable) bool { return readyCount(version(rt, "svc", "svc")) == 1 })
	mustStatus(t, "svc ready again", score(t, srv.URL, "service", "svc", key1, ""), 200, `"A"`)

	// New key hashes in the Secret.
	table.Routes[0].KeyHashes = []string{auth.HashKey(key2)}
	writeRoutes(t, c, ns, routesJSON(t, table))
	waitTable(t, d, p, 10*time.Second, "svc key rotated", func(rt *modelship.RouteTable) bool {
		return len(rt.Routes) == 3 && rt.Routes[0].KeyHashes[0] == auth.HashKey(key2)
	})
	mustStatus(t, "svc with the old key", score(t, srv.URL, "service", "svc", key1, ""), 401, "")
	mustStatus(t, "svc with the new key", score(t, srv.URL, "service", "svc", key2, ""), 200, `"A"`)

	// Traffic split 70/30 between two Services' replicas, and pinning.
	const n = 400
	counts := map[string]int{}
	for range n {
		r := score(t, srv.URL, "endpoint", "ep", key1, "")
		if r.status != 200 {
			t.Fatalf("ep: HTTP %d %s", r.status, r.body)
		}
		counts[r.version+"="+r.body]++
	}
	a, b := counts[`v1={"replica":"A"}`], counts[`v2={"replica":"B"}`]
	t.Logf("split of %d requests: %v", n, counts)
	if a+b != n || a < n*55/100 || a > n*85/100 {
		t.Errorf("split %v; want about 70 %% v1 (A) and 30 %% v2 (B)", counts)
	}
	for range 20 {
		r := score(t, srv.URL, "endpoint", "ep", key1, "v2")
		if r.status != 200 || r.version != "v2" || !strings.Contains(r.body, `"B"`) {
			t.Fatalf("ep pinned to v2: HTTP %d %s (version %q)", r.status, r.body, r.version)
		}
	}
	mustStatus(t, "ep pinned to an unknown version", score(t, srv.URL, "endpoint", "ep", key1, "v9"), 404, "v1, v2")

	// v2 loses its ready replica: its share goes to the default v1.
	putSlice(t, c, ns, "ws/ep.v2", portB, false, fakeNet+"2")
	waitTable(t, d, p, 10*time.Second, "v2 lends its share to v1", func(rt *modelship.RouteTable) bool {
		v1, v2 := version(rt, "ep", "v1"), version(rt, "ep", "v2")
		return v1 != nil && v2 != nil && v1.TrafficPercent == 100 && v2.TrafficPercent == 0
	})
	for range 50 {
		mustStatus(t, "ep while v2 is not ready", score(t, srv.URL, "endpoint", "ep", key1, ""), 200, `"A"`)
	}

	// A malformed Secret keeps the last good table; the next slice change
	// is applied to it.
	writeRoutes(t, c, ns, []byte(`{"routes": [`))
	putSlice(t, c, ns, "ws/svc", portA, true, fakeNet+"1", fakeNet+"3")
	waitTable(t, d, p, 10*time.Second, "second svc replica after a malformed Secret", func(rt *modelship.RouteTable) bool {
		return readyCount(version(rt, "svc", "svc")) == 2 && len(rt.Routes) == 3
	})
	mustStatus(t, "svc after a malformed Secret", score(t, srv.URL, "service", "svc", key2, ""), 200, `"A"`)

	// No Secret: no routes.
	if err := c.Client.CoreV1().Secrets(ns).Delete(context.Background(), kubernetes.RoutesSecretName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitTable(t, d, p, 10*time.Second, "no routes without the Secret", func(rt *modelship.RouteTable) bool { return len(rt.Routes) == 0 })
	mustStatus(t, "svc without the Secret", score(t, srv.URL, "service", "svc", key2, ""), 404, "")

	// The Secret comes back.
	writeRoutes(t, c, ns, routesJSON(t, table))
	waitTable(t, d, p, 10*time.Second, "routes back", func(rt *modelship.RouteTable) bool { return len(rt.Routes) == 3 })
	mustStatus(t, "svc with the Secret back", score(t, srv.URL, "service", "svc", key2, ""), 200, `"A"`)
	if d.Table().Generation <= rt.Generation {
		t.Errorf("generation did not increase: %d then %d", rt.Generation, d.Table().Generation)
	}
}

// TestDriverDeployments: Deployments and Services made by the Kubernetes
// driver run pods on a KWOK node; the EndpointSlice controller publishes
// their IPs and Discovery lists them as the version's replicas. The
// Scaler scales one through the scale subresource, and the gateway's
// autoscaler scales another to its minimum through the Scaler.
func TestDriverDeployments(t *testing.T) {
	c := cluster(t)
	ns := unique("incl-driver")
	node := unique("incl-node")
	c.AddNode(t, node, "8", "32Gi", 0)
	ctx := context.Background()
	drv, err := kubernetes.New(ctx, kubernetes.Config{REST: c.Config, Namespace: ns, Image: testImage})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = drv.Close(context.Background()) })
	namespace(t, c, ns) // exists: deleted at the end
	client := frontendClient(t, c, ns, "frontend-driver")

	start := time.Now()
	for _, id := range []string{"ws/kube", "ws/auto"} {
		if err := drv.Apply(ctx, &compute.Spec{ID: id, Revision: "r1", Replicas: 1, CPU: 0.1, MemoryGB: 0.1}); err != nil {
			t.Fatal(err)
		}
	}
	table := &modelship.RouteTable{Routes: []modelship.Route{
		{Kind: modelship.RouteService, Workspace: "ws", Name: "kube", Auth: modelship.AuthKey,
			Versions: []modelship.RouteVersion{{Name: "kube", Deployment: "ws/kube", TrafficPercent: 100, IsDefault: true}}},
		{Kind: modelship.RouteService, Workspace: "ws", Name: "auto", Auth: modelship.AuthKey,
			Versions: []modelship.RouteVersion{{Name: "auto", Deployment: "ws/auto", TrafficPercent: 100, IsDefault: true,
				Autoscale: &modelship.AutoscaleSettings{MinReplicas: 2, MaxReplicas: 3, RefreshPeriod: 200 * time.Millisecond, TargetUtilization: 70}}}},
	}}
	writeRoutes(t, c, ns, routesJSON(t, table))

	var d *incluster.Discovery
	scaler := &incluster.Scaler{Client: client, Namespace: ns, Table: func() *modelship.RouteTable { return d.Table() }}
	d, p := startDiscovery(t, client, ns, nil)
	rt := waitTable(t, d, p, 30*time.Second, "1 ready pod replica of kube", func(rt *modelship.RouteTable) bool {
		return readyCount(version(rt, "kube", "kube")) == 1
	})
	t.Logf("apply -> replica discovered: %s", time.Since(start).Round(time.Millisecond))
	pods, err := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: kubernetes.LabelDeployment + "=" + kubernetes.LabelValue("ws/kube")})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods of ws/kube: %v, %v", pods, err)
	}
	pod := pods.Items[0]
	want := modelship.ReplicaEndpoint{ID: pod.Name, URL: "http://" + pod.Status.PodIP + ":5001", Ready: true}
	if got := version(rt, "kube", "kube").Replicas[0]; got != want || !strings.HasPrefix(pod.Status.PodIP, "10.244.") {
		t.Errorf("replica %+v, want %+v", got, want)
	}

	// The Scaler: 1 -> 3 through the scale subresource.
	start = time.Now()
	if err := scaler.SetReplicas(ctx, "ws", "kube", "kube", 3); err != nil {
		t.Fatal(err)
	}
	dep, err := c.Client.AppsV1().Deployments(ns).Get(ctx, kubernetes.ObjectName("ws/kube"), metav1.GetOptions{})
	if err != nil || *dep.Spec.Replicas != 3 {
		t.Fatalf("deployment after SetReplicas(3): %v, %v", dep.Spec.Replicas, err)
	}
	waitTable(t, d, p, 30*time.Second, "3 ready pod replicas of kube", func(rt *modelship.RouteTable) bool {
		return readyCount(version(rt, "kube", "kube")) == 3
	})
	t.Logf("scale 1 -> 3 discovered: %s", time.Since(start).Round(time.Millisecond))
	pods, err = c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: kubernetes.LabelDeployment + "=" + kubernetes.LabelValue("ws/kube")})
	if err != nil || len(pods.Items) != 3 {
		t.Fatalf("pods of ws/kube: %d, %v", len(pods.Items), err)
	}
	for _, pd := range pods.Items {
		if pd.Spec.NodeName != node || pd.Status.Phase != corev1.PodRunning {
			t.Errorf("pod %s on %q phase %s; want Running on %s", pd.Name, pd.Spec.NodeName, pd.Status.Phase, node)
		}
	}
	// Idempotent: the same count writes nothing.
	if err := scaler.SetReplicas(ctx, "ws", "kube", "kube", 3); err != nil {
		t.Fatal(err)
	}
	dep2, err := c.Client.AppsV1().Deployments(ns).Get(ctx, kubernetes.ObjectName("ws/kube"), metav1.GetOptions{})
	if err != nil || dep2.Generation != dep.Generation {
		t.Errorf("SetReplicas(3) again: generation %d -> %d (%v)", dep.Generation, dep2.Generation, err)
	}
	if err := scaler.SetReplicas(ctx, "ws", "nope", "nope", 2); modelship.ErrorCode(err) != modelship.ENOTFOUND {
		t.Errorf("SetReplicas of an unknown route: %v", err)
	}
	if err := scaler.SetReplicas(ctx, "other-ws", "kube", "kube", 2); modelship.ErrorCode(err) != modelship.ENOTFOUND {
		t.Errorf("SetReplicas of a route of another workspace: %v", err)
	}

	// The gateway autoscaler brings auto to its minimum of 2 replicas.
	start = time.Now()
	gw := gateway.New(gateway.Config{Scaler: scaler, AutoscaleInterval: 50 * time.Millisecond})
	t.Cleanup(func() { gw.Close() })
	d2, p2 := startDiscovery(t, client, ns, gw) // a front end: discovery publishing to a gateway
	waitTable(t, d2, p2, 30*time.Second, "2 ready pod replicas of auto", func(rt *modelship.RouteTable) bool {
		return readyCount(version(rt, "auto", "auto")) == 2
	})
	t.Logf("autoscale to the minimum: %s", time.Since(start).Round(time.Millisecond))
	st, ok := gw.ScaleStatus("auto", "auto")
	if !ok || st.Requested != 2 {
		t.Errorf("scale status %+v, %v", st, ok)
	}
}
