// Package k8stest starts a real Kubernetes control plane for tests: etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler and KWOK (fake
// nodes whose pods become Running and Ready without containers), all on
// 127.0.0.1 with free ports, every file in one temporary folder.
//
// The binaries are built from the Go module proxy by scripts/k8s-binaries.sh
// and cached by version outside the repository (see BinDir); Start runs the
// script when they are missing (about 10 minutes once). MODELSHIP_SKIP_K8S=1
// skips every test that needs a cluster.
//
// A test binary usually shares one cluster:
//
//	func TestMain(m *testing.M) { k8stest.Main(m) }
//	func TestX(t *testing.T)    { c := k8stest.Shared(t); ... }
//
// Start(t) gives a test its own cluster, stopped by t.Cleanup.
package k8stest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/modelship/modelship/internal/kubepki"
)

// SkipEnv names the environment variable that skips cluster tests.
const SkipEnv = "MODELSHIP_SKIP_K8S"

// ServiceClusterIPRange is the API server's --service-cluster-ip-range.
const ServiceClusterIPRange = "10.0.0.0/24"

// AdminUser is the user of the static admin token (group system:masters).
const AdminUser = "modelship-admin"

// Cluster is a running test control plane.
type Cluster struct {
	// Dir holds every file of the cluster: certificates, kubeconfig,
	// etcd data, logs (<component>.log).
	Dir string
	// Server is the API server URL (https://127.0.0.1:<port>).
	Server string
	// CAPEM is the CA that signed the serving certificate (and client
	// certificates).
	CAPEM []byte
	// AdminToken authenticates as AdminUser (system:masters).
	AdminToken string
	// Kubeconfig is an admin kubeconfig (context "k8stest", token auth),
	// also written to KubeconfigPath.
	Kubeconfig     []byte
	KubeconfigPath string
	// Config is the admin REST config; Client a clientset on it.
	Config *rest.Config
	Client kubernetes.Interface

	ca    *kubepki.CA
	procs []*proc
	once  sync.Once
}

// proc is one component process.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	err  error
}

// Start starts a cluster for t and stops it when t ends. It skips t when
// MODELSHIP_SKIP_K8S=1 and builds the binaries when they are missing.
func Start(t testing.TB) *Cluster {
	t.Helper()
	skipIfDisabled(t)
	bin := ensureBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	c, err := StartCluster(ctx, bin)
	if err != nil {
		t.Fatalf("k8stest: %v", err)
	}
	t.Cleanup(c.Stop)
	t.Logf("k8stest: cluster %s ready in %s (files in %s)", c.Server, time.Since(start).Round(time.Millisecond), c.Dir)
	return c
}

func skipIfDisabled(t testing.TB) {
	t.Helper()
	if os.Getenv(SkipEnv) == "1" {
		t.Skip("k8stest: MODELSHIP_SKIP_K8S=1: skipping tests against a real Kubernetes API server")
	}
}

// shared is the cluster of Shared, stopped by Main.
var shared struct {
	sync.Mutex
	main    bool
	cluster *Cluster
	err     error
	skip    string
}

// Main runs the tests of a package that uses Shared and stops the shared
// cluster afterwards. Call it from TestMain.
func Main(m *testing.M) {
	shared.Lock()
	shared.main = true
	shared.Unlock()
	code := m.Run()
	shared.Lock()
	if shared.cluster != nil {
		shared.cluster.Stop()
	}
	shared.Unlock()
	os.Exit(code)
}

// Shared returns the test binary's shared cluster, starting it on first use.
// TestMain must call Main. Tests sharing it must use their own namespaces
// and nodes (names) and not assume an empty cluster.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	skipIfDisabled(t)
	shared.Lock()
	defer shared.Unlock()
	if !shared.main {
		t.Fatal("k8stest.Shared needs TestMain to call k8stest.Main(m)")
	}
	if shared.skip != "" {
		t.Skip(shared.skip)
	}
	if shared.cluster == nil && shared.err == nil {
		// ensureBinaries skips or fails t when it cannot build; later
		// tests then skip or fail the same way.
		defer func() {
			if shared.cluster == nil && shared.err == nil {
				if t.Skipped() {
					shared.skip = "k8stest: Kubernetes binaries unavailable (see the first skipped test)"
				} else {
					shared.err = errors.New("building the Kubernetes binaries failed (see the first failed test)")
				}
			}
		}()
		bin := ensureBinaries(t)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		start := time.Now()
		shared.cluster, shared.err = StartCluster(ctx, bin)
		cancel()
		if shared.err == nil {
			t.Logf("k8stest: shared cluster %s ready in %s (files in %s)", shared.cluster.Server, time.Since(start).Round(time.Millisecond), shared.cluster.Dir)
		}
	}
	if shared.err != nil {
		t.Fatalf("k8stest: %v", shared.err)
	}
	return shared.cluster
}

// StartCluster starts a cluster from the binaries in bin (see BinDir) and
// waits until it is ready: the API server answers /readyz, the controller
// manager has created the default ServiceAccount and the scheduler and KWOK
// are running. The caller must call Stop.
func StartCluster(ctx context.Context, bin string) (_ *Cluster, err error) {
	dir, err := os.MkdirTemp("", "modelship-k8stest-")
	if err != nil {
		return nil, fmt.Errorf("creating the cluster folder: %w", err)
	}
	c := &Cluster{Dir: dir}
	defer func() {
		if err != nil {
			logs := c.logTails()
			c.Stop()
			err = fmt.Errorf("%w%s", err, logs)
		}
	}()
	if err := c.writeCredentials(); err != nil {
		return nil, err
	}
	ports, err := FreePorts(3)
	if err != nil {
		return nil, err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	c.Server = "https://127.0.0.1:" + strconv.Itoa(ports[2])
	if err := c.spawn(bin, "etcd",
		"--name=k8stest",
		"--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=k8stest="+peerURL,
		"--unsafe-no-fsync=true",
		"--log-level=warn",
	); err != nil {
		return nil, err
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	if err := c.spawn(bin, "kube-apiserver",
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(ports[2]),
		"--advertise-address=127.0.0.1",
		"--endpoint-reconciler-type=none",
		"--tls-cert-file="+p("apiserver.crt"),
		"--tls-private-key-file="+p("apiserver.key"),
		"--client-ca-file="+p("ca.crt"),
		"--token-auth-file="+p("tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-key-file="+p("sa.pub"),
		"--service-account-signing-key-file="+p("sa.key"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range="+ServiceClusterIPRange,
		"--allow-privileged=true",
		"--profiling=false",
		"--v=0",
	); err != nil {
		return nil, err
	}
	if err := c.waitReady(ctx); err != nil {
		return nil, err
	}
	if err := c.spawn(bin, "kube-controller-manager",
		"--kubeconfig="+c.KubeconfigPath,
		"--leader-elect=false",
		"--controllers=*,-nodeipam",
		"--service-account-private-key-file="+p("sa.key"),
		"--root-ca-file="+p("ca.crt"),
		"--secure-port=0",
		// Fake nodes stop heartbeating when KWOK stops; nothing to evict.
		"--node-monitor-grace-period=60s",
		"--profiling=false",
	); err != nil {
		return nil, err
	}
	if err := c.spawn(bin, "kube-scheduler",
		"--kubeconfig="+c.KubeconfigPath,
		"--leader-elect=false",
		"--secure-port=0",
		"--profiling=false",
	); err != nil {
		return nil, err
	}
	if err := c.spawn(bin, "kwok",
		"--kubeconfig="+c.KubeconfigPath,
		"--config="+filepath.Join(bin, "kwok-stages.yaml"),
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector="+kwokAnnotation+"=fake",
		"--node-lease-duration-seconds=40",
		"--cidr=10.244.0.1/16",
		"--node-ip=10.240.0.1",
		"--server-address=",
	); err != nil {
		return nil, err
	}
	if err := c.waitControllers(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// writeCredentials writes the CA, serving certificate, service-account
// keys, the static token file and the admin kubeconfig.
func (c *Cluster) writeCredentials() error {
	var err error
	if c.ca, err = kubepki.NewCA("modelship-k8stest-ca", 7*24*time.Hour); err != nil {
		return err
	}
	crt, key, err := c.ca.Issue("kube-apiserver", nil, true,
		[]net.IP{net.IPv4(127, 0, 0, 1), net.ParseIP("10.0.0.1")},
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"})
	if err != nil {
		return err
	}
	saKey, saPub, err := kubepki.ServiceAccountKey()
	if err != nil {
		return err
	}
	tok := make([]byte, 24)
	if _, err := rand.Read(tok); err != nil {
		return fmt.Errorf("generating the admin token: %w", err)
	}
	c.AdminToken = hex.EncodeToString(tok)
	c.CAPEM = c.ca.CertPEM
	files := map[string][]byte{
		"ca.crt":        c.ca.CertPEM,
		"apiserver.crt": crt,
		"apiserver.key": key,
		"sa.key":        saKey,
		"sa.pub":        saPub,
		"tokens.csv":    fmt.Appendf(nil, "%s,%s,%s-uid,\"system:masters\"\n", c.AdminToken, AdminUser, AdminUser),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(c.Dir, name), data, 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
	}
	return nil
}

// kubeconfig returns a kubeconfig for server with one context "k8stest".
func kubeconfig(server string, caPEM []byte, auth *clientcmdapi.AuthInfo) ([]byte, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["k8stest"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos["k8stest"] = auth
	cfg.Contexts["k8stest"] = &clientcmdapi.Context{Cluster: "k8stest", AuthInfo: "k8stest"}
	cfg.CurrentContext = "k8stest"
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, fmt.Errorf("encoding kubeconfig: %w", err)
	}
	return b, nil
}

// UserKubeconfig returns a kubeconfig that authenticates as user (member of
// groups) with a client certificate signed by the cluster CA. Such a user
// may do nothing until RBAC grants it something.
func (c *Cluster) UserKubeconfig(user string, groups ...string) ([]byte, error) {
	crt, key, err := c.ca.Issue(user, groups, false, nil, nil)
	if err != nil {
		return nil, err
	}
	return kubeconfig(c.Server, c.CAPEM, &clientcmdapi.AuthInfo{ClientCertificateData: crt, ClientKeyData: key})
}

// UserConfig is UserKubeconfig as a REST config.
func (c *Cluster) UserConfig(user string, groups ...string) (*rest.Config, error) {
	kc, err := c.UserKubeconfig(user, groups...)
	if err != nil {
		return nil, err
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kc)
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig of %s: %w", user, err)
	}
	return cfg, nil
}

// spawn starts bin/name with args, its output in Dir/name.log, in its own
// process group and killed if the test binary dies.
func (c *Cluster) spawn(bin, name string, args ...string) error {
	if name == "kube-controller-manager" || name == "kube-scheduler" || name == "kwok" {
		if err := c.ensureKubeconfig(); err != nil {
			return err
		}
	}
	logf, err := os.Create(filepath.Join(c.Dir, name+".log"))
	if err != nil {
		return fmt.Errorf("creating %s log: %w", name, err)
	}
	cmd := exec.Command(filepath.Join(bin, name), args...)
	cmd.Dir = c.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "HOME="+c.Dir) // KWOK and friends write under $HOME
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %w", name, err)
	}
	pr := &proc{name: name, cmd: cmd, log: logf, done: make(chan struct{})}
	go func() {
		pr.err = cmd.Wait()
		close(pr.done)
	}()
	c.procs = append(c.procs, pr)
	return nil
}

// ensureKubeconfig writes the admin kubeconfig once the server URL is known.
func (c *Cluster) ensureKubeconfig() error {
	if c.Kubeconfig != nil {
		return nil
	}
	kc, err := kubeconfig(c.Server, c.CAPEM, &clientcmdapi.AuthInfo{Token: c.AdminToken})
	if err != nil {
		return err
	}
	c.Kubeconfig = kc
	c.KubeconfigPath = filepath.Join(c.Dir, "kubeconfig")
	if err := os.WriteFile(c.KubeconfigPath, kc, 0o600); err != nil {
		return fmt.Errorf("writing kubeconfig: %w", err)
	}
	if c.Config, err = clientcmd.RESTConfigFromKubeConfig(kc); err != nil {
		return fmt.Errorf("loading admin kubeconfig: %w", err)
	}
	c.Config.QPS, c.Config.Burst = 200, 400
	if c.Client, err = kubernetes.NewForConfig(c.Config); err != nil {
		return fmt.Errorf("creating admin client: %w", err)
	}
	return nil
}

// exited returns an error when a component has exited.
func (c *Cluster) exited() error {
	for _, p := range c.procs {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %v", p.name, p.err)
		default:
		}
	}
	return nil
}

// waitReady waits for the API server's /readyz.
func (c *Cluster) waitReady(ctx context.Context) error {
	if err := c.ensureKubeconfig(); err != nil {
		return err
	}
	return WaitAPIServer(ctx, c.Config, c.exited)
}

// WaitAPIServer polls the API server of cfg until /readyz answers 200 (every
// 100 ms, bounded by ctx), failing early when exited reports that a
// component of the cluster stopped.
func WaitAPIServer(ctx context.Context, cfg *rest.Config, exited func() error) error {
	rt, err := rest.TransportFor(cfg)
	if err != nil {
		return fmt.Errorf("building admin transport: %w", err)
	}
	hc := &http.Client{Transport: rt, Timeout: 2 * time.Second}
	defer hc.CloseIdleConnections()
	var last string
	for {
		if err := exited(); err != nil {
			return err
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(cfg.Host, "/")+"/readyz", nil)
		resp, err := hc.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, tail(string(body), 500))
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for kube-apiserver /readyz: %w (last: %s)", ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitControllers waits until the controller manager works (the default
// ServiceAccount exists) and the other components are still running.
func (c *Cluster) waitControllers(ctx context.Context) error {
	for {
		if err := c.exited(); err != nil {
			return err
		}
		_, err := c.Client.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for kube-controller-manager (default ServiceAccount): %w (last: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop stops every component (SIGTERM, then SIGKILL after 5 s, to the
// whole process group) in reverse start order and removes Dir. Safe to call
// more than once.
func (c *Cluster) Stop() {
	c.once.Do(func() {
		for i := len(c.procs) - 1; i >= 0; i-- {
			p := c.procs[i]
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(5 * time.Second):
				_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
				<-p.done
			}
			// Children left in the group (none expected) go too.
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			p.log.Close()
		}
		if os.Getenv("MODELSHIP_K8STEST_KEEP") == "" {
			_ = os.RemoveAll(c.Dir)
		}
	})
}

// logTails returns the last lines of every component log, for errors.
func (c *Cluster) logTails() string {
	var b strings.Builder
	for _, p := range c.procs {
		data, _ := os.ReadFile(filepath.Join(c.Dir, p.name+".log"))
		fmt.Fprintf(&b, "\n--- %s.log (tail) ---\n%s", p.name, tail(string(bytes.TrimSpace(data)), 1500))
	}
	return b.String()
}

// PIDs returns the process IDs of the running components (for tests that
// check nothing is left behind).
func (c *Cluster) PIDs() []int {
	var out []int
	for _, p := range c.procs {
		out = append(out, p.cmd.Process.Pid)
	}
	return out
}

// FreePorts returns n distinct free TCP ports on 127.0.0.1 (all held
// open together while choosing, so they differ).
func FreePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var out []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// kwokAnnotation marks the nodes KWOK manages.
const kwokAnnotation = "kwok.x-k8s.io/node"

// AddNode creates a fake node managed by KWOK with the given allocatable
// capacity (cpu and memory as quantities, e.g. "4", "16Gi"; gpus as
// nvidia.com/gpu) and waits until it is Ready. The node is deleted when t
// ends.
func (c *Cluster) AddNode(t testing.TB, name, cpu, memory string, gpus int) *corev1.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := c.CreateNode(ctx, name, cpu, memory, gpus)
	if err != nil {
		t.Fatalf("k8stest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.Client.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})
	})
	return n
}

// CreateNode is AddNode without a test: the caller deletes the node.
func (c *Cluster) CreateNode(ctx context.Context, name, cpu, memory string, gpus int) (*corev1.Node, error) {
	res, err := nodeResources(cpu, memory, gpus)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", name, err)
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{kwokAnnotation: "fake", "node.alpha.kubernetes.io/ttl": "0"},
			Labels: map[string]string{
				"type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
				"kubernetes.io/arch": "amd64", "kubernetes.io/role": "agent", "node-role.kubernetes.io/agent": "",
			},
		},
		Status: corev1.NodeStatus{Capacity: res, Allocatable: res},
	}
	if _, err := c.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("creating node %s: %w", name, err)
	}
	for {
		n, err := c.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		// Ready, and the controller manager has lifted the not-ready
		// taint every new node starts with (else the first scheduling
		// attempts fail on the taint).
		if err == nil && NodeReady(n) && !notReadyTainted(n) {
			return n, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for node %s to be Ready: %w (is kwok running? see %s)", name, ctx.Err(), filepath.Join(c.Dir, "kwok.log"))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func notReadyTainted(n *corev1.Node) bool {
	for _, t := range n.Spec.Taints {
		if t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable {
			return true
		}
	}
	return false
}

// NodeReady reports whether n's Ready condition is True.
func NodeReady(n *corev1.Node) bool {
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

var errNoQuantity = errors.New("cpu and memory are required")

// nodeResources builds a node's capacity: cpu, memory, pods (110) and, when
// gpus > 0, nvidia.com/gpu.
func nodeResources(cpu, memory string, gpus int) (corev1.ResourceList, error) {
	if cpu == "" || memory == "" {
		return nil, errNoQuantity
	}
	c, err := resource.ParseQuantity(cpu)
	if err != nil {
		return nil, fmt.Errorf("cpu %q: %w", cpu, err)
	}
	m, err := resource.ParseQuantity(memory)
	if err != nil {
		return nil, fmt.Errorf("memory %q: %w", memory, err)
	}
	res := corev1.ResourceList{
		corev1.ResourceCPU:    c,
		corev1.ResourceMemory: m,
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	if gpus > 0 {
		res["nvidia.com/gpu"] = *resource.NewQuantity(int64(gpus), resource.DecimalSI)
	}
	return res, nil
}
