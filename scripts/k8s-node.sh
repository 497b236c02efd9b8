#!/usr/bin/env bash
# k8s-node.sh brings a real single-node Kubernetes cluster up or down on this
# host (root): etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kubelet, kube-proxy and containerd (own config, state, root and socket),
# real pods on a bridge (msk8s0, node IP 10.244.0.1). Every file lives in
# RUN_DIR (default ${TMPDIR:-/tmp}/modelship-k8s-node).
#
#   scripts/k8s-node.sh up [RUN_DIR]     prints KUBECONFIG=..., NODE_IP=..., ...
#                                        (also written to RUN_DIR/env)
#   scripts/k8s-node.sh down [RUN_DIR]   stops everything; fails if a process,
#                                        mount, the bridge, a KUBE-*/CNI-*
#                                        iptables chain or a changed sysctl is
#                                        left (logs stay in RUN_DIR/logs)
#
# The implementation is Go (internal/k8snode, the same code tests use through
# k8snode.Start); this script builds the binaries (scripts/k8s-binaries.sh,
# cached by version) and runs ./internal/k8snode/cmd/k8snode.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cmd="${1:-}"
run_dir="${2:-${TMPDIR:-/tmp}/modelship-k8s-node}"
case "$cmd" in
up | down) ;;
*)
	echo "usage: $0 up|down [RUN_DIR]" >&2
	exit 2
	;;
esac
if [[ "$(id -u)" != 0 ]]; then
	echo "k8s-node: needs root (bridge, mounts, iptables, cgroups)" >&2
	exit 1
fi

# The driver binary lives next to the run folder so that down works without
# rebuilding (and with the same code that brought the node up).
tool="$run_dir.k8snode"
if [[ "$cmd" == up ]]; then
	bash "$root/scripts/k8s-binaries.sh" >/dev/null
	(cd "$root" && go build -o "$tool" ./internal/k8snode/cmd/k8snode)
	mkdir -p "$run_dir"
	"$tool" up "$run_dir" | tee "$run_dir.env.tmp"
	mv "$run_dir.env.tmp" "$run_dir/env"
else
	if [[ ! -x "$tool" ]]; then
		(cd "$root" && go build -o "$tool" ./internal/k8snode/cmd/k8snode)
	fi
	"$tool" down "$run_dir"
	rm -f "$tool"
fi
