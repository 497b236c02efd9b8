package k8snode

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/k8stest"
)

// SkipEnv skips the single-node cluster tests only (k8stest.SkipEnv,
// MODELSHIP_SKIP_K8S=1, skips them too).
const SkipEnv = "MODELSHIP_SKIP_K8S_NODE"

// Start starts a node for t and tears it down when t ends (failing t if
// anything is left behind). It skips t, with one line saying why, when the
// host cannot run one: MODELSHIP_SKIP_K8S=1 or MODELSHIP_SKIP_K8S_NODE=1, not
// root, no cgroups, binaries (scripts/k8s-binaries.sh) or packages
// (scripts/setup.sh) missing. It waits up to 5 minutes for another node on
// this host (another test binary) to go away.
func Start(t testing.TB) *Node {
	t.Helper()
	if os.Getenv(k8stest.SkipEnv) == "1" || os.Getenv(SkipEnv) == "1" {
		t.Skip("k8snode: MODELSHIP_SKIP_K8S=1 or MODELSHIP_SKIP_K8S_NODE=1: skipping tests on a real single-node cluster")
	}
	bin, err := k8stest.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(bin); err != nil {
		t.Skipf("k8snode: cannot run a single-node cluster here: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 7*time.Minute)
	defer cancel()
	start := time.Now()
	n, err := Up(ctx, Options{BinDir: bin, LockWait: 5 * time.Minute, Logf: t.Logf})
	if err != nil {
		t.Fatalf("k8snode: %v", err)
	}
	t.Cleanup(func() {
		if n.lock == nil {
			return // the test stopped it
		}
		start := time.Now()
		if err := n.Stop(); err != nil {
			t.Errorf("k8snode: teardown: %v", err)
		}
		t.Logf("k8snode: torn down in %s", time.Since(start).Round(time.Millisecond))
	})
	t.Logf("k8snode: node %s (%s) Ready in %s; API server %s; files in %s", n.Name, n.IP, time.Since(start).Round(time.Millisecond), n.Server, n.Dir)
	return n
}
