// Package k8snode runs a real single-node Kubernetes cluster on this host:
// etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet,
// kube-proxy and containerd (own configuration, state, root and socket), with
// real pods on a bridge network, and tears it all down again: processes,
// mounts, the bridge, iptables chains (KUBE-*, CNI-*), changed sysctls,
// cgroups.
//
// Every file lives under one run folder. The binaries come from
// scripts/k8s-binaries.sh (cached by version, see k8stest.BinDir);
// containerd, runc, the CNI plugins, iptables and conntrack from Debian
// (scripts/setup.sh). Nothing is pulled: images are imported with LoadImage
// (the sandbox image is a static pause program built by k8s-binaries.sh).
//
// The network: a bridge BridgeName with the node IP NodeIP (PodCIDR's
// gateway). The API server listens on NodeIP:APIServerPort, so both the host
// and pods reach it (pods also through the kubernetes Service,
// KubernetesServiceIP). A control plane on the host that pods must reach
// binds to NodeIP too. Services (ServiceCIDR) work through kube-proxy
// (iptables); NodePorts answer on NodeIP only. There is no cluster DNS.
//
// One node per host at a time (a lock file); it needs root.
//
// Tests call Start(t). scripts/k8s-node.sh up|down [RUN_DIR] drives the same
// code through ./internal/k8snode/cmd/k8snode.
package k8snode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/modelship/modelship/internal/k8stest"
	"github.com/modelship/modelship/internal/kubepki"
)

// The node's fixed network and names (one node per host).
const (
	NodeName            = "modelship-node"
	BridgeName          = "msk8s0"
	PodCIDR             = "10.244.0.0/24"
	NodeIP              = "10.244.0.1"
	ServiceCIDR         = "10.96.0.0/24"
	KubernetesServiceIP = "10.96.0.1"
	APIServerPort       = 6443
	KubeletPort         = 10250
	// PauseImage is containerd's sandbox image, imported at start.
	PauseImage = "modelship.local/k8snode/pause:v1"
	// AdminUser is the admin kubeconfig's user (group system:masters).
	AdminUser = "modelship-admin"
)

// Paths of host-global things.
const (
	lockPath  = "/run/modelship-k8snode.lock"
	ownerPath = "/run/modelship-k8snode.json" // names the run folder of the node that is up
	cniBinDir = "/usr/lib/cni"
)

// components in start order; teardown goes in reverse.
var components = []string{"etcd", "kube-apiserver", "containerd", "kubelet", "kube-proxy", "kube-controller-manager", "kube-scheduler"}

// binaries the node needs from k8s-binaries.sh.
var kubeBinaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "pause"}

// hostCommands the node needs from Debian packages.
var hostCommands = []string{"containerd", "containerd-shim-runc-v2", "runc", "ctr", "iptables", "ip6tables", "conntrack", "ip", "mount"}

// cniPlugins the CNI configuration uses (loopback: containerd sets up lo).
var cniPlugins = []string{"bridge", "host-local", "loopback"}

// Node is a running single-node cluster.
type Node struct {
	// Dir is the run folder: certificates, kubeconfigs, configs, logs
	// (logs/<component>.log), etcd, containerd and kubelet state.
	Dir string
	// Name and IP of the node (NodeName, NodeIP).
	Name, IP string
	// Server is the API server URL (https://NodeIP:APIServerPort).
	Server string
	// CAPEM signed every certificate of the node (the API server's too).
	CAPEM []byte
	// Kubeconfig is an admin kubeconfig (client certificate, group
	// system:masters), also at KubeconfigPath.
	Kubeconfig     []byte
	KubeconfigPath string
	// Config is the admin REST config; Client a clientset on it.
	Config *rest.Config
	Client kubernetes.Interface
	// ContainerdSocket is the node's containerd socket (for ctr -a).
	ContainerdSocket string

	st   *state
	lock *os.File
}

// state is what teardown needs, kept in Dir/state.json (the script's down
// runs in another process).
type state struct {
	Dir  string         `json:"dir"`
	PIDs map[string]int `json:"pids"`
	// Sysctls holds the values found before start of every sysctl the
	// node's components may change; teardown restores them.
	Sysctls map[string]string `json:"sysctls"`
	// Netns lists /run/netns entries that existed before start.
	Netns []string `json:"netns"`
	// Created lists host folders that did not exist before start.
	Created []string `json:"created"`
	// KeepLogs: teardown leaves Dir/logs (the script's down).
	KeepLogs bool `json:"keepLogs"`
}

// Options tune Up.
type Options struct {
	// Dir is the run folder (created; must be empty or absent). Default: a
	// new temporary folder.
	Dir string
	// BinDir holds the binaries of k8s-binaries.sh. Default k8stest.BinDir.
	BinDir string
	// Detach starts the components in their own sessions, surviving the
	// caller (the script's up). Otherwise they die with the caller.
	Detach bool
	// KeepLogs leaves Dir/logs in place on teardown.
	KeepLogs bool
	// LockWait is how long to wait for another node on this host to go
	// away. Default: do not wait.
	LockWait time.Duration
	// Logf reports progress. Default: silent.
	Logf func(format string, args ...any)
}

// Check reports why a node cannot run on this host: not root, no cgroups,
// a missing binary or package. nil means it can.
func Check(binDir string) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (creates a bridge, mounts, iptables rules, cgroups)")
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory/memory.limit_in_bytes"); err != nil {
		if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err != nil {
			return errors.New("no cgroups mounted under /sys/fs/cgroup")
		}
	}
	var miss []string
	for _, b := range kubeBinaries {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			miss = append(miss, b)
		}
	}
	if len(miss) > 0 {
		return fmt.Errorf("%s missing from %s (run scripts/k8s-binaries.sh)", strings.Join(miss, ", "), binDir)
	}
	for _, c := range hostCommands {
		if _, err := exec.LookPath(c); err != nil {
			miss = append(miss, c)
		}
	}
	for _, p := range cniPlugins {
		if _, err := os.Stat(filepath.Join(cniBinDir, p)); err != nil {
			miss = append(miss, filepath.Join(cniBinDir, p))
		}
	}
	if len(miss) > 0 {
		return fmt.Errorf("%s missing (run scripts/setup.sh: containerd runc containernetworking-plugins iptables conntrack)", strings.Join(miss, ", "))
	}
	return nil
}

// Up starts a node and waits until it is Ready (node Ready and untainted,
// default ServiceAccount created). On error everything started is torn
// down. The caller calls Stop (or Down(n.Dir) from another process).
func Up(ctx context.Context, opts Options) (n *Node, err error) {
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if opts.BinDir == "" {
		if opts.BinDir, err = k8stest.BinDir(); err != nil {
			return nil, err
		}
	}
	if err := Check(opts.BinDir); err != nil {
		return nil, err
	}
	lock, err := acquireLock(ctx, opts.LockWait)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			lock.Close()
		}
	}()
	// A node whose holder died without tearing it down: clean up first.
	if prev := readOwner(); prev != "" {
		logf("k8snode: tearing down the leftovers of a previous node in %s", prev)
		if _, serr := loadState(prev); serr != nil {
			logf("k8snode: %v; forgetting it", serr)
			_ = os.Remove(ownerPath)
		} else if derr := teardownDir(prev, logf); derr != nil {
			return nil, fmt.Errorf("a previous node (%s) left things behind that could not be removed: %w", prev, derr)
		}
	}
	dir := opts.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "modelship-k8snode-"); err != nil {
			return nil, err
		}
	} else {
		if dir, err = filepath.Abs(dir); err != nil {
			return nil, err
		}
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			// What a torn-down node leaves: its logs.
			if e.Name() != "logs" && e.Name() != "env" {
				return nil, fmt.Errorf("run folder %s holds %s (a node still up there? run down first)", dir, e.Name())
			}
		}
		for _, e := range ents {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return nil, err
			}
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	n = &Node{Dir: dir, Name: NodeName, IP: NodeIP, ContainerdSocket: containerdSocket(dir), lock: lock,
		Server: "https://" + net.JoinHostPort(NodeIP, strconv.Itoa(APIServerPort))}
	n.st = &state{Dir: dir, PIDs: map[string]int{}, KeepLogs: opts.KeepLogs}
	// The error returns below set n to nil: the clean-up keeps its own.
	node := n
	defer func() {
		if err != nil {
			tails := node.logTails()
			if derr := teardown(node.st, logf); derr != nil {
				err = fmt.Errorf("%w (and teardown: %v)", err, derr)
			}
			err = fmt.Errorf("%w%s", err, tails)
		}
	}()
	n.st.Sysctls = readSysctls()
	n.st.Netns = listNetns()
	for _, d := range []string{"/run/netns", "/run/containerd", "/var/lib/cni", "/var/run/netns"} {
		if _, err := os.Lstat(d); errors.Is(err, os.ErrNotExist) {
			n.st.Created = append(n.st.Created, d)
		}
	}
	if err := writeOwner(dir); err != nil {
		return nil, err
	}
	if err := n.saveState(); err != nil {
		return nil, err
	}
	start := time.Now()
	step := func(what string) { logf("k8snode: %s (%s)", what, time.Since(start).Round(time.Millisecond)) }
	for _, d := range []string{"pki", "logs", "cni/net.d", "cni/ipam", "containerd", "kubelet", "pod-logs", "images"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	if err := n.writeFiles(opts.BinDir); err != nil {
		return nil, err
	}
	step("certificates and configs written")
	if err := setupNetwork(); err != nil {
		return nil, err
	}
	step("bridge " + BridgeName + " " + NodeIP + " up, ip_forward=1")

	sp := &spawner{dir: dir, bin: opts.BinDir, detach: opts.Detach, lock: lock, st: n.st}
	ports, err := k8stest.FreePorts(2)
	if err != nil {
		return nil, err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	p := func(name string) string { return filepath.Join(dir, name) }
	if err := sp.spawn("etcd", "",
		"--name=k8snode", "--data-dir="+p("etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=k8snode="+peerURL, "--unsafe-no-fsync=true", "--log-level=warn",
	); err != nil {
		return nil, err
	}
	if err := sp.spawn("kube-apiserver", "",
		"--etcd-servers="+etcdURL,
		"--bind-address="+NodeIP, "--secure-port="+strconv.Itoa(APIServerPort), "--advertise-address="+NodeIP,
		"--tls-cert-file="+p("pki/apiserver.crt"), "--tls-private-key-file="+p("pki/apiserver.key"),
		"--client-ca-file="+p("pki/ca.crt"),
		"--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
		"--service-account-key-file="+p("pki/sa.pub"), "--service-account-signing-key-file="+p("pki/sa.key"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range="+ServiceCIDR,
		"--kubelet-client-certificate="+p("pki/apiserver-kubelet-client.crt"),
		"--kubelet-client-key="+p("pki/apiserver-kubelet-client.key"),
		"--kubelet-certificate-authority="+p("pki/ca.crt"),
		"--kubelet-preferred-address-types=InternalIP",
		"--allow-privileged=true", "--profiling=false", "--v=0",
	); err != nil {
		return nil, err
	}
	// containerd and the kubelet start while the API server comes up
	// (they retry until it answers).
	if err := sp.spawn("containerd", "", "--config="+p("containerd/config.toml")); err != nil {
		return nil, err
	}
	if err := n.loadClient(); err != nil {
		return nil, err
	}
	if err := n.waitContainerd(ctx, sp); err != nil {
		return nil, err
	}
	if err := n.importImage(ctx, p("images/pause.tar")); err != nil {
		return nil, fmt.Errorf("importing the pause image: %w", err)
	}
	step("containerd up, pause image imported")
	if err := sp.spawn("kubelet", "",
		"--config="+p("kubelet/config.yaml"), "--kubeconfig="+p("kubelet.kubeconfig"),
		"--root-dir="+p("kubelet"), "--cert-dir="+p("kubelet/pki"),
		"--node-ip="+NodeIP, "--hostname-override="+NodeName, "--v=1",
	); err != nil {
		return nil, err
	}
	if err := n.waitAPIServer(ctx); err != nil {
		return nil, err
	}
	step("kube-apiserver ready on " + n.Server)
	// kube-proxy after the API server answers: on a loaded machine it gave
	// up before the API server was up (a CI run saw it exit in 2 s).
	if err := sp.spawn("kube-proxy", "", "--config="+p("kube-proxy.yaml"), "--v=1"); err != nil {
		return nil, err
	}
	if err := sp.spawn("kube-controller-manager", "",
		"--kubeconfig="+p("admin.kubeconfig"), "--leader-elect=false", "--controllers=*,-nodeipam",
		"--service-account-private-key-file="+p("pki/sa.key"), "--root-ca-file="+p("pki/ca.crt"),
		// Lift the new node's not-ready taint promptly.
		"--node-monitor-period=1s",
		"--secure-port=0", "--profiling=false",
	); err != nil {
		return nil, err
	}
	if err := sp.spawn("kube-scheduler", "",
		"--kubeconfig="+p("admin.kubeconfig"), "--leader-elect=false", "--secure-port=0", "--profiling=false",
	); err != nil {
		return nil, err
	}
	if err := n.waitNode(ctx, sp); err != nil {
		return nil, err
	}
	step("node " + NodeName + " Ready")
	return n, nil
}

// writeFiles writes certificates, keys, kubeconfigs, component configs and
// the pause image tarball.
func (n *Node) writeFiles(bin string) error {
	ca, err := kubepki.NewCA("modelship-k8snode-ca", 30*24*time.Hour)
	if err != nil {
		return err
	}
	n.CAPEM = ca.CertPEM
	files := map[string][]byte{"pki/ca.crt": ca.CertPEM}
	issue := func(name, cn string, orgs []string, server bool, ips []net.IP, dns []string) error {
		crt, key, err := ca.Issue(cn, orgs, server, ips, dns)
		if err != nil {
			return err
		}
		files["pki/"+name+".crt"], files["pki/"+name+".key"] = crt, key
		return nil
	}
	if err := issue("apiserver", "kube-apiserver", nil, true,
		[]net.IP{ip(NodeIP), ip(KubernetesServiceIP), ip("127.0.0.1")},
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}); err != nil {
		return err
	}
	if err := issue("kubelet-serving", NodeName, nil, true, []net.IP{ip(NodeIP)}, []string{NodeName}); err != nil {
		return err
	}
	if err := issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"}, false, nil, nil); err != nil {
		return err
	}
	kubeconfigs := map[string][2]string{ // file: CN, O
		"admin":      {AdminUser, "system:masters"},
		"kubelet":    {"system:node:" + NodeName, "system:nodes"},
		"kube-proxy": {"system:kube-proxy", ""},
	}
	for name, id := range kubeconfigs {
		var orgs []string
		if id[1] != "" {
			orgs = []string{id[1]}
		}
		crt, key, err := ca.Issue(id[0], orgs, false, nil, nil)
		if err != nil {
			return err
		}
		kc, err := kubeconfig(n.Server, ca.CertPEM, crt, key)
		if err != nil {
			return err
		}
		files[name+".kubeconfig"] = kc
	}
	saKey, saPub, err := kubepki.ServiceAccountKey()
	if err != nil {
		return err
	}
	files["pki/sa.key"], files["pki/sa.pub"] = saKey, saPub
	files["containerd/config.toml"] = []byte(containerdConfig(n.Dir))
	files["cni/net.d/10-modelship.conflist"] = []byte(cniConfig(n.Dir))
	files["kubelet/config.yaml"] = []byte(kubeletConfig(n.Dir))
	files["kube-proxy.yaml"] = []byte(kubeProxyConfig(n.Dir))
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(n.Dir, name), data, 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
	}
	n.Kubeconfig = files["admin.kubeconfig"]
	n.KubeconfigPath = filepath.Join(n.Dir, "admin.kubeconfig")
	img, err := StaticImage(filepath.Join(bin, "pause"), "/pause", nil, nil)
	if err != nil {
		return err
	}
	return writeImageTarball(filepath.Join(n.Dir, "images/pause.tar"), PauseImage, img)
}

// loadClient builds the admin REST config and clientset.
func (n *Node) loadClient() error {
	cfg, err := clientcmd.RESTConfigFromKubeConfig(n.Kubeconfig)
	if err != nil {
		return fmt.Errorf("loading the admin kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	n.Config = cfg
	n.Client, err = kubernetes.NewForConfig(cfg)
	return err
}

// waitAPIServer waits for /readyz.
func (n *Node) waitAPIServer(ctx context.Context) error {
	return k8stest.WaitAPIServer(ctx, n.Config, n.exited)
}

// waitContainerd waits for containerd's socket to answer.
func (n *Node) waitContainerd(ctx context.Context, sp *spawner) error {
	var last error
	for {
		if err := n.exited(); err != nil {
			return err
		}
		if _, err := os.Stat(n.ContainerdSocket); err == nil {
			if _, last = n.ctr(ctx, "version"); last == nil {
				return nil
			}
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return fmt.Errorf("waiting for containerd: %w (last: %v)", err, last)
		}
	}
}

// waitNode waits until the node is Ready without the not-ready taint and
// the default ServiceAccount exists.
func (n *Node) waitNode(ctx context.Context, sp *spawner) error {
	var last string
	for {
		if err := n.exited(); err != nil {
			return err
		}
		node, err := n.Client.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		switch {
		case err != nil:
			last = err.Error()
		case !k8stest.NodeReady(node):
			last = "node not Ready"
		case tainted(node):
			last = "node still has the not-ready taint"
		default:
			_, err := n.Client.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
			if err == nil {
				return nil
			}
			last = "no default ServiceAccount yet: " + err.Error()
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("waiting for node %s: %w (last: %s)", NodeName, err, last)
		}
	}
}

func tainted(n *corev1.Node) bool {
	for _, t := range n.Spec.Taints {
		if t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable {
			return true
		}
	}
	return false
}

// exitStatus holds how the components this process started ended (pid ->
// the Wait error, e.g. "signal: killed"), for exited's message.
var exitStatus sync.Map

// exited returns an error when a component has exited.
func (n *Node) exited() error {
	for _, name := range components {
		pid, ok := n.st.PIDs[name]
		if !ok {
			continue
		}
		if !ours(pid, n.Dir) {
			how := ""
			if st, ok := exitStatus.Load(pid); ok {
				how = " (" + st.(string) + ")"
			}
			return fmt.Errorf("%s (pid %d) exited%s; see %s", name, pid, how, filepath.Join(n.Dir, "logs", name+".log"))
		}
	}
	return nil
}

// Stop tears the node down (see Down) and releases the host lock. Safe to
// call more than once.
func (n *Node) Stop() error { return n.stop(nil) }

// stop is Stop; check (tests) runs after teardown while this process still
// holds the host lock, so that another node cannot start meanwhile.
func (n *Node) stop(check func()) error {
	if n.lock == nil {
		return nil
	}
	err := teardown(n.st, nil)
	if check != nil {
		check()
	}
	n.lock.Close()
	n.lock = nil
	return err
}

// Down tears down the node whose run folder is dir (from another process
// than the one that started it): every process, mount, the bridge, iptables
// chains, sysctls, cgroups; then it checks nothing is left (Leftovers).
func Down(dir string, logf func(string, ...any)) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	return teardownDir(dir, logf)
}

func teardownDir(dir string, logf func(string, ...any)) error {
	st, err := loadState(dir)
	if err != nil {
		return err
	}
	return teardown(st, logf)
}

func (n *Node) saveState() error { return saveState(n.st) }

func saveState(st *state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(st.Dir, ".state.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(st.Dir, "state.json"))
}

func loadState(dir string) (*state, error) {
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return nil, fmt.Errorf("no node state in %s: %w", dir, err)
	}
	st := &state{}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("%s/state.json: %w", dir, err)
	}
	st.Dir = dir
	return st, nil
}

// logTails returns the last lines of every component log, for errors.
func (n *Node) logTails() string {
	var b strings.Builder
	for _, name := range components {
		data, err := os.ReadFile(filepath.Join(n.Dir, "logs", name+".log"))
		if err != nil {
			continue
		}
		fmt.Fprintf(&b, "\n--- %s.log (tail) ---\n%s", name, tail(strings.TrimSpace(string(data)), 1500))
	}
	return b.String()
}

// spawner starts components.
type spawner struct {
	dir, bin string
	detach   bool
	lock     *os.File
	st       *state
}

// spawn starts a component (bin/name, or path when given) with its output
// in logs/<name>.log. Each component holds the host lock file open (fd 3),
// so the lock stays held while any of them runs, also after the script's
// up has exited.
func (sp *spawner) spawn(name, path string, args ...string) error {
	if path == "" {
		path = filepath.Join(sp.bin, name)
		if name == "containerd" {
			var err error
			if path, err = exec.LookPath("containerd"); err != nil {
				return err
			}
		}
	}
	logf, err := os.OpenFile(filepath.Join(sp.dir, "logs", name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(path, args...)
	cmd.Dir = sp.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{sp.lock}
	cmd.Env = append(os.Environ(), "HOME="+sp.dir)
	if sp.detach {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	sp.st.PIDs[name] = cmd.Process.Pid
	// Reap it when it exits (in this process); alive() then sees it gone,
	// and exited() reports how it ended.
	go func() { exitStatus.Store(cmd.Process.Pid, fmt.Sprint(cmd.Wait())) }()
	return saveState(sp.st)
}

// ctr runs Debian's ctr against the node's containerd (namespace k8s.io).
func (n *Node) ctr(ctx context.Context, args ...string) ([]byte, error) {
	return ctrAt(ctx, n.ContainerdSocket, args...)
}

func ctrAt(ctx context.Context, socket string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "ctr", append([]string{"--address", socket, "--namespace", "k8s.io"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, tail(strings.TrimSpace(string(out)), 500))
	}
	return out, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
