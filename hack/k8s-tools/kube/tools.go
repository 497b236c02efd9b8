//go:build tools

// Package tools pins the Kubernetes commands (control plane, kubelet and
// kube-proxy) built by
// scripts/k8s-binaries.sh. It is a nested module so that the main modelship
// module never inherits k8s.io/kubernetes and its dependency graph.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
