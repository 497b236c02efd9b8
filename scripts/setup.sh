#!/usr/bin/env bash
# Installs what modelship's tests and quick start need on a Debian machine:
# Python packages for score.py runtimes and test models, Debian's ONNX test
# data, containerd, runc, CNI plugins, iptables and conntrack for the real
# single-node Kubernetes cluster, and the ONNX Runtime shared library
# (verified, cached outside the repo).
# Idempotent: a second run only checks.
set -euo pipefail

ORT_VERSION=1.24.1
ORT_SHA256=53ef1ac028dd1b05554b8da28d9159eb3876f99868193d2aaa6e67f0243c23d4
CACHE_DIR="${MODELSHIP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/modelship}"
ORT_DIR="$CACHE_DIR/onnxruntime/$ORT_VERSION"

APT_PACKAGES=(python3 python3-numpy python3-sklearn python3-joblib python3-pandas python3-onnx libonnx-testdata)
# The real single-node Kubernetes cluster (internal/k8snode, scripts/k8s-node.sh):
# container runtime, CNI plugins, and what the kubelet and kube-proxy call.
APT_PACKAGES+=(containerd runc containernetworking-plugins iptables conntrack iproute2)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -f "$ORT_DIR/libonnxruntime.so" ] || ! echo "$ORT_SHA256  $ORT_DIR/libonnxruntime.so" | sha256sum -c --status; then
  echo "setup: fetching ONNX Runtime $ORT_VERSION (npm package onnxruntime-node, library only)"
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "onnxruntime-node@$ORT_VERSION" >/dev/null)
  tar -xzf "$tmp"/onnxruntime-node-*.tgz -C "$tmp" package/bin/napi-v6/linux/x64/libonnxruntime.so.1
  lib="$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1"
  echo "$ORT_SHA256  $lib" | sha256sum -c --status || { echo "setup: ONNX Runtime checksum mismatch" >&2; exit 1; }
  mkdir -p "$ORT_DIR"
  cp "$lib" "$ORT_DIR/libonnxruntime.so.tmp" && mv "$ORT_DIR/libonnxruntime.so.tmp" "$ORT_DIR/libonnxruntime.so"
fi
# A system-wide copy for servers and replicas running with another HOME.
SYS_DIR="/usr/local/lib/modelship/onnxruntime/$ORT_VERSION"
if [ "$(id -u)" = 0 ] && ! cmp -s "$ORT_DIR/libonnxruntime.so" "$SYS_DIR/libonnxruntime.so" 2>/dev/null; then
  mkdir -p "$SYS_DIR" && cp "$ORT_DIR/libonnxruntime.so" "$SYS_DIR/libonnxruntime.so.tmp" && mv "$SYS_DIR/libonnxruntime.so.tmp" "$SYS_DIR/libonnxruntime.so"
fi
echo "setup: ok (ONNX Runtime at $ORT_DIR/libonnxruntime.so)"
