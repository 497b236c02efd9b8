package local_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelship/modelship/compute"
	"github.com/modelship/modelship/compute/local"
)

var binPath string

func TestMain(m *testing.M) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		fmt.Println("skipping: /usr/bin/python3 is missing; run scripts/setup.sh")
		os.Exit(0)
	}
	dir, _ := os.MkdirTemp("", "local-driver-")
	binPath = filepath.Join(dir, "modelship")
	build := exec.Command("go", "build", "-o", binPath, "../../cmd/modelship")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building modelship:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func newDriver(t *testing.T, capacity compute.Capacity) *local.Driver {
	t.Helper()
	d, err := local.New(local.Config{Binary: binPath, Capacity: capacity, LogDir: t.TempDir(), StopGrace: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	return d
}

func spec(t *testing.T, id, version string, replicas int, extra map[string]string) *compute.Spec {
	src, _ := filepath.Abs("testdata")
	env := map[string]string{
		"AZUREML_ENTRY_SCRIPT": "score.py", "AZUREML_SOURCE_DIRECTORY": src, "AZUREML_MODEL_DIR": t.TempDir(),
		"MODELSHIP_PYTHON": "/usr/bin/python3", "MODELSHIP_RUNTIME": "python", "TEST_VERSION": version,
	}
	for k, v := range extra {
		env[k] = v
	}
	return &compute.Spec{ID: id, Revision: "rev-" + version, Replicas: replicas, Env: env, CPU: 0.5, MemoryGB: 0.5,
		Liveness: compute.Probe{Period: time.Second, Timeout: time.Second, FailureThreshold: 3}, StartTimeout: 20 * time.Second}
}

// waitFor polls the status until cond holds.
func waitFor(t *testing.T, d *local.Driver, id string, what string, cond func(*compute.Status) bool) *compute.Status {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var st *compute.Status
	for time.Now().Before(deadline) {
		var err error
		st, err = d.Status(context.Background(), id)
		if err == nil && cond(st) {
			return st
		}
		time.Sleep(50 * time.Millisecond)
	}
	logs, _ := d.Logs(context.Background(), id, compute.LogOptions{Replica: -1, Tail: 40})
	t.Fatalf("timed out waiting for %s; status %+v\nlogs:\n%s", what, st, strings.Join(logs, "\n"))
	return nil
}

func readyOn(rev string, n int) func(*compute.Status) bool {
	return func(st *compute.Status) bool {
		c := 0
		for _, r := range st.Replicas {
			if r.Ready && r.Revision == rev {
				c++
			}
		}
		return c == n && len(st.Replicas) == n
	}
}

func score(t *testing.T, url string) map[string]any {
	t.Helper()
	resp, err := http.Post(url+"/score", "application/json", strings.NewReader(`{"data":[1]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("score: %d %s", resp.StatusCode, b)
	}
	var v map[string]any
	json.Unmarshal(b, &v)
	return v
}

func TestReplicasStartScaleRestart(t *testing.T) {
	d := newDriver(t, compute.Capacity{CPU: 4, MemoryGB: 8})
	ctx := context.Background()
	if err := d.Apply(ctx, spec(t, "default/svc", "1", 2, nil)); err != nil {
		t.Fatal(err)
	}
	st := waitFor(t, d, "default/svc", "2 ready replicas", readyOn("rev-1", 2))
	for _, r := range st.Replicas {
		if got := score(t, r.URL); got["version"] != "1" {
			t.Fatalf("replica %s answered %v", r.ID, got)
		}
	}
	_, free, _ := d.Capacity(ctx)
	if free.CPU != 3 {
		t.Fatalf("free cpu = %g, want 3", free.CPU)
	}
	// A killed replica is restarted.
	victim := st.Replicas[0]
	syscall.Kill(victim.PID, syscall.SIGKILL)
	waitFor(t, d, "default/svc", "restart", func(st *compute.Status) bool {
		for _, r := range st.Replicas {
			if r.ID == victim.ID && r.Restarts == 1 && r.Ready {
				return true
			}
		}
		return false
	})
	// Scale down frees capacity.
	if err := d.Scale(ctx, "default/svc", 1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, d, "default/svc", "1 replica", readyOn("rev-1", 1))
	waitForFree(t, d, 3.5)
	logs, err := d.Logs(ctx, "default/svc", compute.LogOptions{Replica: -1, Init: true})
	if err != nil || !strings.Contains(strings.Join(logs, "\n"), "init: version 1") {
		t.Fatalf("init logs = %q, %v", logs, err)
	}
	if err := d.Delete(ctx, "default/svc"); err != nil {
		t.Fatal(err)
	}
	waitForFree(t, d, 4)
	if _, err := d.Status(ctx, "default/svc"); err == nil {
		t.Fatal("status of a deleted deployment")
	}
}

func waitForFree(t *testing.T, d *local.Driver, cpu float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, free, _ := d.Capacity(context.Background()); free.CPU == cpu {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, free, _ := d.Capacity(context.Background())
	t.Fatalf("free cpu = %g, want %g", free.CPU, cpu)
}

func TestRollingUpdateKeepsAReadyReplica(t *testing.T) {
	d := newDriver(t, compute.Capacity{CPU: 4, MemoryGB: 8})
	ctx := context.Background()
	d.Apply(ctx, spec(t, "default/roll", "1", 2, nil))
	waitFor(t, d, "default/roll", "v1 ready", readyOn("rev-1", 2))
	d.Apply(ctx, spec(t, "default/roll", "2", 2, nil))
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, _ := d.Status(ctx, "default/roll")
		if st.ReadyCount() == 0 {
			t.Fatalf("no ready replica during the rollout: %+v", st)
		}
		if readyOn("rev-2", 2)(st) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rollout did not finish: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	st, _ := d.Status(ctx, "default/roll")
	if st.Revision != "rev-2" || st.RolloutError != "" {
		t.Fatalf("status after rollout: %+v", st)
	}
}

func TestFailedRolloutRollsBack(t *testing.T) {
	d := newDriver(t, compute.Capacity{CPU: 4, MemoryGB: 8})
	ctx := context.Background()
	d.Apply(ctx, spec(t, "default/rb", "1", 1, nil))
	waitFor(t, d, "default/rb", "v1 ready", readyOn("rev-1", 1))
	bad := spec(t, "default/rb", "2", 1, map[string]string{"TEST_FAIL_INIT": "1"})
	bad.StartTimeout = 60 * time.Second
	d.Apply(ctx, bad)
	st := waitFor(t, d, "default/rb", "rollback", func(st *compute.Status) bool { return st.RolloutError != "" && readyOn("rev-1", 1)(st) })
	if !strings.Contains(st.RolloutError, "crashed") || !strings.Contains(st.RolloutError, "init failed on purpose") {
		t.Fatalf("rollout error = %q", st.RolloutError)
	}
	if got := score(t, st.Replicas[0].URL); got["version"] != "1" {
		t.Fatalf("after rollback the replica answers %v", got)
	}
}

func TestUnschedulable(t *testing.T) {
	d := newDriver(t, compute.Capacity{CPU: 1, MemoryGB: 8, GPUs: 0})
	ctx := context.Background()
	s := spec(t, "default/big", "1", 1, nil)
	s.CPU = 2
	d.Apply(ctx, s)
	st := waitFor(t, d, "default/big", "unschedulable", func(st *compute.Status) bool { return st.Unschedulable != "" })
	if !strings.Contains(st.Unschedulable, "Insufficient cpu") || len(st.Replicas) != 0 {
		t.Fatalf("status = %+v", st)
	}
	g := spec(t, "default/gpu", "1", 1, nil)
	g.GPUs = 1
	d.Apply(ctx, g)
	st = waitFor(t, d, "default/gpu", "unschedulable gpu", func(st *compute.Status) bool { return st.Unschedulable != "" })
	if !strings.Contains(st.Unschedulable, "Insufficient gpu") {
		t.Fatalf("status = %+v", st)
	}
}

func TestMemoryLimitKillsReplica(t *testing.T) {
	d := newDriver(t, compute.Capacity{CPU: 4, MemoryGB: 8})
	ctx := context.Background()
	s := spec(t, "default/hog", "1", 1, map[string]string{"TEST_ALLOC_MB": "400"})
	s.MemoryLimitGB = 0.25
	d.Apply(ctx, s)
	st := waitFor(t, d, "default/hog", "OOM kill", func(st *compute.Status) bool {
		return len(st.Replicas) == 1 && strings.HasPrefix(st.Replicas[0].LastExit, "OOMKilled")
	})
	if st.Replicas[0].Ready {
		t.Fatalf("an over-limit replica is ready: %+v", st)
	}
}
