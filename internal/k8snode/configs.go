package k8snode

import (
	"fmt"
	"net"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// containerdConfig is containerd's own configuration: root, state and socket
// under the run folder, the CRI plugin with the local pause image as sandbox
// image, cgroupfs, and CNI from Debian's containernetworking-plugins.
//
// restrict_oom_score_adj: this host withholds CAP_SYS_RESOURCE even from
// root, so lowering an OOM score fails ("can't get final child's PID from
// pipe: EOF" for every sandbox) unless containerd clamps it.
func containerdConfig(dir string) string {
	return fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = %[3]q

[ttrpc]
  address = %[4]q

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[5]q
  restrict_oom_score_adj = true
  enable_selinux = false
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  max_container_log_line_size = 16384
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[6]q
    conf_dir = %[7]q
    max_conf_num = 1
`, filepath.Join(dir, "containerd", "root"), filepath.Join(dir, "containerd", "state"),
		containerdSocket(dir), containerdSocket(dir)+".ttrpc", PauseImage, cniBinDir, filepath.Join(dir, "cni", "net.d"))
}

func containerdSocket(dir string) string { return filepath.Join(dir, "containerd", "containerd.sock") }

// cniConfig is the pod network: the bridge (created before containerd
// starts, the node IP its address) with host-local addresses from the pod
// range, state kept in the run folder. No masquerading: pods talk to this
// node only.
func cniConfig(dir string) string {
	return fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "modelship-k8snode",
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": %q, "gateway": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": %q
      }
    }
  ]
}
`, BridgeName, PodCIDR, NodeIP, filepath.Join(dir, "cni", "ipam"))
}

// kubeletConfig is the KubeletConfiguration. Host-specific settings: cgroups
// v1 (failCgroupV1: false, cgroupfs), no CAP_SYS_RESOURCE (oomScoreAdj: 0),
// no image pulls (image GC thresholds 100/99 so imported images stay), no
// eviction on a busy disk.
func kubeletConfig(dir string) string {
	p := func(name string) string { return filepath.Join(dir, name) }
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %[1]s
port: %[2]d
readOnlyPort: 0
healthzPort: 0
tlsCertFile: %[3]q
tlsPrivateKeyFile: %[4]q
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: false
  x509:
    clientCAFile: %[5]q
authorization:
  mode: AlwaysAllow
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://%[6]s
podLogsDir: %[7]q
oomScoreAdj: 0
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
imageMinimumGCAge: 876000h
serializeImagePulls: false
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "1%%"
  nodefs.inodesFree: "1%%"
  imagefs.available: "1%%"
  imagefs.inodesFree: "1%%"
mergeDefaultEvictionSettings: false
resolvConf: "/etc/resolv.conf"
syncFrequency: 10s
nodeStatusUpdateFrequency: 4s
fileCheckFrequency: 20s
maxPods: 110
staticPodPath: ""
shutdownGracePeriod: 0s
`, NodeIP, KubeletPort, p("pki/kubelet-serving.crt"), p("pki/kubelet-serving.key"), p("pki/ca.crt"),
		containerdSocket(dir), p("pod-logs"))
}

// kubeProxyConfig is the KubeProxyConfiguration: iptables mode, NodePorts on
// the node IP only (never on loopback: that would set route_localnet), no
// conntrack sysctl changes, masquerade all service traffic (so pod → service
// → pod on the same bridge works without relying on br_netfilter).
func kubeProxyConfig(dir string) string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: %[1]q
mode: iptables
hostnameOverride: %[2]s
bindAddress: %[3]s
healthzBindAddress: %[3]s:10256
metricsBindAddress: %[3]s:10249
clusterCIDR: %[4]s
nodePortAddresses: ["%[3]s/32"]
oomScoreAdj: 0
iptables:
  masqueradeAll: true
  localhostNodePorts: false
  syncPeriod: 30s
  minSyncPeriod: 0s
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
  udpTimeout: 0s
  udpStreamTimeout: 0s
`, filepath.Join(dir, "kube-proxy.kubeconfig"), NodeName, NodeIP, PodCIDR)
}

// kubeconfig returns a kubeconfig for server authenticating with a client
// certificate; context "k8snode".
func kubeconfig(server string, caPEM, crt, key []byte) ([]byte, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["k8snode"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos["k8snode"] = &clientcmdapi.AuthInfo{ClientCertificateData: crt, ClientKeyData: key}
	cfg.Contexts["k8snode"] = &clientcmdapi.Context{Cluster: "k8snode", AuthInfo: "k8snode"}
	cfg.CurrentContext = "k8snode"
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, fmt.Errorf("encoding kubeconfig: %w", err)
	}
	return b, nil
}

// ip parses a constant address.
func ip(s string) net.IP { return net.ParseIP(s) }
