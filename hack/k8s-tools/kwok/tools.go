//go:build tools

// Package tools pins KWOK (fake nodes whose pods reach Running without
// containers) for scripts/k8s-binaries.sh. The stage configs the test harness
// loads come from the same module version.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
