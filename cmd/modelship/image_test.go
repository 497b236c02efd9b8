package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/modelship/modelship/modelserver/onnx"
)

// runImage runs `modelship image ...` and returns stdout, stderr and the
// exit code.
func runImage(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(modelshipBin, append([]string{"image"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &ee):
		return stdout.String(), stderr.String(), ee.ExitCode()
	}
	t.Fatal(err)
	return "", "", 0
}

func TestImageBuildCLI(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	reg := strings.TrimPrefix(srv.URL, "http://")
	ref := reg + "/ml/modelship:cli"
	dir := t.TempDir()
	ort := onnx.DefaultLibraryPath()
	args := []string{"build", "--push", ref, "--tarball", filepath.Join(dir, "img.tar"), "--layout", filepath.Join(dir, "layout"), "-o", "json"}
	if _, err := os.Stat(ort); err != nil {
		t.Logf("ONNX Runtime not installed (%v); building without it", err)
		args = append(args, "--onnxruntime", "none")
	}
	stdout, stderr, code := runImage(t, args...)
	if code != 0 {
		t.Fatalf("image build exited %d: %s", code, stderr)
	}
	var out struct {
		Digest, Pushed, Tarball, Layout, Tag, Version, ONNXRuntime string
		Size                                                       int64
		Files                                                      []struct{ Path, Kind string }
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout)
	}
	if out.Pushed != reg+"/ml/modelship@"+out.Digest || out.Tag != ref || out.Version != "dev" || out.Size < 1e6 {
		t.Errorf("output: %+v", out)
	}
	hasBinary := false
	for _, f := range out.Files {
		hasBinary = hasBinary || f.Path == "/usr/local/bin/modelship" && f.Kind == "binary"
	}
	if !hasBinary {
		t.Errorf("files do not list the binary: %+v", out.Files)
	}

	// The registry has the image under the tag, with the printed digest.
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(r)
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest.String() != out.Digest {
		t.Errorf("registry has %s under %s, the build printed %s", desc.Digest, ref, out.Digest)
	}
	img, err := desc.Image()
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := cf.Config.Entrypoint; len(got) != 1 || got[0] != "/usr/local/bin/modelship" {
		t.Errorf("entrypoint %q", got)
	}
	wantORT := out.ONNXRuntime != ""
	hasORT := false
	for _, kv := range cf.Config.Env {
		hasORT = hasORT || strings.HasPrefix(kv, "MODELSHIP_ORT_LIB=/usr/local/lib/modelship/onnxruntime/")
	}
	if hasORT != wantORT {
		t.Errorf("env %q, ONNX Runtime in the image: %v", cf.Config.Env, wantORT)
	}

	// The tarball and the layout hold the same image.
	tag, _ := name.NewTag(ref)
	fromTar, err := tarball.ImageFromPath(filepath.Join(dir, "img.tar"), &tag)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.ConfigName()
	if got, _ := fromTar.ConfigName(); got != want {
		t.Errorf("tarball config %s, registry's %s", got, want)
	}
	idx, err := layout.ImageIndexFromPath(filepath.Join(dir, "layout"))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := idx.IndexManifest()
	if len(m.Manifests) != 1 || m.Manifests[0].Digest.String() != out.Digest {
		t.Errorf("layout index: %+v", m.Manifests)
	}

	// The table output says what went in.
	stdout, stderr, code = runImage(t, "build", "--onnxruntime", "none", "--layout", filepath.Join(dir, "layout2"))
	if code != 0 || !strings.Contains(stdout, "Built sha256:") || !strings.Contains(stdout, "/usr/local/bin/modelship") ||
		!strings.Contains(stdout, "ONNX Runtime: not included") || !strings.Contains(stdout, "Wrote OCI layout") {
		t.Errorf("table output (exit %d):\n%s%s", code, stdout, stderr)
	}
}

func TestImageBuildCLIBadFlags(t *testing.T) {
	dir := t.TempDir()
	lay := filepath.Join(dir, "layout")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"build"}, "--push REF, --tarball FILE or --layout DIR"},
		{[]string{"build", "--tarball", filepath.Join(dir, "x.tar")}, "--tarball needs --tag"},
		{[]string{"build", "--layout", lay, "--tag", "Bad:Tag:x"}, "--tag"},
		{[]string{"build", "--push", "UPPER/case"}, "--push"},
		{[]string{"build", "--layout", lay, "--base", "oci-layout:"}, "--base"},
		{[]string{"build", "--layout", lay, "--base", "no::ref"}, "--base"},
		{[]string{"build", "--layout", lay, "--binary", filepath.Join(dir, "nope")}, "--binary"},
		{[]string{"build", "--layout", lay, "--onnxruntime", filepath.Join(dir, "libonnxruntime.so")}, `"none"`},
		{[]string{"build", "--layout", lay, "--platform", "windows/amd64"}, "--platform"},
		{[]string{"build", "--layout", lay, "-o", "yaml"}, "table or json"},
		{[]string{"build", "extra"}, "unknown command"},
	} {
		_, stderr, code := runImage(t, tc.args...)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("image %s: exit %d, stderr %q; want an error naming %q", strings.Join(tc.args, " "), code, stderr, tc.want)
		}
		if code != 0 && code != 2 && tc.args[len(tc.args)-1] != "extra" {
			t.Errorf("image %s: exit %d, want 2 (bad input)", strings.Join(tc.args, " "), code)
		}
	}
	if _, err := os.Stat(lay); err == nil {
		t.Errorf("a failed build wrote %s", lay)
	}
}
