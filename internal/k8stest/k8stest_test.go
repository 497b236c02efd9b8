package k8stest

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestStartStop starts a private cluster, adds a KWOK node, checks the
// version and the identity, and checks that Stop leaves no process and no
// file behind.
func TestStartStop(t *testing.T) {
	if testing.Short() {
		t.Skip("k8stest: -short: skipping a real Kubernetes control plane")
	}
	start := time.Now()
	c := Start(t)
	t.Logf("cluster up in %s", time.Since(start).Round(time.Millisecond))
	ctx := context.Background()
	v, err := c.Client.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.GitVersion != KubeVersion {
		t.Errorf("server version %s, want %s", v.GitVersion, KubeVersion)
	}
	start = time.Now()
	n := c.AddNode(t, "n1", "4", "8Gi", 1)
	t.Logf("node Ready in %s", time.Since(start).Round(time.Millisecond))
	if q := n.Status.Allocatable["nvidia.com/gpu"]; q.Value() != 1 {
		t.Errorf("node allocatable %v", n.Status.Allocatable)
	}
	if _, err := c.Client.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	// A certificate user has no rights until RBAC grants some.
	uc, err := c.UserConfig("nobody")
	if err != nil {
		t.Fatal(err)
	}
	if uc.Host != c.Server {
		t.Errorf("user config host %s", uc.Host)
	}

	pids := c.PIDs()
	c.Stop()
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still exists after Stop (kill 0: %v)", pid, err)
		}
	}
	if _, err := os.Stat(c.Dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after Stop: %v", c.Dir, err)
	}
}

func TestNodeResources(t *testing.T) {
	tests := []struct {
		cpu, mem string
		gpus     int
		ok       bool
	}{
		{"4", "8Gi", 0, true},
		{"500m", "1G", 2, true},
		{"", "1Gi", 0, false},
		{"x", "1Gi", 0, false},
	}
	for _, tt := range tests {
		res, err := nodeResources(tt.cpu, tt.mem, tt.gpus)
		if (err == nil) != tt.ok {
			t.Errorf("nodeResources(%q, %q): %v", tt.cpu, tt.mem, err)
			continue
		}
		if err == nil && tt.gpus > 0 {
			if q := res["nvidia.com/gpu"]; q.Value() != int64(tt.gpus) {
				t.Errorf("gpus = %v", res)
			}
		}
	}
}
