//go:build tools

// Package tools pins etcd (go.etcd.io/etcd/server/v3 is itself the etcd
// main package) for scripts/k8s-binaries.sh. Separate from the Kubernetes
// wrapper so each keeps the dependency versions its own release was built
// and tested with.
package tools

import _ "go.etcd.io/etcd/server/v3"
