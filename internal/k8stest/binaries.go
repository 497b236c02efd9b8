package k8stest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Versions of the control plane the harness runs (scripts/k8s-binaries.sh
// builds exactly these).
const (
	KubeVersion = "v1.37.2"
	EtcdVersion = "v3.7.3"
	KwokVersion = "v0.8.0"
)

// binaries are the files scripts/k8s-binaries.sh leaves in BinDir.
var binaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kwok-stages.yaml"}

// coldBuildBudget is how much test time a cold build needs at least.
const coldBuildBudget = 14 * time.Minute

// BinDir returns the folder holding the control-plane binaries:
// $MODELSHIP_CACHE_DIR (default $XDG_CACHE_HOME/modelship, then
// ~/.cache/modelship) /k8s-v1.37.2.
func BinDir() (string, error) {
	dir := os.Getenv("MODELSHIP_CACHE_DIR")
	if dir == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("locating the cache folder: %w", err)
			}
			base = filepath.Join(home, ".cache")
		}
		dir = filepath.Join(base, "modelship")
	}
	return filepath.Join(dir, "k8s-"+KubeVersion), nil
}

// missing lists the binaries not yet in dir.
func missing(dir string) []string {
	var out []string
	for _, b := range binaries {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			out = append(out, b)
		}
	}
	return out
}

var ensureMu sync.Mutex

// ensureBinaries returns BinDir, running scripts/k8s-binaries.sh first when
// something is missing. A cold build takes about 10 minutes; when the test
// deadline leaves less than that, the test is skipped with instructions
// rather than killed mid-build.
func ensureBinaries(t testing.TB) string {
	t.Helper()
	ensureMu.Lock()
	defer ensureMu.Unlock()
	dir, err := BinDir()
	if err != nil {
		t.Fatal(err)
	}
	miss := missing(dir)
	if len(miss) == 0 {
		return dir
	}
	script, err := findScript()
	if err != nil {
		t.Fatalf("k8stest: %s missing from %s and %v", strings.Join(miss, ", "), dir, err)
	}
	if d, ok := deadline(t); ok && time.Until(d) < coldBuildBudget {
		t.Skipf("k8stest: Kubernetes binaries (%s) not built in %s and a cold build (~10 min) does not fit the test timeout: run %s once, or go test -timeout 30m", strings.Join(miss, ", "), dir, script)
	}
	t.Logf("k8stest: building %s into %s with %s (a cold build takes about 10 minutes)", strings.Join(miss, ", "), dir, script)
	ctx := context.Background()
	if d, ok := deadline(t); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-30*time.Second))
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, "bash", script)
	// Its go builds die with it when the deadline comes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("k8stest: %s failed after %s: %v\n%s", script, time.Since(start).Round(time.Second), err, tail(out.String(), 4000))
	}
	t.Logf("k8stest: binaries built in %s", time.Since(start).Round(time.Second))
	if miss := missing(dir); len(miss) > 0 {
		t.Fatalf("k8stest: %s ran but %s is still missing from %s", script, strings.Join(miss, ", "), dir)
	}
	return dir
}

// deadline returns the test binary's deadline when t has one.
func deadline(t testing.TB) (time.Time, bool) {
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		return d.Deadline()
	}
	return time.Time{}, false
}

// findScript locates scripts/k8s-binaries.sh by walking up from the working
// directory (a test runs in its package folder) to the repository root.
func findScript() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("locating scripts/k8s-binaries.sh: %w", err)
	}
	for {
		p := filepath.Join(dir, "scripts", "k8s-binaries.sh")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("scripts/k8s-binaries.sh not found above the working directory")
		}
		dir = parent
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
