//go:build tools

// Package tools pins the Kubernetes control-plane commands built by
// scripts/k8s-binaries.sh. It is a nested module so that the main modelship
// module never inherits k8s.io/kubernetes and its dependency graph.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
