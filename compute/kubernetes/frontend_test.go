package kubernetes

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/compute"
	"github.com/modelship/modelship/internal/k8stest"
)

// testNodePort is the fixed node port of the golden front end.
const testNodePort = 31641

// waitFrontEnd waits on the driver's watch until cond holds for the front
// end's status.
func waitFrontEnd(t *testing.T, d *Driver, timeout time.Duration, what string, cond func(*FrontEndStatus) bool) *FrontEndStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last *FrontEndStatus
	var err error
	for {
		ch := d.changes()
		last, err = d.FrontEndStatus(ctx)
		if err == nil && cond(last) {
			return last
		}
		select {
		case <-ch:
		case <-time.After(2 * time.Second):
		case <-ctx.Done():
			t.Fatalf("waiting %s for %s: last front-end status %+v (err %v)", timeout, what, last, err)
		}
	}
}

// frontEndObjectsIn returns the resource versions of the front end's five
// objects in ns.
func frontEndVersions(t *testing.T, c *k8stest.Cluster, ns string) map[string]string {
	t.Helper()
	ctx := context.Background()
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, gvr := range frontEndGVRs {
		u, err := dyn.Resource(gvr).Namespace(ns).Get(ctx, FrontEndName, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("%s %s: %v", gvr.Resource, FrontEndName, err)
		}
		out[gvr.Resource] = u.GetResourceVersion()
	}
	return out
}

var frontEndGVRs = []schema.GroupVersionResource{
	{Version: "v1", Resource: "serviceaccounts"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"},
	{Version: "v1", Resource: "services"},
	{Group: "apps", Version: "v1", Resource: "deployments"},
}

// TestFrontEnd: InstallFrontEnd creates the objects of the golden manifest,
// the front-end pods turn Ready, installing again changes nothing, the
// address follows the Service type, the Role grants the front end what it
// needs and nothing more, routes are published without replicas and only
// when they change, and Uninstall removes everything with the label.
func TestFrontEnd(t *testing.T) {
	c := cluster(t)
	c.AddNode(t, "fe-node-1", "4", "16Gi", 0)
	c.AddNode(t, "fe-node-2", "4", "16Gi", 0)
	const ns = "frontend"
	d, n := newTestDriver(t, c, ns)
	ctx := context.Background()

	start := time.Now()
	if err := d.InstallFrontEndWith(ctx, FrontEndOptions{NodePort: testNodePort}); err != nil {
		t.Fatal(err)
	}
	t.Logf("install: %s", time.Since(start).Round(time.Millisecond))
	st := waitFrontEnd(t, d, 30*time.Second, "2 ready front-end replicas", func(s *FrontEndStatus) bool {
		return s.Installed && s.Ready == 2 && s.Updated == 2 && s.Desired == 2
	})
	t.Logf("install -> 2 ready front-end replicas: %s", time.Since(start).Round(time.Millisecond))
	if st.Image != testImage || st.ServiceType != corev1.ServiceTypeNodePort {
		t.Errorf("status = %+v", st)
	}
	pods, err := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: LabelComponent + "=" + ComponentFrontEnd})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 2 {
		t.Fatalf("%d front-end pods, want 2", len(pods.Items))
	}
	for _, p := range pods.Items {
		if p.Spec.ServiceAccountName != FrontEndName || p.Status.Phase != corev1.PodRunning || podCondition(&p, corev1.PodReady) == nil || podCondition(&p, corev1.PodReady).Status != corev1.ConditionTrue {
			t.Errorf("pod %s: service account %q, phase %s, conditions %v", p.Name, p.Spec.ServiceAccountName, p.Status.Phase, p.Status.Conditions)
		}
		// The ServiceAccount admission plugin mounted the token (the
		// front end uses the in-cluster config).
		if !slices.ContainsFunc(p.Spec.Volumes, func(v corev1.Volume) bool { return v.Projected != nil && strings.HasPrefix(v.Name, "kube-api-access-") }) {
			t.Errorf("pod %s has no service-account token volume: %+v", p.Name, p.Spec.Volumes)
		}
	}

	t.Run("golden", func(t *testing.T) {
		dyn, err := dynamic.NewForConfig(c.Config)
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		for _, gvr := range frontEndGVRs {
			u, err := dyn.Resource(gvr).Namespace(ns).Get(ctx, FrontEndName, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got.WriteString("---\n")
			got.Write(canonical(t, u))
		}
		golden := filepath.Join("testdata", "frontend.yaml")
		if *update {
			if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (run go test -run TestFrontEnd -update to create it)", err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("objects differ from %s (go test -run TestFrontEnd -update rewrites it):\n%s", golden, lineDiff(string(want), got.String()))
		}
	})

	t.Run("install again changes nothing", func(t *testing.T) {
		// Let the Deployment controller finish its status updates.
		waitFrontEnd(t, d, 30*time.Second, "front end available", func(*FrontEndStatus) bool {
			dep, err := c.Client.AppsV1().Deployments(ns).Get(ctx, FrontEndName, metav1.GetOptions{})
			if err != nil {
				return false
			}
			p := deploymentCondition(dep, appsv1.DeploymentProgressing)
			return dep.Status.ObservedGeneration == dep.Generation && dep.Status.AvailableReplicas == 2 && p != nil && p.Reason == "NewReplicaSetAvailable"
		})
		before := frontEndVersions(t, c, ns)
		if err := d.InstallFrontEndWith(ctx, FrontEndOptions{NodePort: testNodePort}); err != nil {
			t.Fatal(err)
		}
		if after := frontEndVersions(t, c, ns); !reflect.DeepEqual(before, after) {
			t.Errorf("installing the same front end again changed resource versions:\nbefore %v\nafter  %v", before, after)
		}
	})

	t.Run("address", func(t *testing.T) {
		addr, err := d.FrontEndAddress(ctx)
		if err != nil {
			t.Fatal(err)
		}
		u, err := url.Parse(addr)
		if err != nil || u.Scheme != "http" || u.Port() != fmt.Sprint(testNodePort) {
			t.Fatalf("NodePort address %q (%v); want http://<node IP>:%d", addr, err, testNodePort)
		}
		nodes, err := c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var ips []string
		for _, n := range nodes.Items {
			for _, a := range n.Status.Addresses {
				if a.Type == corev1.NodeInternalIP && k8stest.NodeReady(&n) {
					ips = append(ips, a.Address)
				}
			}
		}
		if !slices.Contains(ips, u.Hostname()) {
			t.Errorf("NodePort address %q: host is not the InternalIP of a Ready node %v", addr, ips)
		}
		if url, ready, err := d.FrontEnd(ctx); err != nil || url != addr || ready != 2 {
			t.Errorf("FrontEnd = %q, %d, %v; want %q, 2", url, ready, err, addr)
		}

		// A random node port when none is fixed: the API server picks one
		// and installing again keeps it.
		if err := d.InstallFrontEndWith(ctx, FrontEndOptions{}); err != nil {
			t.Fatal(err)
		}
		svc, err := c.Client.CoreV1().Services(ns).Get(ctx, FrontEndName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if np := svc.Spec.Ports[0].NodePort; np < 30000 || np > 32767 {
			t.Errorf("node port %d after dropping the fixed one", np)
		}

		// LoadBalancer: pending until the cloud sets an ingress.
		if err := d.InstallFrontEndWith(ctx, FrontEndOptions{ServiceType: corev1.ServiceTypeLoadBalancer}); err != nil {
			t.Fatal(err)
		}
		_, err = d.FrontEndAddress(ctx)
		if modelship.ErrorCode(err) != modelship.EUNAVAILABLE || !strings.Contains(err.Error(), "pending") {
			t.Errorf("LoadBalancer without ingress: %v; want unavailable, pending", err)
		}
		if url, ready, err := d.FrontEnd(ctx); url != "" || ready != 2 || err == nil {
			t.Errorf("FrontEnd with a pending load balancer = %q, %d, %v", url, ready, err)
		}
		svc, err = c.Client.CoreV1().Services(ns).Get(ctx, FrontEndName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.7"}}
		if _, err := c.Client.CoreV1().Services(ns).UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		if addr, err := d.FrontEndAddress(ctx); err != nil || addr != "http://203.0.113.7:8641" {
			t.Errorf("LoadBalancer address = %q, %v", addr, err)
		}

		// ClusterIP: in-cluster only.
		if err := d.InstallFrontEndWith(ctx, FrontEndOptions{ServiceType: corev1.ServiceTypeClusterIP}); err != nil {
			t.Fatal(err)
		}
		addr, err = d.FrontEndAddress(ctx)
		_, svcNet, _ := net.ParseCIDR(k8stest.ServiceClusterIPRange)
		if u, perr := url.Parse(addr); err != nil || perr != nil || u.Port() != "8641" || !svcNet.Contains(net.ParseIP(u.Hostname())) {
			t.Errorf("ClusterIP address = %q, %v; want http://<IP in %s>:8641", addr, err, k8stest.ServiceClusterIPRange)
		}

		// Back to the golden front end.
		if err := d.InstallFrontEndWith(ctx, FrontEndOptions{NodePort: testNodePort}); err != nil {
			t.Fatal(err)
		}
		if addr, err := d.FrontEndAddress(ctx); err != nil || !strings.HasSuffix(addr, fmt.Sprintf(":%d", testNodePort)) {
			t.Errorf("NodePort address again = %q, %v", addr, err)
		}
		if err := d.InstallFrontEndWith(ctx, FrontEndOptions{ServiceType: "Headless"}); modelship.ErrorCode(err) != modelship.EINVALID {
			t.Errorf("service type Headless: %v, want invalid", err)
		}
	})

	// A model deployment for the front end to discover and scale.
	modelID := "ws/fe-model"
	if err := d.Apply(ctx, &compute.Spec{ID: modelID, Revision: "r1", Replicas: 1, CPU: 0.1, MemoryGB: 0.25}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, d, n, modelID, 30*time.Second, "1 ready replica", func(s *compute.Status) bool { return s.ReadyCount() == 1 })

	t.Run("publish routes", func(t *testing.T) {
		table := testTable(1)
		orig, _ := json.Marshal(table)
		if err := d.PublishRoutes(ctx, table); err != nil {
			t.Fatal(err)
		}
		if now, _ := json.Marshal(table); !bytes.Equal(now, orig) {
			t.Error("PublishRoutes changed the caller's table")
		}
		sec := routesSecretOf(t, c, ns)
		if sec.Type != corev1.SecretTypeOpaque || sec.Labels[LabelManagedBy] != ManagedBy || sec.Labels[LabelComponent] != ComponentFrontEnd {
			t.Errorf("secret type %s labels %v", sec.Type, sec.Labels)
		}
		var got modelship.RouteTable
		if err := json.Unmarshal(sec.Data[RoutesSecretKey], &got); err != nil {
			t.Fatalf("%s: %v\n%s", RoutesSecretKey, err, sec.Data[RoutesSecretKey])
		}
		want := testTable(1)
		for i := range want.Routes {
			for j := range want.Routes[i].Versions {
				want.Routes[i].Versions[j].Replicas = []modelship.ReplicaEndpoint{}
			}
		}
		if !reflect.DeepEqual(&got, want) {
			t.Errorf("published table:\n%s\nwant (replicas emptied):\n%s", jsonOf(&got), jsonOf(want))
		}
		if strings.Contains(string(sec.Data[RoutesSecretKey]), "10.244.9.9") {
			t.Errorf("replica URLs reached the Secret:\n%s", sec.Data[RoutesSecretKey])
		}

		// The same routes with a new generation and other replicas: no
		// write.
		same := testTable(2)
		same.Routes[0].Versions[0].Replicas = append(same.Routes[0].Versions[0].Replicas, modelship.ReplicaEndpoint{ID: "r9", URL: "http://10.244.9.10:5001", Ready: true})
		if err := d.PublishRoutes(ctx, same); err != nil {
			t.Fatal(err)
		}
		if again := routesSecretOf(t, c, ns); again.ResourceVersion != sec.ResourceVersion {
			t.Errorf("publishing the same routes (generation 2) rewrote the Secret: resourceVersion %s -> %s", sec.ResourceVersion, again.ResourceVersion)
		}

		// A changed table is written.
		changed := testTable(3)
		changed.Routes[1].Versions[0].TrafficPercent, changed.Routes[1].Versions[1].TrafficPercent = 50, 50
		if err := d.PublishRoutes(ctx, changed); err != nil {
			t.Fatal(err)
		}
		after := routesSecretOf(t, c, ns)
		if after.ResourceVersion == sec.ResourceVersion {
			t.Fatal("a changed table was not written")
		}
		got = modelship.RouteTable{}
		if err := json.Unmarshal(after.Data[RoutesSecretKey], &got); err != nil {
			t.Fatal(err)
		}
		if got.Generation != 3 || got.Routes[1].Versions[1].TrafficPercent != 50 {
			t.Errorf("after the change: generation %d, traffic %v", got.Generation, got.Routes[1].Versions[1].TrafficPercent)
		}

		// Concurrent publishes: no error, and the Secret holds one of them.
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := range 8 {
			wg.Go(func() {
				tb := testTable(int64(10 + i))
				tb.Routes[0].KeyHashes = []string{fmt.Sprintf("%064x", i)}
				errs <- d.PublishRoutes(ctx, tb)
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("concurrent PublishRoutes: %v", err)
			}
		}
		got = modelship.RouteTable{}
		if err := json.Unmarshal(routesSecretOf(t, c, ns).Data[RoutesSecretKey], &got); err != nil {
			t.Fatal(err)
		}
		i := got.Generation - 10
		if i < 0 || i >= 8 || got.Routes[0].KeyHashes[0] != fmt.Sprintf("%064x", i) {
			t.Errorf("after concurrent publishes: generation %d, key hashes %v", got.Generation, got.Routes[0].KeyHashes)
		}
	})

	t.Run("front-end permissions", func(t *testing.T) {
		// Everything the front end does, as its ServiceAccount.
		rc := rest.CopyConfig(c.Config)
		rc.Impersonate = rest.ImpersonationConfig{
			UserName: "system:serviceaccount:" + ns + ":" + FrontEndName,
			Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
		}
		sa, err := k8s.NewForConfig(rc)
		if err != nil {
			t.Fatal(err)
		}
		byName := metav1.ListOptions{FieldSelector: "metadata.name=" + RoutesSecretName}
		managed := metav1.ListOptions{LabelSelector: LabelManagedBy + "=" + ManagedBy}
		name := ObjectName(modelID)
		allowed := map[string]func() error{
			"get the routes secret": func() error {
				_, err := sa.CoreV1().Secrets(ns).Get(ctx, RoutesSecretName, metav1.GetOptions{})
				return err
			},
			"list the routes secret by name": func() error {
				l, err := sa.CoreV1().Secrets(ns).List(ctx, byName)
				if err == nil && len(l.Items) != 1 {
					err = fmt.Errorf("%d secrets", len(l.Items))
				}
				return err
			},
			"watch the routes secret by name": func() error {
				w, err := sa.CoreV1().Secrets(ns).Watch(ctx, byName)
				if err == nil {
					w.Stop()
				}
				return err
			},
			"list endpointslices": func() error {
				l, err := sa.DiscoveryV1().EndpointSlices(ns).List(ctx, managed)
				if err == nil && !slices.ContainsFunc(l.Items, func(s discoveryv1.EndpointSlice) bool { return s.Labels[LabelDeployment] == LabelValue(modelID) }) {
					err = fmt.Errorf("no EndpointSlice labelled %s=%s (the Service's labels are copied to its slices)", LabelDeployment, LabelValue(modelID))
				}
				return err
			},
			"watch endpointslices": func() error {
				w, err := sa.DiscoveryV1().EndpointSlices(ns).Watch(ctx, managed)
				if err == nil {
					w.Stop()
				}
				return err
			},
			"get a deployment": func() error {
				_, err := sa.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
				return err
			},
			"scale a deployment": func() error {
				sc, err := sa.AppsV1().Deployments(ns).GetScale(ctx, name, metav1.GetOptions{})
				if err != nil {
					return err
				}
				_, err = sa.AppsV1().Deployments(ns).UpdateScale(ctx, name, &autoscalingv1.Scale{ObjectMeta: sc.ObjectMeta, Spec: autoscalingv1.ScaleSpec{Replicas: 2}}, metav1.UpdateOptions{})
				return err
			},
			"patch a deployment's scale": func() error {
				_, err := sa.AppsV1().Deployments(ns).Patch(ctx, name, types.MergePatchType, []byte(`{"spec":{"replicas":1}}`), metav1.PatchOptions{}, "scale")
				return err
			},
		}
		denied := map[string]func() error{
			"list every secret": func() error {
				_, err := sa.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
				return err
			},
			"get another secret": func() error {
				_, err := sa.CoreV1().Secrets(ns).Get(ctx, "other", metav1.GetOptions{})
				return err
			},
			"update the routes secret": func() error {
				s, err := c.Client.CoreV1().Secrets(ns).Get(ctx, RoutesSecretName, metav1.GetOptions{})
				if err != nil {
					return err
				}
				_, err = sa.CoreV1().Secrets(ns).Update(ctx, s, metav1.UpdateOptions{})
				return err
			},
			"patch a deployment": func() error {
				_, err := sa.AppsV1().Deployments(ns).Patch(ctx, name, types.MergePatchType, []byte(`{"metadata":{"labels":{"x":"y"}}}`), metav1.PatchOptions{})
				return err
			},
			"delete a deployment": func() error {
				return sa.AppsV1().Deployments(ns).Delete(ctx, name, metav1.DeleteOptions{})
			},
			"list pods": func() error {
				_, err := sa.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
				return err
			},
			"scale in another namespace": func() error {
				_, err := sa.AppsV1().Deployments("default").GetScale(ctx, name, metav1.GetOptions{})
				return err
			},
		}
		for what, f := range allowed {
			if err := f(); err != nil {
				t.Errorf("front end may not %s: %v", what, err)
			}
		}
		for what, f := range denied {
			if err := f(); !apierrors.IsForbidden(err) {
				t.Errorf("front end may %s: %v; want forbidden", what, err)
			}
		}
		// The same through the authorizer (SubjectAccessReview).
		for _, r := range FrontEndRules {
			for _, v := range r.Verbs {
				res, sub, _ := strings.Cut(r.Resources[0], "/")
				ra := &authorizationv1.ResourceAttributes{Namespace: ns, Verb: v, Group: r.APIGroups[0], Resource: res, Subresource: sub}
				if len(r.ResourceNames) > 0 {
					ra.Name = r.ResourceNames[0]
				}
				sar, err := c.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
					User: rc.Impersonate.UserName, Groups: rc.Impersonate.Groups, ResourceAttributes: ra,
				}}, metav1.CreateOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if !sar.Status.Allowed {
					t.Errorf("SubjectAccessReview: front end may not %s %+v: %s", v, ra, sar.Status.Reason)
				}
			}
		}
	})

	// A ConfigMap labelled as modelship's: Uninstall removes it too.
	if _, err := c.Client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
		Name: "ms-extra", Labels: map[string]string{LabelManagedBy: ManagedBy},
	}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	t.Run("uninstall", func(t *testing.T) {
		err := d.Uninstall(ctx, false)
		if modelship.ErrorCode(err) != modelship.ECONFLICT || !strings.Contains(err.Error(), "1 model deployment(s): "+ObjectName(modelID)) {
			t.Fatalf("Uninstall with a model deployment: %v; want conflict naming %s", err, ObjectName(modelID))
		}
		if _, err := c.Client.AppsV1().Deployments(ns).Get(ctx, FrontEndName, metav1.GetOptions{}); err != nil {
			t.Errorf("a refused Uninstall removed the front end: %v", err)
		}
		start := time.Now()
		if err := d.Uninstall(ctx, true); err != nil {
			t.Fatal(err)
		}
		t.Logf("uninstall (force): %s", time.Since(start).Round(time.Millisecond))
		// No pod is left when Uninstall returns.
		if pods, err := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err != nil || len(pods.Items) != 0 {
			t.Errorf("pods after Uninstall: %v, %v", pods, err)
		}
		assertNothingLabelled(t, c, ns, LabelManagedBy+"="+ManagedBy)
		assertNothingLabelledExtra(t, c, ns, LabelManagedBy+"="+ManagedBy)
		// The driver created the namespace (labelled): it is going.
		nsObj, err := c.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if err == nil && nsObj.DeletionTimestamp == nil {
			t.Errorf("namespace %s created by modelship was not deleted", ns)
		} else if err != nil && !apierrors.IsNotFound(err) {
			t.Error(err)
		}
	})
}

// assertNothingLabelledExtra checks the kinds assertNothingLabelled does
// not: Secrets, ConfigMaps, ServiceAccounts, Roles, RoleBindings.
func assertNothingLabelledExtra(t *testing.T, c *k8stest.Cluster, ns, selector string) {
	t.Helper()
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	for _, gvr := range []schema.GroupVersionResource{
		{Version: "v1", Resource: "secrets"},
		{Version: "v1", Resource: "configmaps"},
		{Version: "v1", Resource: "serviceaccounts"},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"},
	} {
		l, err := dyn.Resource(gvr).Namespace(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			t.Fatalf("listing %s: %v", gvr.Resource, err)
		}
		for _, it := range l.Items {
			t.Errorf("%s %s still labelled %s", gvr.Resource, it.GetName(), selector)
		}
	}
}

func routesSecretOf(t *testing.T, c *k8stest.Cluster, ns string) *corev1.Secret {
	t.Helper()
	s, err := c.Client.CoreV1().Secrets(ns).Get(context.Background(), RoutesSecretName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func jsonOf(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

// testTable is a route table with a service and an endpoint of two
// versions, with replicas.
func testTable(gen int64) *modelship.RouteTable {
	rep := func(ip string) []modelship.ReplicaEndpoint {
		return []modelship.ReplicaEndpoint{{ID: "r0", URL: "http://" + ip + ":5001", Ready: true}}
	}
	return &modelship.RouteTable{
		Generation:      gen,
		TokenPublicKeys: [][]byte{bytes.Repeat([]byte{7}, 32)},
		Routes: []modelship.Route{
			{Kind: modelship.RouteService, Workspace: "ws", Name: "svc", Auth: modelship.AuthKey, KeyHashes: []string{strings.Repeat("ab", 32)},
				Versions: []modelship.RouteVersion{{Name: "svc", Deployment: "ws/svc", TrafficPercent: 100, IsDefault: true,
					MaxConcurrentRequestsPerContainer: 1, MaxQueueWait: 500 * time.Millisecond, ScoringTimeout: time.Minute,
					Replicas: rep("10.244.9.9"), Autoscale: &modelship.AutoscaleSettings{MinReplicas: 1, MaxReplicas: 3, TargetUtilization: 70}}}},
			{Kind: modelship.RouteEndpoint, Workspace: "ws", Name: "ep", Auth: modelship.AuthToken, TokenAudience: "ws/ep",
				Versions: []modelship.RouteVersion{
					{Name: "v1", Deployment: "ws/ep.v1", TrafficPercent: 80, IsDefault: true, Replicas: rep("10.244.9.8")},
					{Name: "v2", Deployment: "ws/ep.v2", TrafficPercent: 20, MirrorPercent: 10, Replicas: rep("10.244.9.7")},
				}},
		},
	}
}

// rbacFor returns a Role (in ns) and a ClusterRole granting exactly
// Permissions, plus what Attach checks besides (get on kube-system and ns).
func rbacFor(name, ns string, keep func(Permission) bool) (*rbacv1.Role, *rbacv1.ClusterRole) {
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	cr := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}}
	type key struct{ group, resource, name string }
	index := map[bool]map[key]int{true: {}, false: {}}
	for _, p := range Permissions {
		if keep != nil && !keep(p) {
			continue
		}
		res := p.Resource
		if p.Subresource != "" {
			res += "/" + p.Subresource
		}
		k := key{p.Group, res, p.Name}
		rules := &cr.Rules
		if p.Namespaced {
			rules = &role.Rules
		}
		i, ok := index[p.Namespaced][k]
		if !ok {
			r := rbacv1.PolicyRule{APIGroups: []string{p.Group}, Resources: []string{res}}
			if p.Name != "" {
				r.ResourceNames = []string{p.Name}
			}
			*rules = append(*rules, r)
			i = len(*rules) - 1
			index[p.Namespaced][k] = i
		}
		(*rules)[i].Verbs = append((*rules)[i].Verbs, p.Verb)
	}
	for i, r := range cr.Rules {
		if r.Resources[0] == "namespaces" {
			cr.Rules[i].ResourceNames = append(cr.Rules[i].ResourceNames, ns)
		}
	}
	return role, cr
}

// bindUser creates role and cr and binds them to user.
func bindUser(t *testing.T, c *k8stest.Cluster, user string, role *rbacv1.Role, cr *rbacv1.ClusterRole) {
	t.Helper()
	ctx := context.Background()
	subj := []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: user}}
	if _, err := c.Client.RbacV1().Roles(role.Namespace).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.RbacV1().RoleBindings(role.Namespace).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name}, Subjects: subj,
		RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.RbacV1().ClusterRoles().Create(ctx, cr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: cr.Name}, Subjects: subj,
		RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: cr.Name},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Client.RbacV1().ClusterRoleBindings().Delete(context.Background(), cr.Name, metav1.DeleteOptions{})
		_ = c.Client.RbacV1().ClusterRoles().Delete(context.Background(), cr.Name, metav1.DeleteOptions{})
	})
}

// TestFrontEndLeastPrivilege: credentials holding exactly Permissions pass
// Attach and can install the front end (RBAC lets them create its Role
// only because they hold what it grants), publish routes and uninstall;
// without the endpointslices permission the Role cannot be created; a
// restricted user's Attach lists the front end's permissions as missing.
func TestFrontEndLeastPrivilege(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	const ns = "feleast"
	c.AddNode(t, "feleast-node", "4", "16Gi", 0)
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, nsObject(ns), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Client.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })

	t.Run("restricted user", func(t *testing.T) {
		grant(t, c, ns, "fe-restricted", rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}})
		kc, err := c.UserKubeconfig("fe-restricted")
		if err != nil {
			t.Fatal(err)
		}
		_, err = Attach(ctx, kc, "", ns, "DevTest")
		if modelship.ErrorCode(err) != modelship.EFORBIDDEN {
			t.Fatalf("Attach: %v; want forbidden", err)
		}
		for _, s := range []string{
			"create secrets in namespace " + ns, "watch secrets in namespace " + ns, "delete secrets in namespace " + ns,
			"create serviceaccounts in namespace " + ns, "create roles.rbac.authorization.k8s.io in namespace " + ns,
			"create rolebindings.rbac.authorization.k8s.io in namespace " + ns, "delete roles.rbac.authorization.k8s.io in namespace " + ns,
			"list endpointslices.discovery.k8s.io in namespace " + ns, "watch endpointslices.discovery.k8s.io in namespace " + ns,
			"list configmaps in namespace " + ns, "delete configmaps in namespace " + ns,
		} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("Attach error does not list %q:\n%v", s, err)
			}
		}
		_, err = Attach(ctx, kc, "", "feleast-missing", "DevTest")
		if err == nil || !strings.Contains(err.Error(), "delete namespaces feleast-missing (cluster-wide)") || !strings.Contains(err.Error(), "create namespaces (cluster-wide)") {
			t.Errorf("Attach to a namespace to create: %v; want create and delete namespaces listed", err)
		}
	})

	t.Run("without endpointslices", func(t *testing.T) {
		role, cr := rbacFor("fe-noslices", ns, func(p Permission) bool { return p.Resource != "endpointslices" })
		bindUser(t, c, "fe-noslices", role, cr)
		kc, err := c.UserKubeconfig("fe-noslices")
		if err != nil {
			t.Fatal(err)
		}
		d, err := New(ctx, Config{Kubeconfig: kc, Namespace: ns, Image: testImage})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close(ctx)
		err = d.InstallFrontEnd(ctx)
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "not currently held") {
			t.Errorf("InstallFrontEnd without the endpointslices permission: %v; want RBAC's escalation refusal", err)
		}
	})

	t.Run("exactly Permissions", func(t *testing.T) {
		role, cr := rbacFor("fe-operator", ns, nil)
		bindUser(t, c, "fe-operator", role, cr)
		kc, err := c.UserKubeconfig("fe-operator")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Attach(ctx, kc, "", ns, "DevTest"); err != nil {
			t.Fatalf("Attach with exactly Permissions: %v", err)
		}
		n := newNotifier()
		// InstallFrontEnd takes its options from Config.FrontEnd.
		d, err := New(ctx, Config{Kubeconfig: kc, Namespace: ns, Image: testImage, OnChange: n.notify,
			FrontEnd: FrontEndOptions{ServiceType: corev1.ServiceTypeClusterIP, Replicas: 1}})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close(ctx)
		if err := d.InstallFrontEnd(ctx); err != nil {
			t.Fatalf("InstallFrontEnd: %v", err)
		}
		waitFrontEnd(t, d, 30*time.Second, "1 ready front-end replica", func(s *FrontEndStatus) bool { return s.Ready == 1 && s.Desired == 1 })
		svc, err := c.Client.CoreV1().Services(ns).Get(ctx, FrontEndName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if url, ready, err := d.FrontEnd(ctx); err != nil || svc.Spec.Type != corev1.ServiceTypeClusterIP || url != "http://"+svc.Spec.ClusterIP+":8641" || ready != 1 {
			t.Errorf("FrontEnd = %q, %d, %v (service type %s); want the ClusterIP address, 1", url, ready, err, svc.Spec.Type)
		}
		if err := d.PublishRoutes(ctx, testTable(1)); err != nil {
			t.Fatalf("PublishRoutes: %v", err)
		}
		id := "ws/least"
		if err := d.Apply(ctx, &compute.Spec{ID: id, Revision: "r1", Replicas: 1, CPU: 0.1, MemoryGB: 0.25, SecretEnv: map[string]string{"T": "x"}}); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, d, n, id, 30*time.Second, "1 ready replica", func(s *compute.Status) bool { return s.ReadyCount() == 1 })
		if err := d.Uninstall(ctx, false); modelship.ErrorCode(err) != modelship.ECONFLICT {
			t.Errorf("Uninstall without force: %v; want conflict", err)
		}
		if err := d.Uninstall(ctx, true); err != nil {
			t.Fatalf("Uninstall: %v", err)
		}
		assertNothingLabelled(t, c, ns, LabelManagedBy+"="+ManagedBy)
		assertNothingLabelledExtra(t, c, ns, LabelManagedBy+"="+ManagedBy)
		// The namespace existed before modelship: it stays.
		if nsObj, err := c.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil || nsObj.DeletionTimestamp != nil {
			t.Errorf("namespace %s (not created by modelship) after Uninstall: %v, %v", ns, nsObj, err)
		}
		// The user's own Role and RoleBinding (not labelled) are untouched.
		if _, err := c.Client.RbacV1().Roles(ns).Get(ctx, "fe-operator", metav1.GetOptions{}); err != nil {
			t.Errorf("Uninstall removed an unlabelled Role: %v", err)
		}
	})
}
