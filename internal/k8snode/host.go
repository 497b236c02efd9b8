package k8snode

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/modelship/modelship/internal/k8stest"
)

// acquireLock takes the host lock (one node per host), waiting up to wait.
func acquireLock(ctx context.Context, wait time.Duration) (*os.File, error) {
	f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", lockPath, err)
	}
	deadline := time.Now().Add(wait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", lockPath, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			owner := readOwner()
			return nil, fmt.Errorf("another single-node cluster is up on this host (run folder %q; lock %s): stop it first (scripts/k8s-node.sh down %s)", owner, lockPath, owner)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			f.Close()
			return nil, fmt.Errorf("waiting for %s: %w", lockPath, err)
		}
	}
}

// readOwner returns the run folder of the node that is (or was, when its
// holder died) up on this host, or "".
func readOwner() string {
	b, err := os.ReadFile(ownerPath)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func writeOwner(dir string) error { return os.WriteFile(ownerPath, []byte(dir+"\n"), 0o644) }

// sysctlsToRestore: every sysctl the node may change. ip_forward (the node
// sets it; it also flips each interface's forwarding), the kubelet's kernel
// tunables (it "fixes" them unless protectKernelDefaults), kube-proxy's
// route_localnet and conntrack settings (configured not to touch them; checked
// anyway), br_netfilter's.
var sysctlsToRestore = []string{
	"net/ipv4/ip_forward",
	"net/ipv4/conf/all/forwarding", "net/ipv4/conf/default/forwarding",
	"net/ipv4/conf/all/route_localnet",
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
	"net/netfilter/nf_conntrack_max",
	"net/netfilter/nf_conntrack_tcp_timeout_established", "net/netfilter/nf_conntrack_tcp_timeout_close_wait",
	"net/netfilter/nf_conntrack_udp_timeout", "net/netfilter/nf_conntrack_udp_timeout_stream",
	"net/bridge/bridge-nf-call-iptables", "net/bridge/bridge-nf-call-ip6tables",
}

// readSysctls reads sysctlsToRestore plus every existing interface's IPv4
// forwarding.
func readSysctls() map[string]string {
	names := append([]string(nil), sysctlsToRestore...)
	ifs, _ := filepath.Glob("/proc/sys/net/ipv4/conf/*/forwarding")
	for _, p := range ifs {
		name := strings.TrimPrefix(p, "/proc/sys/")
		if strings.Contains(name, "/"+BridgeName+"/") || strings.Contains(name, "/veth") {
			continue
		}
		names = append(names, name)
	}
	out := map[string]string{}
	for _, n := range names {
		if b, err := os.ReadFile("/proc/sys/" + n); err == nil {
			out[n] = strings.TrimSpace(string(b))
		}
	}
	return out
}

// setupNetwork creates the bridge with the node IP and enables IPv4
// forwarding. The bridge must exist before containerd and the kubelet start
// (the kubelet checks the node IP is local).
func setupNetwork() error {
	if _, err := os.Stat("/sys/class/net/" + BridgeName); err == nil {
		if err := run("ip", "link", "del", BridgeName); err != nil {
			return err
		}
	}
	for _, args := range [][]string{
		{"link", "add", BridgeName, "type", "bridge"},
		{"addr", "add", NodeIP + "/24", "dev", BridgeName},
		{"link", "set", BridgeName, "up"},
	} {
		if err := run("ip", args...); err != nil {
			return err
		}
	}
	return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644)
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// listNetns lists the named network namespaces (/run/netns).
func listNetns() []string {
	ents, _ := os.ReadDir("/run/netns")
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// ours reports whether pid is alive (not a zombie) and one of the node's
// processes: its command line names the run folder.
func ours(pid int, dir string) bool {
	if pid <= 0 {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return err == nil && bytes.Contains(cmdline, []byte(dir+"/"))
}

// strays lists the live processes that belong to the node: its components,
// containerd shims (their command line names the socket in dir), and
// processes in the kubelet's pod cgroups (containers).
func strays(dir string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if ours(pid, dir) {
			out = append(out, pid)
			continue
		}
		cg, err := os.ReadFile("/proc/" + e.Name() + "/cgroup")
		if err == nil && bytes.Contains(cg, []byte(":/kubepods")) {
			if st, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil {
				if i := bytes.LastIndexByte(st, ')'); i > 0 && i+2 < len(st) && st[i+2] == 'Z' {
					continue
				}
			}
			out = append(out, pid)
		}
	}
	return out
}

// stopPID sends SIGTERM, waits up to grace, then SIGKILL.
func stopPID(pid int, dir string, grace time.Duration) {
	if !ours(pid, dir) {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !ours(pid, dir) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 100 && ours(pid, dir); i++ {
		time.Sleep(20 * time.Millisecond)
	}
}

// teardown stops everything of the node in st and restores the host; it
// returns an error naming whatever it could not remove.
func teardown(st *state, logf func(string, ...any)) error {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	start := time.Now()
	step := func(what string) { logf("k8snode: down: %s (%s)", what, time.Since(start).Round(time.Millisecond)) }
	var errs []error
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := st.Dir
	pid := func(name string) int { return st.PIDs[name] }

	// 1. Gracefully: no controllers recreating pods; every pod deleted, so
	// the kubelet stops its sandboxes (CNI DEL, netns removed) and unmounts
	// its volumes.
	if ours(pid("kube-apiserver"), dir) && ours(pid("kubelet"), dir) && ours(pid("containerd"), dir) {
		stopPID(pid("kube-controller-manager"), dir, 5*time.Second)
		stopPID(pid("kube-scheduler"), dir, 5*time.Second)
		if err := deleteAllPods(ctx, dir); err != nil {
			logf("k8snode: down: deleting pods: %v (forcing)", err)
		}
		step("pods deleted")
	}
	// 2. The node's agents, then containers containerd still runs.
	stopPID(pid("kube-proxy"), dir, 5*time.Second)
	stopPID(pid("kubelet"), dir, 5*time.Second)
	sock := containerdSocket(dir)
	if ours(pid("containerd"), dir) {
		killContainers(ctx, sock)
	}
	// 3. The rest of the components; then anything left (shims, container
	// processes, a component of a crashed run).
	for _, name := range []string{"kube-controller-manager", "kube-scheduler", "containerd", "kube-apiserver", "etcd"} {
		stopPID(pid(name), dir, 5*time.Second)
	}
	for range 3 {
		left := strays(dir)
		if len(left) == 0 {
			break
		}
		for _, p := range left {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		time.Sleep(200 * time.Millisecond)
	}
	step("processes stopped")
	// 4. Mounts: under the run folder (rootfs overlays, shm, kubelet
	// volumes) and the pods' network namespaces.
	if err := unmountAll(dir, st.Netns); err != nil {
		errs = append(errs, err)
	}
	// 5. iptables: kube-proxy's own cleanup, then any KUBE-*/CNI-* chain
	// left (the kubelet's canary chains among them).
	if bin, err := k8stest.BinDir(); err == nil {
		if out, err := exec.CommandContext(ctx, filepath.Join(bin, "kube-proxy"), "--cleanup", "--v=0").CombinedOutput(); err != nil {
			logf("k8snode: down: kube-proxy --cleanup: %v: %s", err, tail(string(out), 500))
		}
	}
	if err := removeChains(); err != nil {
		errs = append(errs, err)
	}
	step("mounts and iptables chains removed")
	// 6. The bridge (veths went with their namespaces), sysctls, cgroups,
	// host folders the node created.
	if _, err := os.Stat("/sys/class/net/" + BridgeName); err == nil {
		if err := run("ip", "link", "del", BridgeName); err != nil {
			errs = append(errs, err)
		}
	}
	restoreSysctls(st.Sysctls)
	removeCgroups()
	for _, d := range st.Created {
		_ = os.RemoveAll(d)
	}
	// 7. The run folder.
	if st.KeepLogs {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if e.Name() != "logs" {
				if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
					errs = append(errs, err)
				}
			}
		}
	} else if os.Getenv("MODELSHIP_K8SNODE_KEEP") == "" {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
		}
	}
	if readOwner() == dir {
		_ = os.Remove(ownerPath)
	}
	step("bridge, sysctls, cgroups, run folder removed")
	if left := leftovers(st); len(left) > 0 {
		errs = append(errs, fmt.Errorf("left behind: %s", strings.Join(left, "; ")))
	}
	return errors.Join(errs...)
}

// deleteAllPods deletes every pod (grace 1 s) and waits until they are gone:
// the kubelet has then stopped their sandboxes and unmounted their volumes.
func deleteAllPods(ctx context.Context, dir string) error {
	kc, err := os.ReadFile(filepath.Join(dir, "admin.kubeconfig"))
	if err != nil {
		return err
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kc)
	if err != nil {
		return err
	}
	cfg.Timeout = 5 * time.Second
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	nss, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	grace := int64(1)
	for _, ns := range nss.Items {
		if err := cs.CoreV1().Pods(ns.Name).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &grace}, metav1.ListOptions{}); err != nil {
			return err
		}
	}
	for {
		pods, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
		if err == nil && len(pods.Items) == 0 {
			return nil
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			n := -1
			if pods != nil {
				n = len(pods.Items)
			}
			return fmt.Errorf("%d pods still there: %w", n, err)
		}
	}
}

// killContainers kills and deletes every task containerd still runs (a
// crashed kubelet's pods), so shims exit and rootfs mounts go.
func killContainers(ctx context.Context, sock string) {
	out, err := ctrAt(ctx, sock, "tasks", "ls", "-q")
	if err != nil {
		return
	}
	for _, id := range strings.Fields(string(out)) {
		_, _ = ctrAt(ctx, sock, "tasks", "kill", "--all", "--signal", "SIGKILL", id)
	}
	for _, id := range strings.Fields(string(out)) {
		for range 20 {
			if _, err := ctrAt(ctx, sock, "tasks", "delete", "--force", id); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// nodeMounts lists the mount points of the node, deepest first: under dir,
// and new entries of /run/netns (not in before).
func nodeMounts(dir string, before []string) []string {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return nil
	}
	defer f.Close()
	old := map[string]bool{}
	for _, n := range before {
		old[n] = true
	}
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		mp := unescapeMount(fields[1])
		switch {
		case mp == dir || strings.HasPrefix(mp, dir+"/"):
			out = append(out, mp)
		case strings.HasPrefix(mp, "/run/netns/") && !old[filepath.Base(mp)],
			strings.HasPrefix(mp, "/var/run/netns/") && !old[filepath.Base(mp)]:
			out = append(out, mp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// unescapeMount undoes /proc/mounts' octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func unmountAll(dir string, netnsBefore []string) error {
	for range 3 {
		mps := nodeMounts(dir, netnsBefore)
		if len(mps) == 0 {
			break
		}
		for _, mp := range mps {
			_ = syscall.Unmount(mp, syscall.MNT_DETACH)
		}
	}
	old := map[string]bool{}
	for _, n := range netnsBefore {
		old[n] = true
	}
	for _, n := range listNetns() {
		if !old[n] {
			_ = os.Remove(filepath.Join("/run/netns", n))
		}
	}
	if left := nodeMounts(dir, netnsBefore); len(left) > 0 {
		return fmt.Errorf("could not unmount %s", strings.Join(left, ", "))
	}
	return nil
}

// iptablesTables are the tables kube-proxy, the kubelet and CNI write to.
var iptablesTables = []string{"filter", "nat", "mangle", "raw"}

// nodeChain reports whether an iptables chain is the node's: KUBE-* (kube-proxy,
// kubelet) or CNI-* (CNI plugins).
func nodeChain(name string) bool {
	return strings.HasPrefix(name, "KUBE-") || strings.HasPrefix(name, "CNI-")
}

// chains lists the node's chains as "iptables -t table CHAIN".
func chains() []string {
	var out []string
	for _, cmd := range []string{"iptables", "ip6tables"} {
		for _, t := range iptablesTables {
			b, err := exec.Command(cmd, "-w", "5", "-t", t, "-S").Output()
			if err != nil {
				continue
			}
			for _, l := range strings.Split(string(b), "\n") {
				if f := strings.Fields(l); len(f) >= 2 && f[0] == "-N" && nodeChain(f[1]) {
					out = append(out, cmd+" -t "+t+" "+f[1])
				}
			}
		}
	}
	return out
}

// removeChains deletes the rules jumping to the node's chains, then the
// chains.
func removeChains() error {
	for _, cmd := range []string{"iptables", "ip6tables"} {
		for _, t := range iptablesTables {
			b, err := exec.Command(cmd, "-w", "5", "-t", t, "-S").Output()
			if err != nil {
				continue
			}
			var mine []string
			for _, l := range strings.Split(string(b), "\n") {
				f := strings.Fields(l)
				if len(f) >= 2 && f[0] == "-N" && nodeChain(f[1]) {
					mine = append(mine, f[1])
					continue
				}
				// A rule in a chain that is not ours jumping to one of ours.
				if len(f) >= 2 && f[0] == "-A" && !nodeChain(f[1]) {
					for i := 2; i+1 < len(f); i++ {
						if (f[i] == "-j" || f[i] == "-g") && nodeChain(f[i+1]) {
							_ = exec.Command(cmd, append([]string{"-w", "5", "-t", t, "-D"}, f[1:]...)...).Run()
							break
						}
					}
				}
			}
			for _, c := range mine {
				_ = exec.Command(cmd, "-w", "5", "-t", t, "-F", c).Run()
			}
			for _, c := range mine {
				_ = exec.Command(cmd, "-w", "5", "-t", t, "-X", c).Run()
			}
		}
	}
	if left := chains(); len(left) > 0 {
		return fmt.Errorf("iptables chains left: %s", strings.Join(left, ", "))
	}
	return nil
}

func restoreSysctls(vals map[string]string) {
	// ip_forward first: writing it resets every interface's forwarding.
	if v, ok := vals["net/ipv4/ip_forward"]; ok {
		_ = os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte(v), 0o644)
	}
	for name, v := range vals {
		cur, err := os.ReadFile("/proc/sys/" + name)
		if err == nil && strings.TrimSpace(string(cur)) != v {
			_ = os.WriteFile("/proc/sys/"+name, []byte(v), 0o644)
		}
	}
}

// changedSysctls lists sysctls whose value differs from vals.
func changedSysctls(vals map[string]string) []string {
	var out []string
	for name, v := range vals {
		cur, err := os.ReadFile("/proc/sys/" + name)
		if err == nil && strings.TrimSpace(string(cur)) != v {
			out = append(out, fmt.Sprintf("sysctl %s=%s (was %s)", name, strings.TrimSpace(string(cur)), v))
		}
	}
	sort.Strings(out)
	return out
}

// kubepodsCgroups lists the kubelet's pod cgroup folders (cgroupfs driver)
// in every hierarchy.
func kubepodsCgroups() []string {
	var out []string
	if m, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods"); len(m) > 0 {
		out = append(out, m...)
	}
	if _, err := os.Stat("/sys/fs/cgroup/kubepods"); err == nil {
		out = append(out, "/sys/fs/cgroup/kubepods")
	}
	return out
}

// removeCgroups removes the kubelet's pod cgroups (children first); they
// must be empty of processes by now.
func removeCgroups() {
	var rm func(string)
	rm = func(p string) {
		ents, _ := os.ReadDir(p)
		for _, e := range ents {
			if e.IsDir() {
				rm(filepath.Join(p, e.Name()))
			}
		}
		for i := 0; i < 20; i++ {
			if err := syscall.Rmdir(p); err == nil || errors.Is(err, syscall.ENOENT) {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for _, cg := range kubepodsCgroups() {
		rm(cg)
	}
}

// Leftovers lists what the node left on the host: processes, mounts, the
// bridge, iptables chains, changed sysctls, cgroups, host folders, the run
// folder. Empty after a clean teardown (Stop checks it too).
func (n *Node) Leftovers() []string { return leftovers(n.st) }

func leftovers(st *state) []string {
	var out []string
	for _, p := range strays(st.Dir) {
		cmd, _ := os.ReadFile("/proc/" + strconv.Itoa(p) + "/cmdline")
		out = append(out, fmt.Sprintf("process %d (%s)", p, tail(strings.ReplaceAll(string(cmd), "\x00", " "), 120)))
	}
	for _, mp := range nodeMounts(st.Dir, st.Netns) {
		out = append(out, "mount "+mp)
	}
	if _, err := os.Stat("/sys/class/net/" + BridgeName); err == nil {
		out = append(out, "bridge "+BridgeName)
	}
	for _, c := range chains() {
		out = append(out, "chain "+c)
	}
	out = append(out, changedSysctls(st.Sysctls)...)
	for _, cg := range kubepodsCgroups() {
		out = append(out, "cgroup "+cg)
	}
	for _, d := range st.Created {
		if _, err := os.Lstat(d); err == nil {
			out = append(out, "folder "+d)
		}
	}
	if st.KeepLogs {
		ents, _ := os.ReadDir(st.Dir)
		for _, e := range ents {
			if e.Name() != "logs" {
				out = append(out, "file "+filepath.Join(st.Dir, e.Name()))
			}
		}
	} else if os.Getenv("MODELSHIP_K8SNODE_KEEP") == "" {
		if _, err := os.Lstat(st.Dir); err == nil {
			out = append(out, "run folder "+st.Dir)
		}
	}
	return out
}
