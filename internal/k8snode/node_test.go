package k8snode

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

const helloImage = "modelship.local/k8snode/hello:test"

// buildHello builds testdata/hello as a static binary and packs it into an
// image from scratch.
func buildHello(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hello")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./testdata/hello")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building testdata/hello: %v\n%s", err, out)
	}
	return bin
}

// TestNode runs real pods on a real node: a 2-replica Deployment of an image
// built here answers HTTP on its pod IPs, through its Service's ClusterIP
// (kube-proxy) and NodePort; its logs come through the API (kubelet); pods
// reach the API server; a killed container comes back; teardown leaves
// nothing behind.
func TestNode(t *testing.T) {
	ipForward := readSysctls()["net/ipv4/ip_forward"]
	start := time.Now()
	n := Start(t)
	t.Logf("node up in %s", time.Since(start).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cs := n.Client

	node, err := cs.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !nodeReady(node) {
		t.Fatalf("node %s not Ready", n.Name)
	}
	var internal string
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			internal = a.Address
		}
	}
	if internal != NodeIP {
		t.Fatalf("node InternalIP %q, want %s", internal, NodeIP)
	}

	img, err := StaticImage(buildHello(t), "/hello", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	loadStart := time.Now()
	if err := n.LoadImage(ctx, helloImage, img); err != nil {
		t.Fatal(err)
	}
	t.Logf("image loaded in %s", time.Since(loadStart).Round(time.Millisecond))

	ns := "hello"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "hello"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To[int64](1),
					Containers: []corev1.Container{{
						Name:            "hello",
						Image:           helloImage,
						ImagePullPolicy: corev1.PullNever,
						Ports:           []corev1.ContainerPort{{ContainerPort: 8080}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
							PeriodSeconds: 1,
						},
						Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{
							corev1.ResourceMemory: resourceMust("64Mi"), corev1.ResourceCPU: resourceMust("200m"),
						}},
					}},
				},
			},
		},
	}
	applyStart := time.Now()
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: ns},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeNodePort,
			Selector: labels,
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pods := waitReadyPods(ctx, t, n, ns, 2, nil)
	t.Logf("2-replica Deployment Ready %s after create", time.Since(applyStart).Round(time.Millisecond))

	// Pod IPs, from the host.
	for _, p := range pods {
		body := get(ctx, t, "http://"+net.JoinHostPort(p.Status.PodIP, "8080")+"/", 0)
		if !strings.Contains(body, p.Name) {
			t.Fatalf("pod %s (%s) answered %q", p.Name, p.Status.PodIP, body)
		}
	}
	// The Service: ClusterIP (kube-proxy programs it shortly after the
	// endpoints are ready) and NodePort on the node IP.
	cipStart := time.Now()
	get(ctx, t, "http://"+net.JoinHostPort(svc.Spec.ClusterIP, "80")+"/", 15*time.Second)
	t.Logf("ClusterIP %s answered %s after the pods were Ready", svc.Spec.ClusterIP, time.Since(cipStart).Round(time.Millisecond))
	seen := map[string]bool{}
	// Both endpoints get there (the second may be programmed a moment
	// after the first).
	for end := time.Now().Add(15 * time.Second); len(seen) < 2 && time.Now().Before(end); {
		seen[strings.TrimSpace(get(ctx, t, "http://"+net.JoinHostPort(svc.Spec.ClusterIP, "80")+"/", 0))] = true
		time.Sleep(20 * time.Millisecond)
	}
	if len(seen) < 2 {
		t.Errorf("the ClusterIP reached only %v", seen)
	}
	nodePort := strconv.Itoa(int(svc.Spec.Ports[0].NodePort))
	if body := get(ctx, t, "http://"+net.JoinHostPort(NodeIP, nodePort)+"/", 15*time.Second); !strings.HasPrefix(body, "hello from hello-") {
		t.Fatalf("NodePort %s answered %q", nodePort, body)
	}

	// Pods reach the API server: directly on the node IP and through the
	// kubernetes Service.
	for _, addr := range []string{net.JoinHostPort(NodeIP, strconv.Itoa(APIServerPort)), net.JoinHostPort(KubernetesServiceIP, "443")} {
		u := "http://" + net.JoinHostPort(pods[0].Status.PodIP, "8080") + "/dial?addr=" + addr
		if body := get(ctx, t, u, 10*time.Second); !strings.Contains(body, "dialed") {
			t.Fatalf("pod dialing %s: %q", addr, body)
		}
	}

	// Logs through the API server (kubelet).
	logs, err := cs.CoreV1().Pods(ns).GetLogs(pods[0].Name, &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		t.Fatalf("pod logs: %v", err)
	}
	if !strings.Contains(string(logs), "GET / from") {
		t.Fatalf("pod logs lack the requests: %q", logs)
	}

	// Kill the container's process from the host: the kubelet restarts it.
	victim := pods[0]
	pid := containerPID(t, string(victim.UID), "/hello")
	killStart := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitReadyPods(ctx, t, n, ns, 2, func(p *corev1.Pod) bool {
		return p.UID != victim.UID || (len(p.Status.ContainerStatuses) > 0 && p.Status.ContainerStatuses[0].RestartCount > 0)
	})
	t.Logf("killed container back Ready in %s", time.Since(killStart).Round(time.Millisecond))
	get(ctx, t, "http://"+net.JoinHostPort(victim.Status.PodIP, "8080")+"/", 10*time.Second)

	// Teardown leaves nothing behind (checked before the host lock is
	// released: another test binary may be waiting to start its node).
	st := *n.st
	downStart := time.Now()
	// ip_forward as the node found it when it started (under the host
	// lock: a node of another test binary may have been up before).
	if v, ok := st.Sysctls["net/ipv4/ip_forward"]; ok {
		ipForward = v
	}
	if err := n.stop(func() { checkNothingLeft(t, n, &st, ipForward) }); err != nil {
		t.Fatalf("teardown: %v", err)
	}
	t.Logf("torn down in %s", time.Since(downStart).Round(time.Millisecond))
}

func checkNothingLeft(t *testing.T, n *Node, st *state, ipForward string) {
	t.Helper()
	if left := n.Leftovers(); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	if pids := strays(st.Dir); len(pids) > 0 {
		t.Errorf("processes left: %v", pids)
	}
	mounts, _ := os.ReadFile("/proc/self/mounts")
	for _, l := range strings.Split(string(mounts), "\n") {
		if strings.Contains(l, st.Dir) || strings.Contains(l, "/run/netns/cni-") || strings.Contains(l, "kubelet/pods") {
			t.Errorf("mount left: %s", l)
		}
	}
	if _, err := os.Stat("/sys/class/net/" + BridgeName); err == nil {
		t.Errorf("bridge %s left", BridgeName)
	}
	for _, cmd := range []string{"iptables-save", "ip6tables-save"} {
		out, err := exec.Command(cmd).Output()
		if err != nil {
			t.Errorf("%s: %v", cmd, err)
			continue
		}
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, ":KUBE-") || strings.HasPrefix(l, ":CNI-") {
				t.Errorf("%s: chain left: %s", cmd, l)
			}
		}
	}
	if got := readSysctls()["net/ipv4/ip_forward"]; got != ipForward {
		t.Errorf("ip_forward %s after teardown, was %s", got, ipForward)
	}
	if _, err := os.Stat(st.Dir); err == nil {
		t.Errorf("run folder %s left", st.Dir)
	}
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitReadyPods waits until ns has want pods, all Ready (and ok, when given).
func waitReadyPods(ctx context.Context, t *testing.T, n *Node, ns string, want int, ok func(*corev1.Pod) bool) []corev1.Pod {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var last string
	for {
		list, err := n.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err == nil {
			ready := 0
			for i := range list.Items {
				p := &list.Items[i]
				if p.DeletionTimestamp == nil && podReady(p) && (ok == nil || ok(p)) {
					ready++
				}
			}
			if ready == want && len(list.Items) == want {
				return list.Items
			}
			last = fmt.Sprintf("%d of %d pods ready", ready, len(list.Items))
		} else {
			last = err.Error()
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			t.Fatalf("waiting for %d Ready pods in %s: %v (last: %s)%s", want, ns, err, last, n.logTails())
		}
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// get fetches url and returns the body of a 200 answer, retrying for up to
// retry.
func get(ctx context.Context, t *testing.T, url string, retry time.Duration) string {
	t.Helper()
	// A new connection each time: the ClusterIP balances connections.
	hc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(retry)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := hc.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return string(body)
			}
			err = fmt.Errorf("HTTP %d: %s", resp.StatusCode, body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// containerPID finds the host PID of the container process running exe in
// the pod with uid (its cgroup path names the pod).
func containerPID(t *testing.T, uid, exe string) int {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cg, _ := os.ReadFile("/proc/" + e.Name() + "/cgroup")
		cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if strings.Contains(string(cg), "pod"+uid) && strings.HasPrefix(string(cmd), exe+"\x00") {
			return pid
		}
	}
	t.Fatalf("no process %s in pod %s", exe, uid)
	return 0
}

func resourceMust(s string) resource.Quantity { return resource.MustParse(s) }
