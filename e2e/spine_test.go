package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/client"
)

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func sha(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

func TestFirstStartAdminTokenAndAuth(t *testing.T) {
	s := startServer(t, "")
	info, err := os.Stat(filepath.Join(s.dataDir, "admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("admin-token mode = %v, want 0600", info.Mode().Perm())
	}
	if !strings.Contains(s.log.String(), "admin-token") {
		t.Fatalf("server log does not say where the admin token is:\n%s", s.log)
	}
	for _, tc := range []struct{ name, header string }{
		{"Missing", ""}, {"Wrong", "Bearer nope"}, {"NotBearer", "Basic " + s.token}, {"Empty", "Bearer "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", s.url+"/api/v1/workspaces", nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				Error struct{ Code, Message string }
			}
			json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != 401 || body.Error.Code != "unauthorized" || resp.Header.Get("WWW-Authenticate") == "" {
				t.Fatalf("status %d, body %+v, WWW-Authenticate %q", resp.StatusCode, body, resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
	resp, _ := s.request(t, "GET", "/api/v1/workspaces", s.token, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("with the token: %d", resp.StatusCode)
	}
	// The token survives a restart.
	tok := s.token
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	s2 := startServer(t, s.dataDir)
	if s2.token != tok {
		t.Fatal("admin token changed across restarts")
	}
}

func TestCLIFindsLocalServerWithoutConfig(t *testing.T) {
	s := startServer(t, "")
	// Only the data dir is known: the CLI reads server.json and admin-token.
	r := s.cliEnv(t, []string{"MODELSHIP_DATA_DIR=" + s.dataDir}, "workspace", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "default") {
		t.Fatalf("exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	// ~/.modelship/config.json is used when no environment is set.
	cfg, _ := json.Marshal(map[string]string{"url": s.url, "token": s.token})
	writeFile(t, filepath.Join(s.home, ".modelship", "config.json"), cfg)
	r = s.cliEnv(t, nil, "workspace", "list", "-o", "json")
	if r.code != 0 || !strings.Contains(r.stdout, `"name": "default"`) {
		t.Fatalf("with config.json: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	// A wrong token is reported as such.
	r = s.cliEnv(t, []string{"MODELSHIP_URL=" + s.url, "MODELSHIP_TOKEN=wrong"}, "model", "list")
	if r.code == 0 || !strings.Contains(r.stderr, "token") {
		t.Fatalf("wrong token: exit %d: %s", r.code, r.stderr)
	}
	// An unreachable server is reported with its address.
	r = s.cliEnv(t, []string{"MODELSHIP_URL=http://127.0.0.1:1", "MODELSHIP_TOKEN=x"}, "model", "list")
	if r.code == 0 || !strings.Contains(r.stderr, "cannot reach") {
		t.Fatalf("unreachable: exit %d: %s", r.code, r.stderr)
	}
}

func TestDefaultDataDirIsHome(t *testing.T) {
	home := t.TempDir()
	s := startServerHome(t, home)
	r := s.cliEnv(t, nil, "model", "list")
	if r.code != 0 {
		t.Fatalf("model list with only HOME: exit %d: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(home, ".modelship", "admin-token")); err != nil {
		t.Fatal("admin token not in ~/.modelship:", err)
	}
}

// startServerHome starts a server with no --data-dir, so it uses $HOME/.modelship.
func startServerHome(t *testing.T, home string) *server {
	t.Helper()
	dataDir := filepath.Join(home, ".modelship")
	s := startServerWith(t, home, dataDir, []string{"server", "--listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0"})
	return s
}

func TestModelLifecycle(t *testing.T) {
	s := startServer(t, "")
	dir := t.TempDir()
	file := randomBytes(t, 300_000)
	writeFile(t, filepath.Join(dir, "model.onnx"), file)
	folder := filepath.Join(dir, "model_dir")
	writeFile(t, filepath.Join(folder, "model.pkl"), randomBytes(t, 1000))
	writeFile(t, filepath.Join(folder, "nested", "vocab.txt"), []byte("a\nb\n"))
	os.Symlink("model.pkl", filepath.Join(folder, "latest.pkl"))

	out := s.ok(t, "model", "register", "-n", "diabetes", "-p", filepath.Join(dir, "model.onnx"), "--tag", "team=risk",
		"--description", "v1 of the risk model", "--model-framework", "onnx", "--model-framework-version", "1.16", "-o", "json")
	v1 := decode[modelship.ModelVersion](t, out)
	if v1.Version != 1 || v1.SHA256 != sha(file) || v1.SizeBytes != int64(len(file)) || v1.Tags["team"] != "risk" ||
		v1.ModelFramework != "Onnx" || v1.ModelFrameworkVersion != "1.16" || v1.Description != "v1 of the risk model" || v1.CreatedTime.IsZero() {
		t.Fatalf("v1 = %+v", v1)
	}
	out = s.ok(t, "model", "register", "-n", "diabetes", "-p", folder+"/")
	if !strings.Contains(out, "Version:") || !strings.Contains(out, "2") || !strings.Contains(out, "folder") {
		t.Fatalf("register table output:\n%s", out)
	}
	// Registering the same folder again gives the same digest (deterministic tar).
	v3 := decode[modelship.ModelVersion](t, s.ok(t, "model", "register", "-n", "diabetes", "-p", folder, "-o", "json"))
	v2 := decode[modelship.ModelVersion](t, s.ok(t, "model", "show", "diabetes:2", "-o", "json"))
	if v3.Version != 3 || v3.SHA256 != v2.SHA256 || v2.FileCount != 2 || v2.SizeBytes != 1004 {
		t.Fatalf("v2 = %+v, v3 = %+v", v2, v3)
	}

	list := decode[[]modelship.ModelVersion](t, s.ok(t, "model", "list", "-n", "diabetes", "-o", "json"))
	if len(list) != 3 || list[0].Version != 1 || list[2].Version != 3 {
		t.Fatalf("list = %+v", list)
	}
	table := s.ok(t, "model", "list")
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "NAME") || !strings.Contains(lines[1], "team=risk") {
		t.Fatalf("table:\n%s", table)
	}
	latest := decode[modelship.ModelVersion](t, s.ok(t, "model", "show", "diabetes", "-o", "json"))
	if latest.Version != 3 {
		t.Fatalf("latest = %d", latest.Version)
	}
	// az ml's spellings: -n NAME --version V, -i NAME:VERSION.
	for _, args := range [][]string{{"-n", "diabetes", "--version", "2"}, {"-i", "diabetes:2"}, {"--model-id", "diabetes:2"}} {
		if mv := decode[modelship.ModelVersion](t, s.ok(t, append([]string{"model", "show", "-o", "json"}, args...)...)); mv.Version != 2 {
			t.Errorf("model show %v = version %d, want 2", args, mv.Version)
		}
	}
	s.fails(t, "--version goes with --name", "model", "show", "-i", "diabetes:2", "--version", "1")

	// Download both kinds and compare bytes.
	s.ok(t, "model", "download", "-i", "diabetes:1", "-t", filepath.Join(dir, "out1"))
	got, _ := os.ReadFile(filepath.Join(dir, "out1", "model.onnx"))
	if !bytes.Equal(got, file) {
		t.Fatal("downloaded file differs")
	}
	s.ok(t, "model", "download", "diabetes:2", "-o", filepath.Join(dir, "out2"))
	// As in Azure ML, a registered folder keeps its name.
	for _, name := range []string{"model.pkl", "nested/vocab.txt"} {
		want, _ := os.ReadFile(filepath.Join(folder, name))
		got, _ := os.ReadFile(filepath.Join(dir, "out2", "model_dir", name))
		if !bytes.Equal(got, want) {
			t.Fatalf("downloaded %s differs", name)
		}
	}
	if link, err := os.Readlink(filepath.Join(dir, "out2", "model_dir", "latest.pkl")); err != nil || link != "model.pkl" {
		t.Fatalf("symlink = %q, %v", link, err)
	}
	s.fails(t, "not empty", "model", "download", "diabetes:2", "-o", filepath.Join(dir, "out2"))

	// Update: tags merge, properties are add-only.
	upd := decode[modelship.ModelVersion](t, s.ok(t, "model", "update", "diabetes:2", "--tag", "stage=prod", "--property", "auc=0.9",
		"--description", "promoted", "-o", "json"))
	if upd.Tags["stage"] != "prod" || upd.Properties["auc"] != "0.9" || upd.Description != "promoted" {
		t.Fatalf("update = %+v", upd)
	}
	s.fails(t, "add-only", "model", "update", "diabetes:2", "--property", "auc=0.5")
	s.fails(t, "no changes", "model", "update", "diabetes:2")
	filtered := decode[[]modelship.ModelVersion](t, s.ok(t, "model", "list", "--tag", "stage=prod", "-o", "json"))
	if len(filtered) != 1 || filtered[0].Version != 2 {
		t.Fatalf("tag filter = %+v", filtered)
	}

	// Delete: the version goes; bytes shared with v3 stay.
	s.ok(t, "model", "delete", "diabetes:2")
	s.fails(t, `model diabetes:2 not found in workspace "default"`, "model", "show", "diabetes:2")
	s.ok(t, "model", "download", "diabetes:3", "-o", filepath.Join(dir, "out3"))
	s.fails(t, "give the version", "model", "delete", "diabetes")
}

func TestBadInput(t *testing.T) {
	s := startServer(t, "", "--max-upload-bytes", "100000")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "empty.onnx"), nil)
	writeFile(t, filepath.Join(dir, "big.onnx"), randomBytes(t, 200_000))
	writeFile(t, filepath.Join(dir, "ok.onnx"), []byte("model"))
	os.MkdirAll(filepath.Join(dir, "emptydir"), 0o755)
	tests := []struct {
		name string
		want string
		args []string
	}{
		{"BadName", "model name \"bad name\" is invalid", []string{"model", "register", "-n", "bad name", "-p", filepath.Join(dir, "ok.onnx")}},
		{"LongName", "at most 255", []string{"model", "register", "-n", strings.Repeat("a", 256), "-p", filepath.Join(dir, "ok.onnx")}},
		{"MissingPath", "does not exist", []string{"model", "register", "-n", "m", "-p", filepath.Join(dir, "nope")}},
		{"EmptyFile", "is empty", []string{"model", "register", "-n", "m", "-p", filepath.Join(dir, "empty.onnx")}},
		{"EmptyFolder", "no files", []string{"model", "register", "-n", "m", "-p", filepath.Join(dir, "emptydir")}},
		{"TooLarge", "limit", []string{"model", "register", "-n", "m", "-p", filepath.Join(dir, "big.onnx")}},
		{"BadTag", "key=value", []string{"model", "register", "-n", "m", "-p", filepath.Join(dir, "ok.onnx"), "--tag", "novalue"}},
		{"BadFramework", "use one of", []string{"model", "register", "-n", "m", "-p", filepath.Join(dir, "ok.onnx"), "--model-framework", "caffe9"}},
		{"UnknownModel", `model "ghost" not found`, []string{"model", "show", "ghost"}},
		{"UnknownVersion", "model m2:9 not found", []string{"model", "show", "m2:9"}},
		{"BadVersion", "version \"x\"", []string{"model", "show", "m:x"}},
		{"UnknownWorkspace", `workspace "nope" not found`, []string{"model", "list", "-w", "nope"}},
		{"BadOutput", "output format", []string{"model", "list", "-o", "yaml"}},
		{"BadWorkspaceName", "workspace name", []string{"workspace", "create", "Bad_WS"}},
		{"DeleteDefaultWorkspace", "cannot be deleted", []string{"workspace", "delete", "default"}},
	}
	s.ok(t, "model", "register", "-n", "m2", "-p", filepath.Join(dir, "ok.onnx"))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.fails(t, tt.want, tt.args...)
		})
	}
	list := decode[[]modelship.ModelVersion](t, s.ok(t, "model", "list", "-o", "json"))
	if len(list) != 1 {
		t.Fatalf("bad input changed the registry: %+v", list)
	}
	art, _ := filepath.Glob(filepath.Join(s.dataDir, "artifacts", "blobs", "sha256", "*", "*"))
	tmp, _ := filepath.Glob(filepath.Join(s.dataDir, "artifacts", "tmp", "*"))
	if len(art) != 1 || len(tmp) != 0 {
		t.Fatalf("blobs %v, tmp %v: rejected uploads left bytes behind", art, tmp)
	}
}

func TestRawAPIErrors(t *testing.T) {
	s := startServer(t, "", "--max-upload-bytes", "4000")
	cases := []struct {
		name, method, path, ctype string
		body                      io.Reader
		status                    int
		code                      string
	}{
		{"UnknownRoute", "GET", "/api/v1/nothing", "", nil, 404, "not_found"},
		{"Over limit by Content-Length", "POST", "/api/v1/workspaces/default/models/m/versions?fileName=a", "application/octet-stream", bytes.NewReader(make([]byte, 5000)), 413, "too_large"},
		{"Over limit chunked", "POST", "/api/v1/workspaces/default/models/m/versions?fileName=a", "application/octet-stream", io.MultiReader(bytes.NewReader(make([]byte, 5000))), 413, "too_large"},
		{"Digest mismatch", "POST", "/api/v1/workspaces/default/models/m/versions?fileName=a&sha256=" + strings.Repeat("0", 64), "application/octet-stream", strings.NewReader("abc"), 400, "invalid"},
		{"Bad content type", "POST", "/api/v1/workspaces/default/models/m/versions?fileName=a", "text/plain", strings.NewReader("abc"), 415, "unsupported"},
		{"Unknown field", "PATCH", "/api/v1/workspaces/default/models/m/versions/1", "application/json", strings.NewReader(`{"tagz":{}}`), 400, "invalid"},
		{"Bad JSON", "POST", "/api/v1/workspaces", "application/json", strings.NewReader(`{`), 400, "invalid"},
		{"Workspace exists", "POST", "/api/v1/workspaces", "application/json", strings.NewReader(`{"name":"default"}`), 409, "conflict"},
		{"Tar escape", "POST", "/api/v1/workspaces/default/models/m/versions", "application/x-tar", bytes.NewReader(evilTar(t)), 400, "invalid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, s.url+tc.path, tc.body)
			req.Header.Set("Authorization", "Bearer "+s.token)
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			if tc.name == "Over limit chunked" {
				req.ContentLength = -1
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				Error struct{ Code, Message string }
			}
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("status %d, body is not JSON: %v", resp.StatusCode, err)
			}
			if resp.StatusCode != tc.status || body.Error.Code != tc.code || body.Error.Message == "" {
				t.Fatalf("status %d, body %+v; want %d %s", resp.StatusCode, body, tc.status, tc.code)
			}
		})
	}
	resp, body := s.request(t, "GET", "/api/v1/workspaces/default/models", s.token, nil)
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != "[]" {
		t.Fatalf("after rejected uploads: %d %s", resp.StatusCode, body)
	}
}

func TestOpenAPICoversEveryRoute(t *testing.T) {
	s := startServer(t, "")
	resp, body := s.request(t, "GET", "/api/v1/openapi.json", s.token, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi = %q", doc.OpenAPI)
	}
	// Every documented route answers something other than "no route".
	for path, ops := range doc.Paths {
		for method := range ops {
			concrete := strings.NewReplacer("{ws}", "default", "{name}", "m", "{version}", "1").Replace(path)
			resp, body := s.request(t, strings.ToUpper(method), concrete, s.token, nil)
			if resp.StatusCode == 404 && strings.Contains(string(body), "no route") {
				t.Errorf("%s %s is documented but not served", method, path)
			}
		}
	}
	if len(doc.Paths) < 8 {
		t.Fatalf("only %d paths documented", len(doc.Paths))
	}
}

func TestWorkspaces(t *testing.T) {
	s := startServer(t, "")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "m.onnx"), []byte("model"))
	s.ok(t, "workspace", "create", "team-risk", "--description", "Risk models")
	s.fails(t, "already exists", "workspace", "create", "team-risk")
	ws := decode[modelship.Workspace](t, s.ok(t, "workspace", "show", "team-risk", "-o", "json"))
	if ws.Description != "Risk models" {
		t.Fatalf("ws = %+v", ws)
	}
	s.ok(t, "model", "register", "-w", "team-risk", "-n", "m", "-p", filepath.Join(dir, "m.onnx"))
	if list := decode[[]modelship.ModelVersion](t, s.ok(t, "model", "list", "-o", "json")); len(list) != 0 {
		t.Fatalf("default workspace sees team-risk's model: %+v", list)
	}
	s.fails(t, "still holds", "workspace", "delete", "team-risk")
	s.ok(t, "model", "delete", "m:1", "-w", "team-risk")
	s.ok(t, "workspace", "delete", "team-risk")
	s.fails(t, "not found", "workspace", "show", "team-risk")
	if !strings.Contains(s.ok(t, "workspace", "list"), "default") {
		t.Fatal("default workspace missing from list")
	}
}

func TestConcurrentRegistrationsGetConsecutiveVersions(t *testing.T) {
	s := startServer(t, "")
	dir := t.TempDir()
	c := client.New(s.url, s.token)
	const n = 20
	var wg sync.WaitGroup
	versions := make([]int, n)
	errs := make([]error, n)
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("m%d.onnx", i))
		writeFile(t, p, []byte(fmt.Sprintf("model %d", i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			mv, err := c.Models.Register(t.Context(), "default", client.RegisterOptions{Name: "same", Path: p})
			errs[i] = err
			if err == nil {
				versions[i] = mv.Version
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	sort.Ints(versions)
	for i, v := range versions {
		if v != i+1 {
			t.Fatalf("versions = %v, want 1..%d", versions, n)
		}
	}
}

func evilTar(t *testing.T) []byte {
	var buf bytes.Buffer
	hdr := make([]byte, 512)
	copy(hdr, "../../escape")
	copy(hdr[100:], "0000644\x00")
	copy(hdr[108:], "0000000\x00")
	copy(hdr[116:], "0000000\x00")
	copy(hdr[124:], "00000000001\x00")
	copy(hdr[136:], "00000000000\x00")
	hdr[156] = '0'
	copy(hdr[257:], "ustar\x0000")
	copy(hdr[148:], "        ")
	sum := 0
	for _, b := range hdr {
		sum += int(b)
	}
	copy(hdr[148:], fmt.Sprintf("%06o\x00 ", sum))
	buf.Write(hdr)
	buf.Write(append([]byte("x"), make([]byte, 511)...))
	buf.Write(make([]byte, 1024))
	return buf.Bytes()
}

// TestKillDuringUpload kills the server (SIGKILL) while a large upload is
// streaming; after a restart no partial version exists and committed
// versions are intact.
func TestKillDuringUpload(t *testing.T) {
	s := startServer(t, "")
	dir := t.TempDir()
	good := randomBytes(t, 2_000_000)
	writeFile(t, filepath.Join(dir, "good.onnx"), good)
	folder := filepath.Join(dir, "folder")
	writeFile(t, filepath.Join(folder, "w.bin"), randomBytes(t, 500_000))
	s.ok(t, "model", "register", "-n", "m", "-p", filepath.Join(dir, "good.onnx"))
	s.ok(t, "model", "register", "-n", "m", "-p", folder)

	// Stream an upload that never finishes; kill the server mid-way.
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", s.url+"/api/v1/workspaces/default/models/m/versions?fileName=partial.onnx", pr)
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.ContentLength = -1
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if resp != nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	chunk := randomBytes(t, 1<<20)
	for i := 0; i < 8; i++ {
		if _, err := pw.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until the server has written part of the upload to disk.
	deadline := time.Now().Add(10 * time.Second)
	for {
		tmp, _ := filepath.Glob(filepath.Join(s.dataDir, "artifacts", "tmp", "*"))
		if len(tmp) > 0 {
			if fi, err := os.Stat(tmp[0]); err == nil && fi.Size() > 1<<20 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("upload never reached the server's disk")
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.kill()
	pw.CloseWithError(io.ErrClosedPipe)
	<-errc

	s2 := startServer(t, s.dataDir)
	list := decode[[]modelship.ModelVersion](t, s2.ok(t, "model", "list", "-o", "json"))
	if len(list) != 2 {
		t.Fatalf("after kill -9 during upload: %d versions, want the 2 committed ones: %+v", len(list), list)
	}
	s2.ok(t, "model", "download", "m:1", "-o", filepath.Join(dir, "o1"))
	got, _ := os.ReadFile(filepath.Join(dir, "o1", "good.onnx"))
	if !bytes.Equal(got, good) {
		t.Fatal("m:1 bytes changed")
	}
	s2.ok(t, "model", "download", "m:2", "-o", filepath.Join(dir, "o2"))
	tmp, _ := filepath.Glob(filepath.Join(s.dataDir, "artifacts", "tmp", "*"))
	if len(tmp) != 0 {
		t.Fatalf("temporary upload files survive a restart: %v", tmp)
	}
	// The next registration gets version 3: nothing was allocated to the killed upload.
	mv := decode[modelship.ModelVersion](t, s2.ok(t, "model", "register", "-n", "m", "-p", filepath.Join(dir, "good.onnx"), "-o", "json"))
	if mv.Version != 3 {
		t.Fatalf("next version = %d, want 3", mv.Version)
	}
}

func TestGracefulShutdown(t *testing.T) {
	s := startServer(t, "")
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s.log.String(), "stopped") {
		t.Fatalf("log:\n%s", s.log)
	}
	// The ports are free again.
	for _, u := range []string{s.url, s.gateway} {
		addr := strings.TrimPrefix(u, "http://")
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("%s still bound after shutdown: %v", addr, err)
		}
		ln.Close()
	}
}

// TestTrailerDigestMismatch sends a digest in the HTTP trailer that does not
// match the body: the upload is rejected and nothing is stored.
func TestTrailerDigestMismatch(t *testing.T) {
	s := startServer(t, "")
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", s.url+"/api/v1/workspaces/default/models/m/versions?fileName=m.onnx", pr)
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.ContentLength = -1
	req.Trailer = http.Header{"X-Content-Sha256": nil}
	go func() {
		pw.Write([]byte("model bytes"))
		req.Trailer.Set("X-Content-Sha256", strings.Repeat("ab", 32))
		pw.Close()
	}()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(body), "sha256 mismatch") {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if list := decode[[]modelship.ModelVersion](t, s.ok(t, "model", "list", "-o", "json")); len(list) != 0 {
		t.Fatalf("mismatched upload stored: %+v", list)
	}
}

func TestCLIReferenceIsCurrent(t *testing.T) {
	out, err := exec.Command(binPath, "gen-docs").Output()
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("../docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, want) {
		t.Fatal("docs/cli.md is out of date; run `make docs`")
	}
}

func TestEveryCommandHasHelpWithExample(t *testing.T) {
	out, err := exec.Command(binPath, "gen-docs").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, section := range strings.Split(string(out), "\n## ")[1:] {
		name, _, _ := strings.Cut(section, "\n")
		if strings.Contains(section, "```\nmodelship ") && !strings.Contains(section, "Examples:") {
			t.Errorf("%s has no example in its --help", name)
		}
	}
}
