package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelship/modelship"
)

// listScore answers the files of AZUREML_MODEL_DIR.
const listScore = `import json, os
def init():
    pass
def run(raw):
    return sorted(os.listdir(os.environ["AZUREML_MODEL_DIR"]))
`

// TestAzureYAMLConfigs deploys with config files written as Microsoft's
// MLOpsPython sample writes them (YAML, comments, Python-style booleans, ACI
// keys in an AKS file), and two models holding the same bytes under
// different file names.
func TestAzureYAMLConfigs(t *testing.T) {
	needPython(t)
	s := startServer(t, "")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a", "first_name.bin"), []byte("same bytes"))
	writeFile(t, filepath.Join(dir, "b", "second_name.bin"), []byte("same bytes"))
	s.ok(t, "model", "register", "-n", "dupa", "-p", filepath.Join(dir, "a", "first_name.bin"))
	s.ok(t, "model", "register", "-n", "dupb", "-p", filepath.Join(dir, "b", "second_name.bin"))
	writeFile(t, filepath.Join(dir, "scoring", "score.py"), []byte(listScore))
	writeFile(t, filepath.Join(dir, "conda_dependencies.yml"), []byte("name: scoring\ndependencies:\n  - python=3.11\n"))
	writeFile(t, filepath.Join(dir, "inference_config.yml"), []byte(`entryScript: scoring/score.py
runtime: python
condaFile: conda_dependencies.yml
extraDockerfileSteps:
schemaFile:
sourceDirectory:
enableGpu: False
baseImage:
baseImageRegistry:
environment: diabetes_regression
`))
	writeFile(t, filepath.Join(dir, "deployment_config_aks.yml"), []byte(`computeType: AKS
autoScaler:
    autoscaleEnabled: True
    minReplicas: 1
    maxReplicas: 2
    refreshPeriodInSeconds: 10
    targetUtilization: 70
authEnabled: False
containerResourceRequirements:
    cpu: 0.1
    memoryInGB: 0.5
scoringTimeoutMs: 5000
maxConcurrentRequestsPerContainer: 2
maxQueueWaitMs: 5000
sslEnabled: True
`))
	ic, dc := filepath.Join(dir, "inference_config.yml"), filepath.Join(dir, "deployment_config_aks.yml")
	for _, tc := range []struct{ svc, model, want string }{
		{"svc-b", "dupb:1", `["second_name.bin"]`},
		{"svc-a", "dupa:1", `["first_name.bin"]`},
	} {
		r := s.cli(t, "model", "deploy", "-n", tc.svc, "-m", tc.model, "--ic", ic, "--dc", dc)
		if r.code != 0 {
			t.Fatalf("deploy %s: exit %d\n%s\n%s\nserver log:\n%s", tc.svc, r.code, r.stdout, r.stderr, s.log)
		}
		if !strings.Contains(r.stderr, "warning: sslEnabled has no effect") {
			t.Errorf("deploy %s: no warning for sslEnabled on stderr:\n%s", tc.svc, r.stderr)
		}
		code, out, _ := s.score(t, tc.svc, "", `{}`)
		if code != 200 || strings.TrimSpace(out) != tc.want {
			t.Errorf("%s (%s) model dir = %d %s, want %s", tc.svc, tc.model, code, out, tc.want)
		}
	}
	// A source folder with a project-local virtualenv (its bin/python links
	// outside the folder) and a stale link deploys; the stale link is left
	// out with a warning.
	proj := filepath.Join(dir, "proj")
	writeFile(t, filepath.Join(proj, "score.py"), []byte(listScore))
	os.MkdirAll(filepath.Join(proj, ".venv", "bin"), 0o755)
	os.Symlink(systemPython, filepath.Join(proj, ".venv", "bin", "python"))
	os.Symlink("/nonexistent/thing", filepath.Join(proj, "stale"))
	writeFile(t, filepath.Join(dir, "proj-ic.json"), []byte(`{"entryScript": "score.py", "sourceDirectory": "proj"}`))
	r := s.cli(t, "model", "deploy", "-n", "svc-venv", "-m", "dupa:1", "--ic", filepath.Join(dir, "proj-ic.json"), "--dc", dc)
	if r.code != 0 || !strings.Contains(r.stderr, "stale links to /nonexistent/thing, which does not exist; left out") {
		t.Fatalf("deploy with links in the source folder: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if code, out, _ := s.score(t, "svc-venv", "", `{}`); code != 200 || strings.TrimSpace(out) != `["first_name.bin"]` {
		t.Errorf("svc-venv = %d %s", code, out)
	}
	// Azure's local example: a service reported as LOCAL, port has no effect.
	writeFile(t, filepath.Join(dir, "local.json"), []byte(`{"computeType": "local", "port": 32267}`))
	r = s.cli(t, "model", "deploy", "-n", "svc-local", "-m", "dupa:1", "--ic", ic, "--dc", filepath.Join(dir, "local.json"))
	if r.code != 0 || !strings.Contains(r.stderr, "warning: port has no effect") {
		t.Fatalf("deploy local: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if svc := decode[modelship.Service](t, s.ok(t, "service", "show", "svc-local", "-o", "json")); svc.ComputeType != "LOCAL" {
		t.Errorf("computeType of a local service = %q, want LOCAL", svc.ComputeType)
	}
	// A deployment config without computeType is refused, as Azure's CLI
	// refused it, and nothing is created.
	writeFile(t, filepath.Join(dir, "no-type.json"), []byte("\xef\xbb\xbf{\"numReplicas\": 1}"))
	s.fails(t, "has no computeType", "model", "deploy", "-n", "svc-c", "-m", "dupa:1", "--ic", ic, "--dc", filepath.Join(dir, "no-type.json"))
	s.fails(t, `service "svc-c" not found`, "service", "show", "svc-c")
	// Neither JSON nor YAML.
	writeFile(t, filepath.Join(dir, "bad.yml"), []byte("computeType: [aks\n"))
	s.fails(t, "is neither JSON nor YAML", "model", "deploy", "-n", "svc-c", "-m", "dupa:1", "--ic", ic, "--dc", filepath.Join(dir, "bad.yml"))
}

// appRootScore loads its model the way many public samples do, relative to
// the working directory (Azure's /var/azureml-app), then changes its own
// files: a deployment's files must be its own.
const appRootScore = `import json, os
def init():
    global seen
    with open("azureml-models/m/1/model.pkl", "rb") as f:
        weights = f.read()
    with open("settings.json") as f:
        settings = json.load(f)
    seen = {"weights": weights.decode(), "settings": settings,
            "app_root_models": os.path.isdir(os.path.join(os.environ["AML_APP_ROOT"], "azureml-models"))}
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.pkl"), "ab") as f:
        f.write(b"-changed")
    with open("settings.json", "w") as f:
        json.dump({"mutated": True}, f)
def run(raw):
    return seen
`

func TestAzureAppRoot(t *testing.T) {
	needPython(t)
	s := startServer(t, "")
	dir := t.TempDir()
	registerDummy(t, s, dir)
	writeFile(t, filepath.Join(dir, "src", "score.py"), []byte(appRootScore))
	writeFile(t, filepath.Join(dir, "src", "settings.json"), []byte(`{"mutated": false}`))
	writeFile(t, filepath.Join(dir, "ic.json"), []byte(`{"entryScript": "score.py", "sourceDirectory": "src"}`))
	writeFile(t, filepath.Join(dir, "dc.json"), []byte(`{"computeType": "aks", "numReplicas": 1, "authEnabled": false}`))
	want := `{"weights": "weights", "settings": {"mutated": false}, "app_root_models": true}`
	for _, name := range []string{"first", "second"} {
		s.deploy(t, dir, name)
		if code, out, _ := s.score(t, name, "", `{}`); code != 200 || strings.TrimSpace(out) != want {
			t.Errorf("%s: %d %s, want %s", name, code, out, want)
		}
		s.ok(t, "service", "delete", name)
	}
}
