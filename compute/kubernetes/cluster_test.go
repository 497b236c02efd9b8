package kubernetes

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/compute"
	"github.com/modelship/modelship/internal/k8stest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.yaml golden manifests")

func TestMain(m *testing.M) { k8stest.Main(m) }

// testImage is the image of test deployments (KWOK pods never pull it).
const testImage = "registry.example/modelship:test"

// cluster returns the shared test cluster, or skips.
func cluster(t *testing.T) *k8stest.Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("kubernetes: -short: skipping tests against a real Kubernetes API server")
	}
	return k8stest.Shared(t)
}

// notifier collects OnChange calls so tests wait on watch events.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func newNotifier() *notifier { return &notifier{ch: make(chan struct{})} }

func (n *notifier) notify(string) {
	n.mu.Lock()
	close(n.ch)
	n.ch = make(chan struct{})
	n.mu.Unlock()
}

func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ch
}

// newTestDriver returns a driver on namespace ns of c, closed when t ends.
func newTestDriver(t *testing.T, c *k8stest.Cluster, ns string) (*Driver, *notifier) {
	t.Helper()
	n := newNotifier()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := New(ctx, Config{Kubeconfig: c.Kubeconfig, Namespace: ns, Image: testImage, OnChange: n.notify})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		_ = d.Close(context.Background())
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = c.Client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
	})
	return d, n
}

// waitStatus waits (on watch events) until cond holds for id's status.
func waitStatus(t *testing.T, d *Driver, n *notifier, id string, timeout time.Duration, what string, cond func(*compute.Status) bool) *compute.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last *compute.Status
	for {
		ch := n.wait()
		st, err := d.Status(ctx, id)
		if err == nil {
			last = st
			if cond(st) {
				return st
			}
		}
		select {
		case <-ch:
		case <-time.After(2 * time.Second):
		case <-ctx.Done():
			t.Fatalf("waiting %s for %s of %s: last status %+v (err %v)", timeout, what, id, last, err)
		}
	}
}

func TestAttach(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	c.AddNode(t, "attach-node", "4", "16Gi", 0)

	// A user with only read access to pods in namespace "ml".
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, nsObject("ml"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Client.CoreV1().Namespaces().Delete(context.Background(), "ml", metav1.DeleteOptions{}) })
	grant(t, c, "ml", "restricted", rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}})
	restricted, err := c.UserKubeconfig("restricted")
	if err != nil {
		t.Fatal(err)
	}
	unreachable := bytes.Replace(c.Kubeconfig, []byte(c.Server), []byte("https://127.0.0.1:1"), 1)

	ks, err := c.Client.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		kubeconfig []byte
		context    string
		namespace  string
		purpose    string
		code       string
		contains   []string
		warning    string
	}{
		{name: "unreachable", kubeconfig: unreachable, purpose: "DevTest", code: modelship.EUNAVAILABLE, contains: []string{"unreachable", "127.0.0.1:1"}},
		{name: "bad kubeconfig", kubeconfig: []byte("not: [a kubeconfig"), code: modelship.EINVALID, contains: []string{"kubeconfig is invalid"}},
		{name: "unknown context", kubeconfig: c.Kubeconfig, context: "nope", code: modelship.EINVALID, contains: []string{`no context "nope"`}},
		{name: "missing RBAC", kubeconfig: restricted, namespace: "ml", purpose: "DevTest", code: modelship.EFORBIDDEN, contains: []string{
			"create deployments.apps in namespace ml", "update deployments/scale.apps in namespace ml", "get pods/log in namespace ml",
			"create services in namespace ml", "list nodes (cluster-wide)", "get namespaces kube-system (cluster-wide)"}},
		{name: "missing RBAC, namespace to create", kubeconfig: restricted, namespace: "ml-new", purpose: "DevTest", code: modelship.EFORBIDDEN, contains: []string{
			"create namespaces (cluster-wide)"}},
		{name: "FastProd too small", kubeconfig: c.Kubeconfig, namespace: "ml", purpose: "FastProd", code: modelship.EINVALID, contains: []string{"at least 12 allocatable vCPU", "has 4 on 1 Ready node"}},
		{name: "DevTest", kubeconfig: c.Kubeconfig, namespace: "ml", purpose: "DevTest"},
		{name: "bad purpose", kubeconfig: c.Kubeconfig, purpose: "Prod", code: modelship.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			info, err := Attach(ctx, tt.kubeconfig, tt.context, tt.namespace, tt.purpose)
			t.Logf("Attach took %s", time.Since(start).Round(time.Millisecond))
			if tt.code != "" {
				if err == nil {
					t.Fatalf("Attach succeeded (%+v); want %s", info, tt.code)
				}
				if got := modelship.ErrorCode(err); got != tt.code {
					t.Errorf("code = %s, want %s (%v)", got, tt.code, err)
				}
				for _, s := range tt.contains {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error does not mention %q:\n%v", s, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if info.ClusterID != string(ks.UID) || info.ClusterID == "" {
				t.Errorf("ClusterID = %q, want kube-system UID %q", info.ClusterID, ks.UID)
			}
			if info.Version != k8stest.KubeVersion || !info.NamespaceExists || info.ReadyNodes < 1 || info.Allocatable.CPU < 4 {
				t.Errorf("info = %+v", info)
			}
		})
	}

	t.Run("FastProd and DevTest warnings", func(t *testing.T) {
		info, err := Attach(ctx, c.Kubeconfig, "", "ml", "DevTest")
		if err != nil || len(info.Warnings) != 0 {
			t.Fatalf("DevTest with 4 vCPU: %+v, %v; want no warning", info, err)
		}
		// Cordon the node: nothing left, DevTest warns.
		cordon(t, c, "attach-node", true)
		info, err = Attach(ctx, c.Kubeconfig, "", "ml", "DevTest")
		if err != nil || len(info.Warnings) != 1 || !strings.Contains(info.Warnings[0], "under 2") {
			t.Fatalf("DevTest without nodes: %+v, %v; want one warning", info, err)
		}
		cordon(t, c, "attach-node", false)
		c.AddNode(t, "attach-node-2", "8", "32Gi", 0)
		info, err = Attach(ctx, c.Kubeconfig, "", "ml", "FastProd")
		if err != nil {
			t.Fatalf("FastProd with 12 vCPU: %v", err)
		}
		id2, err := ClusterID(ctx, c.Client)
		if err != nil || id2 != info.ClusterID {
			t.Errorf("ClusterID = %q, %v; want %q", id2, err, info.ClusterID)
		}
	})
}

func nsObject(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

// grant binds a Role with rules in ns to user.
func grant(t *testing.T, c *k8stest.Cluster, ns, user string, rules ...rbacv1.PolicyRule) {
	t.Helper()
	ctx := context.Background()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: user, Namespace: ns}, Rules: rules}
	if _, err := c.Client.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: user, Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: user},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: user}},
	}
	if _, err := c.Client.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func cordon(t *testing.T, c *k8stest.Cluster, node string, on bool) {
	t.Helper()
	patch := fmt.Sprintf(`{"spec":{"unschedulable":%t}}`, on)
	if _, err := c.Client.CoreV1().Nodes().Patch(context.Background(), node, "application/merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestApplyGolden compares the objects of a service and of an endpoint
// with three versions, as the API server stores them, with
// testdata/*.yaml (go test -update rewrites them).
func TestApplyGolden(t *testing.T) {
	c := cluster(t)
	d, _ := newTestDriver(t, c, "golden")
	ctx := context.Background()
	specs := []*compute.Spec{
		{ID: "ws1/svc1", Revision: "r1", Replicas: 2, CPU: 0.1, MemoryGB: 0.5, MemoryLimitGB: 1,
			Env:          map[string]string{"AZUREML_MODEL_DIR": "/var/azureml-app/azureml-models", "B": "2"},
			Liveness:     compute.Probe{Period: 10 * time.Second, InitialDelay: 310 * time.Second, Timeout: 2 * time.Second, SuccessThreshold: 1, FailureThreshold: 3},
			StartTimeout: 5 * time.Minute},
	}
	for _, v := range []string{"v1", "v2", "v3"} {
		specs = append(specs, &compute.Spec{ID: "ws1/ep1/" + v, Revision: "e" + v, Replicas: 1, CPU: 0.25, MemoryGB: 1, GPUs: map[string]int{"v3": 1}[v]})
	}
	start := time.Now()
	for _, s := range specs {
		if err := d.Apply(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("applied %d deployments in %s", len(specs), time.Since(start).Round(time.Millisecond))
	// Applying the same spec again changes nothing.
	before, err := c.Client.AppsV1().Deployments("golden").Get(ctx, "ms-ws1-svc1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Apply(ctx, specs[0]); err != nil {
		t.Fatal(err)
	}
	after, err := c.Client.AppsV1().Deployments("golden").Get(ctx, "ms-ws1-svc1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if before.Generation != after.Generation {
		t.Errorf("re-applying the same spec bumped the generation %d -> %d", before.Generation, after.Generation)
	}

	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	for _, s := range specs {
		for _, gvr := range []schema.GroupVersionResource{{Group: "apps", Version: "v1", Resource: "deployments"}, {Version: "v1", Resource: "services"}} {
			u, err := dyn.Resource(gvr).Namespace("golden").Get(ctx, ObjectName(s.ID), metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got.WriteString("---\n")
			got.Write(canonical(t, u))
		}
	}
	golden := filepath.Join("testdata", "objects.yaml")
	if *update {
		if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestApplyGolden -update to create it)", err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("objects differ from %s (go test -run TestApplyGolden -update rewrites it):\n%s", golden, lineDiff(string(want), got.String()))
	}
}

// canonical strips the fields the API server generates and renders YAML.
func canonical(t *testing.T, u *unstructured.Unstructured) []byte {
	t.Helper()
	obj := u.DeepCopy().Object
	unstructured.RemoveNestedField(obj, "status")
	for _, f := range []string{"uid", "resourceVersion", "creationTimestamp", "generation", "managedFields"} {
		unstructured.RemoveNestedField(obj, "metadata", f)
	}
	unstructured.RemoveNestedField(obj, "metadata", "annotations", "deployment.kubernetes.io/revision")
	unstructured.RemoveNestedField(obj, "spec", "clusterIP")
	unstructured.RemoveNestedField(obj, "spec", "clusterIPs")
	b, err := yaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// lineDiff shows the lines of got missing from want and vice versa.
func lineDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(wl), len(gl)); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			fmt.Fprintf(&b, "line %d:\n- %s\n+ %s\n", i+1, w, g)
		}
	}
	return b.String()
}

// TestLifecycle: pods reach Running and Ready on KWOK nodes, a new
// revision rolls, Scale goes through the scale subresource, Capacity counts
// the requests, Delete leaves no object with the label.
func TestLifecycle(t *testing.T) {
	c := cluster(t)
	c.AddNode(t, "life-node-1", "4", "16Gi", 0)
	c.AddNode(t, "life-node-2", "4", "16Gi", 0)
	d, n := newTestDriver(t, c, "life")
	ctx := context.Background()
	id := "ws2/svc"
	spec := &compute.Spec{ID: id, Revision: "r1", Replicas: 2, CPU: 0.5, MemoryGB: 1}

	start := time.Now()
	if err := d.Apply(ctx, spec); err != nil {
		t.Fatal(err)
	}
	applied := time.Since(start)
	st := waitStatus(t, d, n, id, 30*time.Second, "2 ready replicas", func(s *compute.Status) bool {
		return s.ReadyCount() == 2 && s.Revision == "r1" && s.Desired == ""
	})
	t.Logf("apply %s; apply -> 2 ready replicas %s", applied.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	for _, r := range st.Replicas {
		if r.State != compute.ReplicaRunning || !strings.HasPrefix(r.URL, "http://10.244.") || !strings.HasSuffix(r.URL, ":5001") || r.Revision != "r1" {
			t.Errorf("replica %+v", r)
		}
	}

	total, free, err := d.Capacity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if total.CPU < 8 || total.CPU-free.CPU < 1 || total.MemoryGB-free.MemoryGB < 2 {
		t.Errorf("Capacity: total %+v free %+v; want the 2 x 0.5 CPU / 1 GB requests counted", total, free)
	}

	// Logs: KWOK pods have no containers; the log subresource answers
	// nothing, which is not an error.
	if _, err := d.Logs(ctx, id, compute.LogOptions{Tail: 10, Replica: -1}); err != nil {
		t.Errorf("Logs: %v", err)
	}
	if _, err := d.Logs(ctx, id, compute.LogOptions{Replica: 5}); modelship.ErrorCode(err) != modelship.ENOTFOUND {
		t.Errorf("Logs of replica 5: %v, want not found", err)
	}

	// A new revision changes the pod template and rolls replica by replica.
	spec2 := *spec
	spec2.Revision, spec2.Env = "r2", map[string]string{"NEW": "1"}
	start = time.Now()
	if err := d.Apply(ctx, &spec2); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, d, n, id, 30*time.Second, "revision r2 rolled out", func(s *compute.Status) bool {
		if s.Revision != "r2" || s.Desired != "" || s.ReadyCount() != 2 {
			return false
		}
		for _, r := range s.Replicas {
			if r.Revision != "r2" {
				return false
			}
		}
		return true
	})
	t.Logf("rollout of r2: %s", time.Since(start).Round(time.Millisecond))
	dep, err := c.Client.AppsV1().Deployments("life").Get(ctx, ObjectName(id), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if dep.Spec.Template.Annotations[AnnotationRevision] != "r2" || dep.Annotations["deployment.kubernetes.io/revision"] != "2" {
		t.Errorf("deployment after update: template annotations %v, annotations %v", dep.Spec.Template.Annotations, dep.Annotations)
	}

	// Scale through the scale subresource.
	start = time.Now()
	if err := d.Scale(ctx, id, 3); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, d, n, id, 30*time.Second, "3 ready replicas", func(s *compute.Status) bool { return s.ReadyCount() == 3 && s.Desired == "" })
	t.Logf("scale 2 -> 3 ready: %s", time.Since(start).Round(time.Millisecond))
	if err := d.Scale(ctx, "ws2/nope", 1); modelship.ErrorCode(err) != modelship.ENOTFOUND {
		t.Errorf("Scale unknown: %v, want not found", err)
	}

	// Delete leaves nothing with the label.
	start = time.Now()
	if err := d.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	t.Logf("delete: %s", time.Since(start).Round(time.Millisecond))
	assertNothingLabelled(t, c, "life", LabelDeployment+"="+LabelValue(id))
	if _, err := d.Status(ctx, id); modelship.ErrorCode(err) != modelship.ENOTFOUND {
		t.Errorf("Status after delete: %v, want not found", err)
	}
}

// assertNothingLabelled lists every namespaced resource type of ns by
// label selector and fails for any object found.
func assertNothingLabelled(t *testing.T, c *k8stest.Cluster, ns, selector string) {
	t.Helper()
	ctx := context.Background()
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	for _, gvr := range []schema.GroupVersionResource{
		{Group: "apps", Version: "v1", Resource: "deployments"},
		{Group: "apps", Version: "v1", Resource: "replicasets"},
		{Version: "v1", Resource: "pods"},
		{Version: "v1", Resource: "services"},
		{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"},
	} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			l, err := dyn.Resource(gvr).Namespace(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
			if err != nil {
				t.Fatalf("listing %s: %v", gvr.Resource, err)
			}
			if len(l.Items) == 0 {
				break
			}
			// EndpointSlices are removed by their controller shortly
			// after the Service.
			if time.Now().After(deadline) {
				var names []string
				for _, it := range l.Items {
					names = append(names, it.GetName())
				}
				t.Errorf("%s still labelled %s: %v", gvr.Resource, selector, names)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func TestUnschedulable(t *testing.T) {
	c := cluster(t)
	c.AddNode(t, "small-node", "2", "4Gi", 0)
	d, n := newTestDriver(t, c, "unsched")
	ctx := context.Background()
	id := "ws3/big"
	if err := d.Apply(ctx, &compute.Spec{ID: id, Revision: "r1", Replicas: 1, CPU: 64, MemoryGB: 1}); err != nil {
		t.Fatal(err)
	}
	// The first attempt may still see the new node's not-ready taint; the
	// scheduler retries and then reports the real reason.
	st := waitStatus(t, d, n, id, 30*time.Second, "unschedulable", func(s *compute.Status) bool { return strings.Contains(s.Unschedulable, "Insufficient cpu") })
	if !strings.Contains(st.Unschedulable, "Insufficient cpu") {
		t.Errorf("Unschedulable = %q; want the scheduler's reason", st.Unschedulable)
	}
	if len(st.Replicas) != 1 || st.Replicas[0].State != compute.ReplicaUnschedulable || st.Replicas[0].Ready {
		t.Errorf("replicas = %+v", st.Replicas)
	}
	t.Logf("unschedulable: %s", st.Unschedulable)
	if err := d.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
}

// TestRollback: a new revision whose pods cannot become ready within the
// start timeout is rolled back to the previous template, with the reason.
func TestRollback(t *testing.T) {
	c := cluster(t)
	c.AddNode(t, "rb-node", "4", "16Gi", 0)
	d, n := newTestDriver(t, c, "rollback")
	ctx := context.Background()
	id := "ws4/svc"
	spec := &compute.Spec{ID: id, Revision: "r1", Replicas: 1, CPU: 0.5, MemoryGB: 1, StartTimeout: 2 * time.Second}
	if err := d.Apply(ctx, spec); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, d, n, id, 30*time.Second, "r1 ready", func(s *compute.Status) bool { return s.Revision == "r1" && s.ReadyCount() == 1 && s.Desired == "" })
	bad := *spec
	bad.Revision, bad.CPU = "r2", 64 // never fits
	start := time.Now()
	if err := d.Apply(ctx, &bad); err != nil {
		t.Fatal(err)
	}
	st := waitStatus(t, d, n, id, 60*time.Second, "rollback to r1", func(s *compute.Status) bool {
		return s.RolloutError != "" && s.Revision == "r1" && s.Desired == "" && s.ReadyCount() == 1 && len(s.Replicas) == 1
	})
	t.Logf("rolled back after %s: %s", time.Since(start).Round(time.Millisecond), st.RolloutError)
	if !strings.Contains(st.RolloutError, "r2") || !strings.Contains(st.RolloutError, "within 2s") {
		t.Errorf("RolloutError = %q", st.RolloutError)
	}
	// A new Apply clears the error.
	good := *spec
	good.Revision = "r3"
	if err := d.Apply(ctx, &good); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, d, n, id, 30*time.Second, "r3 rolled out", func(s *compute.Status) bool {
		return s.Revision == "r3" && s.RolloutError == "" && s.ReadyCount() == 1 && s.Desired == ""
	})
}

// TestDocumentedRBAC grants a user exactly the Role and ClusterRole of
// docs/kubernetes.md and checks that Attach accepts it and the driver can
// do its whole job with it.
func TestDocumentedRBAC(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	const ns = "docsrbac"
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "kubernetes.md"))
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.Role
	var clusterRole rbacv1.ClusterRole
	for _, block := range strings.Split(string(doc), "```yaml\n")[1:] {
		block, _, _ = strings.Cut(block, "```")
		block = strings.ReplaceAll(block, "namespace: ml", "namespace: "+ns)
		block = strings.ReplaceAll(block, `"ml"]`, `"`+ns+`"]`)
		switch {
		case strings.Contains(block, "kind: Role\n"):
			err = yaml.UnmarshalStrict([]byte(block), &role)
		case strings.Contains(block, "kind: ClusterRole\n"):
			err = yaml.UnmarshalStrict([]byte(block), &clusterRole)
		}
		if err != nil {
			t.Fatalf("docs/kubernetes.md: %v\n%s", err, block)
		}
	}
	if len(role.Rules) == 0 || len(clusterRole.Rules) == 0 {
		t.Fatalf("docs/kubernetes.md: Role (%d rules) or ClusterRole (%d rules) not found", len(role.Rules), len(clusterRole.Rules))
	}
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, nsObject(ns), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	clusterRole.Name = "modelship-docs"
	if _, err := c.Client.RbacV1().Roles(ns).Create(ctx, &role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.RbacV1().ClusterRoles().Create(ctx, &clusterRole, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	user := []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: "operator"}}
	if _, err := c.Client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "modelship"}, Subjects: user,
		RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "modelship-docs"}, Subjects: user,
		RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: clusterRole.Name},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Client.RbacV1().ClusterRoleBindings().Delete(context.Background(), "modelship-docs", metav1.DeleteOptions{})
		_ = c.Client.RbacV1().ClusterRoles().Delete(context.Background(), "modelship-docs", metav1.DeleteOptions{})
	})
	c.AddNode(t, "rbac-node", "2", "8Gi", 0)

	kc, err := c.UserKubeconfig("operator")
	if err != nil {
		t.Fatal(err)
	}
	info, err := Attach(ctx, kc, "", ns, "DevTest")
	if err != nil {
		t.Fatalf("Attach with the documented RBAC: %v", err)
	}
	if info.ClusterID == "" || !info.NamespaceExists {
		t.Errorf("info = %+v", info)
	}

	n := newNotifier()
	d, err := New(ctx, Config{Kubeconfig: kc, Namespace: ns, Image: testImage, OnChange: n.notify})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = d.Close(context.Background())
		_ = c.Client.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	})
	id := "ws5/svc"
	if err := d.Apply(ctx, &compute.Spec{ID: id, Revision: "r1", Replicas: 1, CPU: 0.5, MemoryGB: 1}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, d, n, id, 30*time.Second, "1 ready replica", func(s *compute.Status) bool { return s.ReadyCount() == 1 })
	if err := d.Scale(ctx, id, 2); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, d, n, id, 30*time.Second, "2 ready replicas", func(s *compute.Status) bool { return s.ReadyCount() == 2 })
	if _, _, err := d.Capacity(ctx); err != nil {
		t.Error(err)
	}
	if _, err := d.Logs(ctx, id, compute.LogOptions{Replica: -1, Tail: 5}); err != nil {
		t.Error(err)
	}
	if err := d.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	assertNothingLabelled(t, c, ns, LabelDeployment+"="+LabelValue(id))
}
