package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/compute/kubernetes"
	"github.com/modelship/modelship/internal/k8stest"
)

// TestKubernetesTarget drives a Kubernetes target through the real binary
// against a real API server (KWOK nodes: pods turn Ready without running
// containers): attach with validation, deploy, the objects and the routes
// Secret, the pod's environment run as a process on this machine fetching
// its files and scoring, update, delete, detach.
func TestKubernetesTarget(t *testing.T) {
	needPython(t)
	if testing.Short() {
		t.Skip("-short: skipping the test against a real Kubernetes API server")
	}
	c := k8stest.Start(t)
	c.AddNode(t, "kt-node-1", "16", "64Gi", 0)
	s := startServer(t, "")
	dir := t.TempDir()
	kc := filepath.Join(dir, "kubeconfig")
	writeFile(t, kc, c.Kubeconfig)
	ctx := context.Background()
	const ns = "ml"

	// Bad input changes nothing.
	s.fails(t, "no context \"nope\"", "computetarget", "attach", "kubernetes", "-n", "kube1", "--kubeconfig", kc, "--context", "nope")
	s.fails(t, "front-end service type \"Ingress\" is invalid", "computetarget", "attach", "kubernetes", "-n", "kube1", "--kubeconfig", kc, "--frontend-service", "Ingress")

	start := time.Now()
	r := s.cli(t, "computetarget", "attach", "kubernetes", "-n", "kube1", "--kubeconfig", kc, "--namespace", ns,
		"--image", "registry.example/modelship:e2e", "-o", "json")
	if r.code != 0 {
		t.Fatalf("attach: %s", r.stderr)
	}
	// The server listens on loopback here: the user is told pods cannot
	// reach it.
	if !strings.Contains(r.stderr, "warning:") || !strings.Contains(r.stderr, "--advertise-url") {
		t.Errorf("attach did not warn about the loopback advertise URL: %s", r.stderr)
	}
	ct := decode[modelship.ComputeTarget](t, r.stdout)
	t.Logf("attach: %s", time.Since(start).Round(time.Millisecond))
	k := ct.Kubernetes
	if ct.Type != modelship.TargetKubernetes || k == nil || k.Namespace != ns || k.ClusterID == "" || k.Image != "registry.example/modelship:e2e" ||
		k.FrontEndService != modelship.FrontEndNodePort || k.SealedKubeconfig != "" || ct.CPU < 16 {
		t.Fatalf("attached target = %+v / %+v", ct, k)
	}
	if _, err := c.Client.AppsV1().Deployments(ns).Get(ctx, kubernetes.FrontEndName, metav1.GetOptions{}); err != nil {
		t.Fatalf("front end not installed: %v", err)
	}
	// The same cluster under another name is refused, naming the target.
	s.fails(t, `already attached as compute target "kube1"`, "computetarget", "attach", "kubernetes", "-n", "kube2", "--kubeconfig", kc, "--namespace", "other")
	// delete is not detach.
	s.fails(t, "computetarget detach kube1", "computetarget", "delete", "kube1")
	show := s.ok(t, "computetarget", "show", "kube1")
	for _, want := range []string{"Namespace", ns, "Cluster ID", k.ClusterID, "Front end"} {
		if !strings.Contains(show, want) {
			t.Errorf("show lacks %q:\n%s", want, show)
		}
	}
	if strings.Contains(s.ok(t, "computetarget", "show", "kube1", "-o", "json"), "sealedKubeconfig") {
		t.Error("the sealed kubeconfig leaks through the API")
	}

	// Deploy a score.py service with two replicas.
	registerDummy(t, s, dir)
	project(t, dir, sumScore, `{"computeType": "aks", "numReplicas": 2, "containerResourceRequirements": {"cpu": 0.5, "memoryInGB": 0.5}}`)
	start = time.Now()
	out := s.ok(t, "model", "deploy", "-ct", "kube1", "-m", "m:1", "-n", "ksvc", "-ic", filepath.Join(dir, "ic.json"), "-dc", filepath.Join(dir, "dc.json"), "-o", "json")
	svc := decode[modelship.Service](t, out)
	svc = waitState(t, s, "ksvc", modelship.StateHealthy, 60*time.Second)
	t.Logf("deploy -> Healthy: %s", time.Since(start).Round(time.Millisecond))
	if len(svc.Replicas) != 2 || svc.ComputeTarget != "kube1" {
		t.Errorf("service = %+v", svc)
	}
	tgt := decode[modelship.ComputeTarget](t, s.ok(t, "computetarget", "show", "kube1", "-o", "json"))
	if fe := tgt.Kubernetes.FrontEndURL; fe == "" || !strings.HasPrefix(svc.ScoringURI, fe+"/api/v1/service/ksvc/score") {
		t.Errorf("scoring URI %q, front end %q", svc.ScoringURI, fe)
	}
	// The server's own front end does not serve cluster routes.
	keys := s.keys(t, "ksvc")
	if code, body, _ := s.score(t, "ksvc", keys.PrimaryKey, `{"data": [[1, 2]]}`); code != http.StatusNotFound {
		t.Errorf("local front end answered %d %s for a cluster service", code, body)
	}

	// The objects: a Deployment whose pods fetch their files with a token
	// from a Secret, and the routes Secret for the in-cluster front end.
	name := kubernetes.ObjectName("default/ksvc")
	dep, err := c.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctr := dep.Spec.Template.Spec.Containers[0]
	env := map[string]string{}
	for _, e := range ctr.Env {
		env[e.Name] = e.Value
	}
	if env["MODELSHIP_FETCH_DEPLOYMENT"] != "default/ksvc" || env["MODELSHIP_FETCH_TOKEN"] != "" || env["AZUREML_MODEL_DIR"] != "" || ctr.Image != "registry.example/modelship:e2e" {
		t.Errorf("container env %v image %s", env, ctr.Image)
	}
	if len(ctr.EnvFrom) != 1 || ctr.EnvFrom[0].SecretRef == nil {
		t.Fatalf("envFrom = %+v", ctr.EnvFrom)
	}
	sec, err := c.Client.CoreV1().Secrets(ns).Get(ctx, ctr.EnvFrom[0].SecretRef.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range sec.Data {
		env[k] = string(v)
	}
	if env["MODELSHIP_FETCH_URL"] != s.url || env["MODELSHIP_FETCH_TOKEN"] == "" {
		t.Errorf("secret env: url %q, token %q", env["MODELSHIP_FETCH_URL"], env["MODELSHIP_FETCH_TOKEN"])
	}
	routes := routesSecret(t, c, ns)
	if len(routes.Routes) != 1 || routes.Routes[0].Name != "ksvc" || len(routes.Routes[0].KeyHashes) != 2 ||
		routes.Routes[0].Versions[0].Deployment != "default/ksvc" || len(routes.Routes[0].Versions[0].Replicas) != 0 {
		t.Errorf("routes secret = %+v", routes)
	}

	// The in-cluster front end (the real `modelship gateway`, run here with
	// the admin kubeconfig) serves from the Secret the control plane wrote:
	// it knows the route and its keys, and finds the two KWOK pods through
	// the EndpointSlices.
	gwPort := freePort(t)
	gctx, gcancel := context.WithCancel(ctx)
	defer gcancel()
	gw := exec.CommandContext(gctx, binPath, "gateway", "--kubeconfig", kc, "--namespace", ns, "--listen", "127.0.0.1:"+gwPort)
	var gwLogs syncBuffer
	gw.Stdout, gw.Stderr = &gwLogs, &gwLogs
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { gcancel(); gw.Wait() }()
	gwURL := "http://127.0.0.1:" + gwPort
	waitFor(t, 30*time.Second, "the front end to see both replicas", &gwLogs, func() bool {
		resp, err := http.Get(gwURL + "/metrics")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return strings.Contains(string(b), `modelship_gateway_ready_replicas{route="ksvc",version="ksvc"} 2`)
	})
	for _, tc := range []struct {
		path, key string
		want      int
	}{
		{"/api/v1/service/ksvc/score", "wrong", http.StatusUnauthorized},
		{"/api/v1/service/nosuch/score", keys.PrimaryKey, http.StatusNotFound},
	} {
		req, _ := http.NewRequest("POST", gwURL+tc.path, strings.NewReader(`{"data": [[1]]}`))
		req.Header.Set("Authorization", "Bearer "+tc.key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("front end %s with key %q: %d, want %d", tc.path, tc.key, resp.StatusCode, tc.want)
		}
	}

	// Run what the pod runs, with the pod's environment, here: it fetches
	// the model and score.py from the control plane and serves.
	port := freePort(t)
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(pctx, binPath, append(ctr.Command[1:], ctr.Args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "TMPDIR=" + t.TempDir()}
	for k, v := range env {
		switch k {
		case "MODELSHIP_FETCH_DIR":
			v = t.TempDir()
		}
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, "MODELSHIP_HOST=127.0.0.1", "MODELSHIP_PORT="+port, "MODELSHIP_REPLICA_ID=pod-1")
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); cmd.Wait() }()
	body := waitScore(t, "http://127.0.0.1:"+port+"/score", `{"data": [[1, 2], [3, 4]]}`, &logs)
	if !strings.Contains(body, `"sum": [3, 7]`) {
		t.Errorf("pod replica answered %s", body)
	}

	// An update with new settings rolls the Deployment (new template).
	project(t, dir, sumScore, `{"computeType": "aks", "numReplicas": 2, "containerResourceRequirements": {"cpu": 0.25, "memoryInGB": 0.5}}`)
	s.ok(t, "service", "update", "ksvc", "-dc", filepath.Join(dir, "dc.json"))
	waitState(t, s, "ksvc", modelship.StateHealthy, 60*time.Second)
	dep2, err := c.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := dep2.Spec.Template.Spec.Containers[0].Resources.Requests.Cpu().MilliValue(); got != 250 ||
		dep2.Spec.Template.Annotations[kubernetes.AnnotationRevision] == dep.Spec.Template.Annotations[kubernetes.AnnotationRevision] {
		t.Errorf("after update: cpu request %dm, revision %s", got, dep2.Spec.Template.Annotations[kubernetes.AnnotationRevision])
	}

	// More CPU than any node has: Unschedulable with the scheduler's reason.
	writeFile(t, filepath.Join(dir, "big.json"), []byte(`{"computeType": "aks", "numReplicas": 1, "containerResourceRequirements": {"cpu": 64, "memoryInGB": 0.5}}`))
	s.ok(t, "model", "deploy", "-ct", "kube1", "-m", "m:1", "-n", "kbig", "-ic", filepath.Join(dir, "ic.json"), "-dc", filepath.Join(dir, "big.json"), "--no-wait")
	big := waitState(t, s, "kbig", modelship.StateUnschedulable, 60*time.Second)
	if big.Error == nil || !strings.Contains(big.Error.Message+strings.Join(big.Error.Details, " "), "Insufficient cpu") {
		t.Errorf("unschedulable service error = %+v", big.Error)
	}
	// It can be deleted while it waits for capacity (the create is canceled).
	s.ok(t, "service", "delete", "kbig")
	s.fails(t, "not found", "service", "show", "kbig")

	// An endpoint with three versions: one Deployment each, one route with
	// three versions in the routes Secret.
	ic := filepath.Join(dir, "ic.json")
	s.ok(t, "endpoint", "create", "-ct", "kube1", "-n", "kep", "-m", "m:1", "-ic", ic, "--version-name", "blue", "--traffic-percentile", "20", "--num-replicas", "1")
	s.ok(t, "endpoint", "version", "create", "kep", "--version-name", "green", "-m", "m:1", "-ic", ic, "--traffic-percentile", "30", "--num-replicas", "1")
	s.ok(t, "endpoint", "version", "create", "kep", "--version-name", "red", "-m", "m:1", "-ic", ic, "--traffic-percentile", "50", "--num-replicas", "1")
	deadline := time.Now().Add(60 * time.Second)
	for {
		ep := decode[modelship.Endpoint](t, s.ok(t, "endpoint", "show", "kep", "-o", "json"))
		if ep.State == modelship.StateHealthy && len(ep.Versions) == 3 {
			if !strings.HasPrefix(ep.ScoringURI, tgt.Kubernetes.FrontEndURL+"/api/v1/endpoint/kep/score") {
				t.Errorf("endpoint scoring URI %q", ep.ScoringURI)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("endpoint not Healthy: %+v", ep)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, v := range []string{"blue", "green", "red"} {
		if _, err := c.Client.AppsV1().Deployments(ns).Get(ctx, kubernetes.ObjectName("default/kep."+v), metav1.GetOptions{}); err != nil {
			t.Errorf("version %s: %v", v, err)
		}
	}
	var epRoute *modelship.Route
	for i, rt := range routesSecret(t, c, ns).Routes {
		if rt.Name == "kep" {
			epRoute = &routesSecret(t, c, ns).Routes[i]
		}
	}
	if epRoute == nil || epRoute.Kind != modelship.RouteEndpoint || len(epRoute.Versions) != 3 || epRoute.Versions[2].Deployment != "default/kep.red" {
		t.Errorf("endpoint route = %+v", epRoute)
	}

	// Detach is refused while the service exists; --force deletes it and
	// everything modelship created.
	s.fails(t, "1 service(s): ksvc and 1 endpoint(s): kep", "computetarget", "detach", "kube1")
	start = time.Now()
	s.ok(t, "computetarget", "detach", "kube1", "--force")
	t.Logf("detach --force: %s", time.Since(start).Round(time.Millisecond))
	s.fails(t, "not found", "service", "show", "ksvc")
	s.fails(t, "not found", "computetarget", "show", "kube1")
	sel := metav1.ListOptions{LabelSelector: kubernetes.LabelManagedBy + "=" + kubernetes.ManagedBy}
	deps, _ := c.Client.AppsV1().Deployments(ns).List(ctx, sel)
	svcs, _ := c.Client.CoreV1().Services(ns).List(ctx, sel)
	secs, _ := c.Client.CoreV1().Secrets(ns).List(ctx, sel)
	pods, _ := c.Client.CoreV1().Pods(ns).List(ctx, sel)
	if n := len(deps.Items) + len(svcs.Items) + len(secs.Items) + len(pods.Items); n != 0 {
		t.Errorf("after detach: %d deployments, %d services, %d secrets, %d pods left", len(deps.Items), len(svcs.Items), len(secs.Items), len(pods.Items))
	}
	// Attaching again works (the identity was released).
	if r := s.cli(t, "computetarget", "attach", "kubernetes", "-n", "kube2", "--kubeconfig", kc, "--namespace", ns, "--cluster-purpose", "DevTest"); r.code != 0 {
		t.Fatalf("attach again: %s\n%s", r.stderr, s.log)
	}
	s.ok(t, "computetarget", "detach", "kube2")
}

func routesSecret(t *testing.T, c *k8stest.Cluster, ns string) *modelship.RouteTable {
	t.Helper()
	sec, err := c.Client.CoreV1().Secrets(ns).Get(context.Background(), kubernetes.RoutesSecretName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("routes secret: %v", err)
	}
	var rt modelship.RouteTable
	if err := json.Unmarshal(sec.Data[kubernetes.RoutesSecretKey], &rt); err != nil {
		t.Fatalf("routes secret: %v", err)
	}
	return &rt
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
}

// waitFor polls cond (bounded) and fails with logs when it stays false.
func waitFor(t *testing.T, timeout time.Duration, what string, logs fmt.Stringer, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s:\n%s", what, logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitScore posts body to url until it answers 200 (bounded).
func waitScore(t *testing.T, url, body string, logs fmt.Stringer) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Post(url, "application/json", strings.NewReader(body))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return string(b)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("replica did not answer:\n%s", logs)
	return ""
}
