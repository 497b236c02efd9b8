package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelship/modelship"
)

// TestReplicaFetchesItsFiles runs a replica of a deployed service in
// another process that fetches the models and code from the control plane
// with a fetch token (what Kubernetes pods do), and scores it.
func TestReplicaFetchesItsFiles(t *testing.T) {
	needPython(t)
	s := startServer(t, "")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "tf_model", "weights.txt"), []byte("7"))
	s.ok(t, "model", "register", "-n", "folder-model", "-p", filepath.Join(dir, "tf_model"))
	project(t, dir, `import os, json
def init():
    global w
    w = int(open(os.path.join(os.getenv('AZUREML_MODEL_DIR'), 'tf_model', 'weights.txt')).read())
    # Azure's app root layout, as samples use it: relative to the working directory.
    assert open('azureml-models/folder-model/1/tf_model/weights.txt').read() == '7'
def run(raw):
    return {"answer": w * sum(json.loads(raw)["data"])}
`, `{"computeType": "aks", "numReplicas": 1, "authEnabled": false}`)
	r := s.cli(t, "model", "deploy", "-m", "folder-model:1", "-n", "fetchsvc", "-ic", filepath.Join(dir, "ic.json"), "-dc", filepath.Join(dir, "dc.json"))
	if r.code != 0 {
		t.Fatalf("deploy: %s %s", r.stdout, r.stderr)
	}
	fa := decode[modelship.FetchAccess](t, s.ok(t, "service", "fetch-access", "fetchsvc", "-o", "json"))
	if fa.URL != s.url || fa.Deployment != "default/fetchsvc" || fa.Token == "" {
		t.Fatalf("fetch access = %+v", fa)
	}

	// A bad token is refused, and the replica says so.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	bad := exec.Command(binPath, "serve-model", "--fetch-url", fa.URL, "--fetch-deployment", fa.Deployment, "--fetch-token", "nope", "--port", port)
	out, err := bad.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "fetch token") {
		t.Fatalf("bad token: %v\n%s", err, out)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, "serve-model", "--fetch-url", fa.URL, "--fetch-deployment", fa.Deployment,
		"--fetch-token", fa.Token, "--fetch-dir", t.TempDir(), "--port", port, "--python", systemPython)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Post("http://127.0.0.1:"+port+"/score", "application/json", strings.NewReader(`{"data": [1, 2]}`))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				if !strings.Contains(string(b), `"answer": 21`) {
					t.Fatalf("answer %s", b)
				}
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fetching replica never served:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Only the deployment's own files are served.
	req, _ := http.NewRequest("GET", fa.URL+"/api/v1/fetch/default/fetchsvc/blobs/"+strings.Repeat("0", 64), nil)
	req.Header.Set("Authorization", "Bearer "+fa.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 404 {
		t.Fatalf("a foreign digest: %v %v", resp, err)
	}
	resp.Body.Close()
	// The token opens no other deployment.
	req, _ = http.NewRequest("GET", fa.URL+"/api/v1/fetch/default/other/manifest", nil)
	req.Header.Set("Authorization", "Bearer "+fa.Token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 401 {
		t.Fatalf("another deployment: %v %v", resp, err)
	}
	resp.Body.Close()
}
