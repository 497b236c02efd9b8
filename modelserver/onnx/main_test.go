package onnx_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/modelship/modelship/modelserver/onnx"
)

// python is the interpreter with Debian's onnx, numpy and scikit-learn (the
// first python3 on PATH may be another one).
const python = "/usr/bin/python3"

// fixture holds what TestMain prepared: the test models, or why the tests
// that need them are skipped.
var fixture struct {
	dir      string // models built by testdata/make_models.py
	skip     string // reason to skip tests that need ONNX Runtime and the models
	expected expected
}

// expected is testdata/make_models.py's expected.json.
type expected struct {
	X        [][]float32 `json:"X"`
	LRProba  [][]float64 `json:"lr_proba"`
	LRLabel  []int64     `json:"lr_label"`
	MLPProba [][]float64 `json:"mlp_proba"`
	MLPLabel []int64     `json:"mlp_label"`
}

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "modelship-onnx-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		fixture.dir = dir
		fixture.skip = prepare(dir)
		return m.Run()
	}()
	os.Exit(code)
}

// prepare builds the test models, returning a skip reason when ONNX Runtime
// or Python with onnx is missing, and failing loudly on other errors.
func prepare(dir string) string {
	if lib := onnx.DefaultLibraryPath(); !exists(lib) {
		return "ONNX Runtime library not found at " + lib + "; run scripts/setup.sh or set MODELSHIP_ORT_LIB"
	}
	if err := exec.Command(python, "-c", "import onnx, numpy, sklearn").Run(); err != nil {
		return python + " with onnx, numpy and sklearn is missing (" + err.Error() + "); run scripts/setup.sh"
	}
	out, err := exec.Command(python, "testdata/make_models.py", dir).CombinedOutput()
	if err != nil {
		panic(fmt.Sprintf("testdata/make_models.py: %v\n%s", err, out))
	}
	b, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		panic(err)
	}
	if err := json.Unmarshal(b, &fixture.expected); err != nil {
		panic(err)
	}
	return ""
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// needModels skips the test when ONNX Runtime or the models are missing.
func needModels(tb testing.TB) {
	tb.Helper()
	if fixture.skip != "" {
		tb.Skip(fixture.skip)
	}
}

// newRuntime serves the named test models (file names without .onnx) and
// closes the runtime when the test ends.
func newRuntime(tb testing.TB, cfg onnx.Config, files ...string) *onnx.Runtime {
	tb.Helper()
	needModels(tb)
	for _, f := range files {
		cfg.Models = append(cfg.Models, onnx.Model{Name: f, Version: "1", Path: filepath.Join(fixture.dir, f+".onnx")})
	}
	rt, err := onnx.New(cfg)
	if err != nil {
		tb.Fatalf("onnx.New: %v", err)
	}
	tb.Cleanup(func() {
		if err := rt.Close(context.Background()); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return rt
}
