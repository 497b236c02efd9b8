package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/compute/kubernetes"
	"github.com/modelship/modelship/internal/k8snode"
	"github.com/modelship/modelship/internal/pyimage"
	"github.com/modelship/modelship/ociimage"
)

// pythonImage is modelship on a Python base image made from the host's
// Debian Python and numpy (imported into the node, never pulled).
const pythonImage = "modelship.local/modelship-python:e2e"

const numpyScore = `import json, os
import numpy as np
def init():
    print("init done; numpy", np.__version__, "model dir", os.environ.get("AZUREML_MODEL_DIR"), flush=True)
def run(raw):
    a = np.asarray(json.loads(raw)["data"], dtype=np.float64)
    return {"sum": a.sum(axis=1).tolist(), "gram": float((a @ a.T).trace())}
`

// TestRealNodePython runs a score.py service that imports numpy in a real
// single-node cluster: its pods run an image built here from the host's
// Python (interpreter, standard library, numpy and their shared libraries)
// with modelship's layer on top, named by the inference config's baseImage.
func TestRealNodePython(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the test on a real single-node cluster")
	}
	if err := exec.Command(systemPython, "-c", "import numpy").Run(); err != nil {
		t.Skipf("%s with numpy is needed to build the Python image (apt install python3-numpy): %v", systemPython, err)
	}
	if _, err := exec.LookPath("ldd"); err != nil {
		t.Skip("ldd is needed to build the Python image")
	}
	total := time.Now()
	n := k8snode.Start(t)
	ctx := context.Background()

	// The base image from the host's Python, as an OCI tarball.
	start := time.Now()
	work := t.TempDir()
	base, rep, err := pyimage.FromHost(ctx, pyimage.Options{
		Python:   systemPython,
		Stdlib:   "/usr/lib/python3.11",
		Packages: []string{"/usr/lib/python3/dist-packages/numpy"},
		WorkDir:  work,
	})
	if err != nil {
		t.Fatalf("building the Python base image: %v", err)
	}
	baseFile := filepath.Join(work, "python-base.tar")
	tag, err := name.NewTag("modelship.local/python-base:e2e")
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(baseFile, tag, base); err != nil {
		t.Fatalf("writing the Python base image: %v", err)
	}
	baseTime := time.Since(start)
	t.Logf("Python base image: %d files, %d symlinks, %d ELF files (%d libraries); layer %.1f MB (%.1f MB uncompressed); built in %s",
		rep.Files, rep.Symlinks, rep.ELF, len(rep.Libraries), mb(rep.Compressed), mb(rep.Uncompressed), baseTime.Round(time.Millisecond))

	start = time.Now()
	res, err := ociimage.BuildReport(ctx, ociimage.Options{Binary: binPath, Base: ociimage.TarballPrefix + baseFile})
	if err != nil {
		t.Fatalf("building modelship on the Python base: %v", err)
	}
	t.Logf("modelship layer on the Python base: %.1f MB (%.1f MB uncompressed), %d libraries from the base; built in %s",
		mb(res.LayerSize), mb(res.LayerUncompressed), len(res.FromBase), time.Since(start).Round(time.Millisecond))
	start = time.Now()
	if err := n.LoadImage(ctx, pythonImage, res.Image); err != nil {
		t.Fatalf("loading the Python image: %v", err)
	}
	t.Logf("Python image loaded into the node in %s", time.Since(start).Round(time.Millisecond))

	// The front end runs the plain image.
	start = time.Now()
	plain, err := ociimage.Build(ctx, ociimage.Options{Binary: binPath})
	if err != nil {
		t.Fatalf("building the image: %v", err)
	}
	if err := n.LoadImage(ctx, realImage, plain); err != nil {
		t.Fatalf("loading the image: %v", err)
	}
	t.Logf("plain image built and loaded in %s", time.Since(start).Round(time.Millisecond))

	listen := n.IP + ":" + freePort(t)
	s := startServer(t, t.TempDir(), "--listen", listen)
	const ns = "ml"
	s.ok(t, "computetarget", "attach", "kubernetes", "-n", "node1", "--kubeconfig", n.KubeconfigPath, "--namespace", ns,
		"--cluster-purpose", "DevTest", "--image", realImage, "--image-pull-policy", "Never")
	var fe string
	waitFor(t, 60*time.Second, "the front end to be ready", s.log, func() bool {
		ct := decode[modelship.ComputeTarget](t, s.ok(t, "computetarget", "show", "node1", "-o", "json"))
		fe = ct.Kubernetes.FrontEndURL
		return fe != "" && ct.Kubernetes.FrontEndReady > 0
	})

	dir := t.TempDir()
	registerDummy(t, s, dir)
	writeFile(t, filepath.Join(dir, "src", "score.py"), []byte(numpyScore))
	writeFile(t, filepath.Join(dir, "ic.json"), []byte(fmt.Sprintf(`{"entryScript": "score.py", "sourceDirectory": "src", "baseImage": %q}`, pythonImage)))
	writeFile(t, filepath.Join(dir, "dc.json"), []byte(`{"computeType": "aks", "numReplicas": 1, "containerResourceRequirements": {"cpu": 0.1, "memoryInGB": 0.5}}`))
	start = time.Now()
	s.ok(t, "model", "deploy", "-ct", "node1", "-m", "m:1", "-n", "pysvc", "-ic", filepath.Join(dir, "ic.json"), "-dc", filepath.Join(dir, "dc.json"), "--no-wait")
	svc := waitPythonHealthy(t, s, "pysvc", 180*time.Second)
	t.Logf("deploy -> Healthy (score.py with numpy, 1 real pod): %s", time.Since(start).Round(time.Millisecond))
	if !strings.HasPrefix(svc.ScoringURI, fe+"/api/v1/service/pysvc/score") {
		t.Errorf("scoring URI %s, front end %s", svc.ScoringURI, fe)
	}

	// The replica runs in the Python image.
	pods, err := n.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: kubernetes.LabelDeployment + "=" + kubernetes.LabelValue("default/pysvc")})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods of pysvc: %v %v", pods, err)
	}
	if img := pods.Items[0].Spec.Containers[0].Image; img != pythonImage {
		t.Errorf("the replica runs image %s, want %s", img, pythonImage)
	}

	key := s.keys(t, "pysvc").PrimaryKey
	scoreURL := fe + "/api/v1/service/pysvc/score"
	body := `{"data": [[1, 2, 3], [4, 5, 6]]}`
	var out string
	waitFor(t, 30*time.Second, "scoring through the in-cluster front end", s.log, func() bool {
		var code int
		code, out = post(scoreURL, key, body, nil)
		return code == http.StatusOK
	})
	var got struct {
		Sum  []float64 `json:"sum"`
		Gram float64   `json:"gram"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		// The answer may be a JSON string holding the JSON document.
		var inner string
		if json.Unmarshal([]byte(out), &inner) != nil || json.Unmarshal([]byte(inner), &got) != nil {
			t.Fatalf("score answer %q: %v", out, err)
		}
	}
	if len(got.Sum) != 2 || got.Sum[0] != 6 || got.Sum[1] != 15 || got.Gram != 91 {
		t.Errorf("score answer %s, want sums [6 15] and gram 91", out)
	}
	t.Logf("score through the in-cluster front end: %s", strings.TrimSpace(out))
	if code, _ := post(scoreURL, "wrong", body, nil); code != http.StatusUnauthorized {
		t.Errorf("wrong key: %d, want 401", code)
	}
	if logs := s.ok(t, "service", "get-logs", "pysvc"); !strings.Contains(logs, "init done; numpy") {
		t.Errorf("get-logs lacks init()'s output:\n%s", logs)
	}

	s.ok(t, "service", "delete", "pysvc")
	s.ok(t, "computetarget", "detach", "node1", "--force")
	t.Logf("total: %s (Python base image %s)", time.Since(total).Round(time.Millisecond), baseTime.Round(time.Millisecond))
}

// waitPythonHealthy waits for the service to be Healthy and fails early,
// with the pods' logs, when it fails instead.
func waitPythonHealthy(t *testing.T, s *server, svcName string, timeout time.Duration) modelship.Service {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var svc modelship.Service
	for time.Now().Before(deadline) {
		svc = decode[modelship.Service](t, s.ok(t, "service", "show", svcName, "-o", "json"))
		if svc.State == modelship.StateHealthy {
			return svc
		}
		if svc.State == modelship.StateFailed {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	logs := s.cli(t, "service", "get-logs", svcName)
	t.Fatalf("service %s is %s, not Healthy (error %+v)\nlogs:\n%s%s\nserver log:\n%s", svcName, svc.State, svc.Error, logs.stdout, logs.stderr, s.log)
	return svc
}

func mb(n int64) float64 { return float64(n) / (1 << 20) }
