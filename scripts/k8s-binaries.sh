#!/usr/bin/env bash
# k8s-binaries.sh builds the Kubernetes control plane the test suite runs
# (internal/k8stest): etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler and KWOK, plus the kubelet, kube-proxy and pause program of
# the real single-node cluster (internal/k8snode, scripts/k8s-node.sh), from
# the Go module proxy through the nested wrapper modules in hack/k8s-tools/
# (k8s.io/kubernetes and etcd cannot be `go install`ed directly: their go.mod
# files have replace directives).
#
# The binaries are cached by version outside the repository:
#   ${MODELSHIP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/modelship}/k8s-v1.37.2/
# A binary already present is not rebuilt (delete it, or the folder, to force
# a rebuild). Prints the folder on its last line of stdout.
#
# A cold build takes about 10 minutes on 2 cores and ~3 GB of Go build cache;
# with a warm build cache it takes seconds.
set -euo pipefail

KUBE_VERSION=v1.37.2
ETCD_VERSION=v3.7.3
KWOK_VERSION=v0.8.0

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/hack/k8s-tools"
cache="${MODELSHIP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/modelship}"
out="$cache/k8s-$KUBE_VERSION"
mkdir -p "$out"

log() { echo "k8s-binaries: $*" >&2; }

# One build at a time (test binaries of several packages may ask at once).
exec 9>"$out/.lock"
if ! flock -n 9; then
	log "another build holds $out/.lock; waiting"
	flock 9
fi

# build NAME MODULE_DIR PACKAGE LDFLAGS: builds into a temporary file and
# renames it, so an interrupted build never leaves a half-written binary.
build() {
	local name="$1" dir="$2" pkg="$3" ldflags="$4"
	if [[ -x "$out/$name" ]]; then
		log "$name: cached ($out/$name)"
		return
	fi
	log "$name: building $pkg ..."
	local start=$SECONDS
	(cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ldflags" -o "$out/.$name.tmp" "$pkg")
	mv "$out/.$name.tmp" "$out/$name"
	log "$name: built in $((SECONDS - start))s"
}

minor="${KUBE_VERSION#v1.}"
minor="${minor%%.*}"
kv="k8s.io/component-base/version"
kube_ldflags="-X $kv.gitVersion=$KUBE_VERSION -X $kv.gitMajor=1 -X $kv.gitMinor=$minor -X $kv.gitTreeState=clean"
# client-go carries its own copy of the version variables.
kube_ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"

build etcd "$tools/etcd" go.etcd.io/etcd/server/v3 ""
build kube-apiserver "$tools/kube" k8s.io/kubernetes/cmd/kube-apiserver "$kube_ldflags"
build kube-controller-manager "$tools/kube" k8s.io/kubernetes/cmd/kube-controller-manager "$kube_ldflags"
build kube-scheduler "$tools/kube" k8s.io/kubernetes/cmd/kube-scheduler "$kube_ldflags"
build kwok "$tools/kwok" sigs.k8s.io/kwok/cmd/kwok ""
build kubelet "$tools/kube" k8s.io/kubernetes/cmd/kubelet "$kube_ldflags"
build kube-proxy "$tools/kube" k8s.io/kubernetes/cmd/kube-proxy "$kube_ldflags"
# The single-node cluster's sandbox image program (static, no dependencies).
build pause "$tools/pause" . ""

# The KWOK stage configs (node and pod lifecycles) come from the same module
# version; the harness concatenates them into one --config file.
stages="$(cd "$tools/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage"
if [[ ! -s "$out/kwok-stages.yaml" ]]; then
	log "kwok-stages.yaml: from $stages"
	: >"$out/.kwok-stages.tmp"
	for f in "$stages"/node/fast/*.yaml "$stages"/node/heartbeat-with-lease/*.yaml "$stages"/pod/fast/*.yaml; do
		[[ "$(basename "$f")" == kustomization.yaml ]] && continue
		{ echo "---"; cat "$f"; } >>"$out/.kwok-stages.tmp"
	done
	mv "$out/.kwok-stages.tmp" "$out/kwok-stages.yaml"
fi

printf '%s\n' "$KUBE_VERSION $ETCD_VERSION $KWOK_VERSION" >"$out/VERSIONS"
log "ready: $out"
echo "$out"
