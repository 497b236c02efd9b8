package modelship_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/modelship/modelship"
)

func inferenceBaseDir(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("testdata", "inferenceconfig"))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestInferenceConfig_Good parses every testdata/inferenceconfig/*.good.json
// with the testdata directory as the config file's directory.
func TestInferenceConfig_Good(t *testing.T) {
	base := inferenceBaseDir(t)
	checks := map[string]func(t *testing.T, c *modelship.InferenceConfig){
		"minimal.good.json": func(t *testing.T, c *modelship.InferenceConfig) {
			if c.EntryScriptPath() != filepath.Join(base, "score.py") || c.SourceDirPath() != "" || c.EntryScriptInSource() != "score.py" {
				t.Errorf("paths = %q %q %q", c.EntryScriptPath(), c.SourceDirPath(), c.EntryScriptInSource())
			}
			if len(c.Warnings()) != 0 || c.PythonInterpreterPath() != "" || c.Env != nil {
				t.Errorf("warnings = %q, python = %q", c.Warnings(), c.PythonInterpreterPath())
			}
		},
		"azure-doc-legacy.good.json": func(t *testing.T, c *modelship.InferenceConfig) {
			if c.SourceDirPath() != filepath.Join(base, "src") || c.EntryScriptPath() != filepath.Join(base, "src", "score.py") {
				t.Errorf("paths = %q %q", c.SourceDirPath(), c.EntryScriptPath())
			}
			if c.Runtime != "python" {
				t.Errorf("runtime = %q", c.Runtime)
			}
			wantWarnings(t, c.Warnings(), "condaFile has no effect")
		},
		"environment.good.json": func(t *testing.T, c *modelship.InferenceConfig) {
			if c.EntryScriptPath() != filepath.Join(base, "src", "sub", "score.py") || c.EntryScriptInSource() != "sub/score.py" {
				t.Errorf("entry = %q / %q", c.EntryScriptPath(), c.EntryScriptInSource())
			}
			e := c.Env
			want := &modelship.AzureEnvironment{
				Name: "diabetes-env", Version: "1", InterpreterPath: "python",
				EnvironmentVariables: map[string]string{"EXAMPLE_ENV_VAR": "EXAMPLE_VALUE", "THREADS": "4"},
				BaseImage:            "mcr.microsoft.com/azureml/openmpi3.1.2-ubuntu18.04:20210615.v1",
			}
			if !reflect.DeepEqual(e, want) {
				t.Errorf("env = %+v", e)
			}
			if c.PythonInterpreterPath() != "" {
				t.Errorf("python = %q; Azure's default \"python\" means the runtime's default", c.PythonInterpreterPath())
			}
			if !reflect.DeepEqual(c.EnvironmentVariables(), want.EnvironmentVariables) {
				t.Errorf("env vars = %v", c.EnvironmentVariables())
			}
			wantWarnings(t, c.Warnings(),
				"environment.python.condaDependencies is not installed by modelship (azureml-defaults, joblib, python=3.8.10, scikit-learn==0.24.2)",
				"environment.docker has no effect")
		},
		"user-managed.good.json": func(t *testing.T, c *modelship.InferenceConfig) {
			if c.PythonInterpreterPath() != filepath.Join(base, "venv", "bin", "python") {
				t.Errorf("python = %q", c.PythonInterpreterPath())
			}
			if c.EntryScriptPath() != filepath.Join(base, "src", "score.py") {
				t.Errorf("entry = %q (backslashes should be accepted)", c.EntryScriptPath())
			}
			wantWarnings(t, c.Warnings())
		},
		"python-interpreter.good.json": func(t *testing.T, c *modelship.InferenceConfig) {
			if c.PythonInterpreterPath() != filepath.Join(base, "venv", "bin", "python") || c.Description != "own virtualenv" {
				t.Errorf("python = %q", c.PythonInterpreterPath())
			}
		},
		// microsoft/MLOpsPython's inference_config.yml (as JSON): legacy
		// fields, schemaFile, and a registered environment's name.
		"mlops-env-name.good.json": func(t *testing.T, c *modelship.InferenceConfig) {
			if c.Env != nil || c.Runtime != "python" || c.PythonInterpreterPath() != "" {
				t.Errorf("config = %+v", c)
			}
			wantWarnings(t, c.Warnings(), "schemaFile has no effect", `environment "diabetes_regression" names a registered Azure ML environment`, "condaFile")
		},
		"gpu-legacy.good.json": func(t *testing.T, c *modelship.InferenceConfig) {
			if c.Runtime != "spark-py" || c.CUDAVersion != "10.0" || !c.EnableGPU || c.ExtraDockerfileSteps != "src/steps.dockerfile" || c.BaseImageRegistry.Address != "myregistry.azurecr.io" {
				t.Errorf("config = %+v", c)
			}
			wantWarnings(t, c.Warnings(), "spark-py", "cudaVersion has no effect", "enableGpu has no effect", "baseImage and baseImageRegistry have no effect", "extraDockerfileSteps has no effect")
		},
	}
	for name, data := range readTestdata(t, "inferenceconfig", "*.good.json") {
		t.Run(name, func(t *testing.T) {
			c, err := modelship.ParseInferenceConfig(data, base)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			check, ok := checks[name]
			if !ok {
				t.Fatalf("no check for %s; add one", name)
			}
			check(t, c)
			// Without a base directory nothing is looked up and the
			// config is still accepted.
			if _, err := modelship.ParseInferenceConfig(data, ""); err != nil {
				t.Errorf("parse without baseDir: %v", err)
			}
		})
	}
}

func wantWarnings(t *testing.T, got []string, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("warnings = %q, want %d", got, len(want))
		return
	}
	for i, w := range want {
		if !strings.Contains(got[i], w) {
			t.Errorf("warning %d = %q, want it to contain %q", i, got[i], w)
		}
	}
}

var badInferenceConfigs = map[string][]string{
	"entry-missing.bad.json":            {"entryScript is required", "no-code deploy"},
	"entry-not-py.bad.json":             {`entryScript "score.txt" is not a .py file; only Python drivers are supported`},
	"entry-not-found.bad.json":          {`entryScript "nope.py" does not exist relative to the config file's directory`},
	"entry-escapes.bad.json":            {`entryScript "../score.py" must be a relative path inside sourceDirectory "src"`},
	"source-missing.bad.json":           {`sourceDirectory "missing" does not exist`},
	"source-is-file.bad.json":           {`sourceDirectory "score.py"`, "is not a directory"},
	"env-runtime.bad.json":              {"environment and runtime cannot be combined"},
	"env-conda.bad.json":                {"environment and condaFile cannot be combined"},
	"env-docker-steps.bad.json":         {"environment and extraDockerfileSteps cannot be combined"},
	"env-gpu.bad.json":                  {"environment and enableGpu cannot be combined"},
	"env-cuda.bad.json":                 {"environment and cudaVersion cannot be combined"},
	"env-base-image.bad.json":           {"environment and baseImage cannot be combined"},
	"runtime.bad.json":                  {`runtime "java" is not supported; use one of python, spark-py, python-slim`},
	"cuda.bad.json":                     {`cudaVersion "11.0" is not supported; use one of 9.0, 9.1, 10.0`},
	"env-image-and-dockerfile.bad.json": {"environment.docker.baseImage and environment.docker.baseDockerfile cannot both be set"},
	"env-types.bad.json":                {"3 problems", "environment.python.interpreterPath: expected a string, got the number 3", `"A=B" is not a valid variable name`, "environment.environmentVariables.C: expected a string, got an array"},
	"interpreter-missing.bad.json":      {`pythonInterpreter "venv/bin/python3" does not exist`},
	"interpreter-conflict.bad.json":     {`pythonInterpreter "/usr/bin/python3" and environment.python.interpreterPath "/opt/conda/bin/python" disagree`},
	"conda-missing.bad.json":            {`condaFile "nothere.yml" does not exist`},
	"docker-steps-twice.bad.json":       {"extraDockerFileSteps and extraDockerfileSteps are the same setting"},
	"many.bad.json":                     {"5 problems", "environment and runtime", "environment and cudaVersion", `entryScript "score.sh" is not a .py file`, `runtime "ruby"`, `cudaVersion "8.0"`},
	"unknown-fields.bad.json": {
		"4 problems",
		`unknown field "entry_script" — did you mean "entryScript"? (JSON keys are camelCase)`,
		`unknown field "sourceDir" — did you mean "sourceDirectory"?`,
		`unknown field "EntryScript" — did you mean "entryScript"?`,
		`unknown field "enableGPU" — did you mean "enableGpu"?`,
	},
	"types.bad.json": {"3 problems", "entryScript: expected a string, got the number 1", `enableGpu: expected true or false, got the string "true"`, `baseImageRegistry: expected an object ({...}), got the string "reg"`},
}

func TestInferenceConfig_Bad(t *testing.T) {
	base := inferenceBaseDir(t)
	files := readTestdata(t, "inferenceconfig", "*.bad.json")
	for name := range badInferenceConfigs {
		if _, ok := files[name]; !ok {
			t.Errorf("expected-error table names %s, which is not in testdata", name)
		}
	}
	for name, data := range files {
		t.Run(name, func(t *testing.T) {
			want, ok := badInferenceConfigs[name]
			if !ok {
				t.Fatalf("no expected error for %s; add it to badInferenceConfigs", name)
			}
			_, err := modelship.ParseInferenceConfig(data, base)
			if err == nil {
				t.Fatal("accepted; want an error")
			}
			if code := modelship.ErrorCode(err); code != modelship.EINVALID {
				t.Errorf("code = %q, want invalid", code)
			}
			for _, w := range want {
				if !strings.Contains(modelship.ErrorMessage(err), w) {
					t.Errorf("message does not contain %q:\n%s", w, modelship.ErrorMessage(err))
				}
			}
		})
	}
}

// TestInferenceConfig_WorkingDirFallback checks that a path Azure's CLI
// would resolve against the working directory still works, with a warning.
func TestInferenceConfig_WorkingDirFallback(t *testing.T) {
	cfgDir := t.TempDir()
	// The test runs in the package directory, so testdata/... resolves
	// against the working directory but not against cfgDir.
	data := []byte(`{"entryScript": "testdata/inferenceconfig/score.py"}`)
	c, err := modelship.ParseInferenceConfig(data, cfgDir)
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	if c.EntryScriptPath() != filepath.Join(wd, "testdata", "inferenceconfig", "score.py") {
		t.Errorf("entry = %q", c.EntryScriptPath())
	}
	wantWarnings(t, c.Warnings(), "found relative to the working directory")

	// A file next to the config wins over one in the working directory.
	if err := os.MkdirAll(filepath.Join(cfgDir, "testdata", "inferenceconfig"), 0o755); err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(cfgDir, "testdata", "inferenceconfig", "score.py")
	if err := os.WriteFile(local, []byte("def init(): pass\ndef run(x): return x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err = modelship.ParseInferenceConfig(data, cfgDir)
	if err != nil {
		t.Fatal(err)
	}
	if c.EntryScriptPath() != local || len(c.Warnings()) != 0 {
		t.Errorf("entry = %q, warnings %q", c.EntryScriptPath(), c.Warnings())
	}
}

func FuzzParseInferenceConfig(f *testing.F) {
	for _, pattern := range []string{"*.good.json", "*.bad.json"} {
		for _, data := range readTestdata(f, "inferenceconfig", pattern) {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := modelship.ParseInferenceConfig(data, "")
		if err != nil {
			if modelship.ErrorCode(err) != modelship.EINVALID {
				t.Fatalf("error with code %q: %v", modelship.ErrorCode(err), err)
			}
			return
		}
		if !strings.HasSuffix(strings.ToLower(c.EntryScript), ".py") {
			t.Fatalf("accepted entry script %q", c.EntryScript)
		}
		_ = c.Warnings()
	})
}
