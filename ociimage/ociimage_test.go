package ociimage

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/modelship/modelship/modelserver/onnx"
)

// testVersion is the version the test binary is built with.
const testVersion = "0.0.0-imagetest"

// testBin is a modelship binary built by TestMain, as `make build` does.
var testBin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "modelship-ociimage-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	testBin = filepath.Join(dir, "modelship")
	build := exec.Command("go", "build", "-ldflags", "-X github.com/modelship/modelship/cli.Version="+testVersion, "-o", testBin, "../cmd/modelship")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building modelship:", err)
		return 1
	}
	return m.Run()
}

// ortLib returns the ONNX Runtime library of this machine, or "none" when
// scripts/setup.sh has not installed it.
func ortLib(t *testing.T) string {
	t.Helper()
	p := onnx.DefaultLibraryPath()
	if _, err := os.Stat(p); err != nil {
		t.Logf("ONNX Runtime library not found at %s (run scripts/setup.sh); building without it", p)
		return ONNXRuntimeNone
	}
	return p
}

// startRegistry runs go-containerregistry's registry on 127.0.0.1 and
// returns its host:port.
func startRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// pull fetches ref from the registry.
func pull(t *testing.T, ref string) v1.Image {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatalf("pulling %s: %v", ref, err)
	}
	return img
}

// extract flattens img into a new directory, refusing any entry that would
// land outside it: absolute or .. names, writes through symlinks, hard
// links out of the tree. It returns the root and the headers by path.
func extract(t *testing.T, img v1.Image) (string, map[string]*tar.Header) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	headers := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		rel, err := safeRel(h.Name)
		if err != nil {
			t.Fatal(err)
		}
		if rel == "." {
			continue
		}
		headers["/"+rel] = h
		for d := path.Dir(rel); d != "."; d = path.Dir(d) {
			if fi, err := os.Lstat(filepath.Join(root, d)); err == nil && !fi.IsDir() {
				t.Fatalf("tar entry %s goes through %s, which is not a directory", h.Name, d)
			}
		}
		target := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(h.Mode & 0o777)
		if h.Mode&0o1000 != 0 {
			mode |= os.ModeSticky
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.Mkdir(target, 0o755); err != nil && !os.IsExist(err) {
				t.Fatal(err)
			}
			if err := os.Chmod(target, mode); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			os.Remove(target)
			f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(f, tr); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(target, mode); err != nil {
				t.Fatal(err)
			}
		case tar.TypeSymlink:
			os.Remove(target)
			if err := os.Symlink(h.Linkname, target); err != nil {
				t.Fatal(err)
			}
		case tar.TypeLink:
			src, err := safeRel(h.Linkname)
			if err != nil {
				t.Fatal(err)
			}
			os.Remove(target)
			if err := os.Link(filepath.Join(root, src), target); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("tar entry %s has unexpected type %c", h.Name, h.Typeflag)
		}
	}
	return root, headers
}

func safeRel(n string) (string, error) {
	if strings.HasPrefix(n, "/") || slices.Contains(strings.Split(n, "/"), "..") {
		return "", fmt.Errorf("unsafe tar entry name %q", n)
	}
	return path.Clean(n), nil
}

// resolveIn follows p through the symlinks of the tree at root, absolute
// links relative to root, and returns the host path.
func resolveIn(t *testing.T, root, p string) string {
	t.Helper()
	parts := splitPath(p)
	cur := "/"
	for hops := 0; len(parts) > 0; {
		next := path.Join(cur, parts[0])
		fi, err := os.Lstat(filepath.Join(root, next))
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			cur, parts = next, parts[1:]
			continue
		}
		if hops++; hops > 40 {
			t.Fatalf("symlink loop resolving %s", p)
		}
		target, _ := os.Readlink(filepath.Join(root, next))
		from := cur
		if path.IsAbs(target) {
			from = "/"
		}
		parts, cur = append(splitPath(path.Join(from, target)), parts[1:]...), "/"
	}
	return filepath.Join(root, cur)
}

// rootRunner runs the image's programs (absolute paths in the image) in
// the unpacked tree at root, with the image's env, as the image's user:
// chrooted when the test runs as root; otherwise through the image's own
// dynamic loader with the image's library directories.
type rootRunner struct {
	t      *testing.T
	root   string
	config v1.Config
	chroot bool
}

func newRootRunner(t *testing.T, root string, img v1.Image) *rootRunner {
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return &rootRunner{t: t, root: root, config: cf.Config, chroot: os.Geteuid() == 0}
}

// path is how the program sees the image path p.
func (r *rootRunner) path(p string) string {
	if r.chroot {
		return p
	}
	return filepath.Join(r.root, p)
}

func (r *rootRunner) command(args ...string) *exec.Cmd {
	t := r.t
	var env []string
	for _, kv := range r.config.Env {
		if k, v, _ := strings.Cut(kv, "="); k == "MODELSHIP_ORT_LIB" {
			kv = k + "=" + r.path(v)
		}
		env = append(env, kv)
	}
	if r.chroot {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: r.root}
		if u := r.config.User; u != "" {
			uid, err := strconv.Atoi(u)
			if err != nil {
				t.Fatalf("image user %q is not numeric", u)
			}
			cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}
		}
		cmd.Dir = "/"
		cmd.Env = env
		return cmd
	}
	f, err := elf.Open(resolveIn(t, r.root, args[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	interp := "/lib64/ld-linux-x86-64.so.2"
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			p.ReadAt(b, 0)
			interp = strings.TrimRight(string(b), "\x00")
		}
	}
	var dirs []string
	for _, d := range systemLibDirs(arches[hostArch].triplet) {
		if fi, err := os.Stat(resolveIn(t, r.root, d)); err == nil && fi.IsDir() {
			dirs = append(dirs, resolveIn(t, r.root, d))
		}
	}
	all := append([]string{"--library-path", strings.Join(dirs, ":"), resolveIn(t, r.root, args[0])}, args[1:]...)
	cmd := exec.Command(resolveIn(t, r.root, interp), all...)
	cmd.Env = env
	return cmd
}

// hostArch is the architecture images are built for by default.
var hostArch = runtime.GOARCH

func (r *rootRunner) run(args ...string) string {
	r.t.Helper()
	out, err := r.command(args...).CombinedOutput()
	if err != nil {
		r.t.Fatalf("%s in the image: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// layerFiles reads the last layer of img: modelship's layer.
func layerFiles(t *testing.T, img v1.Image) map[string]*tar.Header {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[len(layers)-1].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out["/"+strings.TrimSuffix(h.Name, "/")] = h
	}
}

func TestBuildPushPullRun(t *testing.T) {
	ctx := context.Background()
	reg := startRegistry(t)
	ort := ortLib(t)
	start := time.Now()
	res, err := BuildReport(ctx, Options{Binary: testBin, ONNXRuntime: ort})
	if err != nil {
		t.Fatal(err)
	}
	d, err := Push(ctx, res.Image, reg+"/modelship:test", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built and pushed %s in %v: layer %d bytes compressed, %d uncompressed", d, time.Since(start).Round(time.Millisecond), res.LayerSize, res.LayerUncompressed)
	want, _ := res.Image.Digest()
	if d.DigestStr() != want.String() {
		t.Fatalf("pushed digest %s, built %s", d.DigestStr(), want)
	}
	img := pull(t, d.String())
	if got, _ := img.Digest(); got != want {
		t.Fatalf("pulled digest %s, want %s", got, want)
	}
	if mt, _ := img.MediaType(); mt != types.OCIManifestSchema1 {
		t.Errorf("manifest media type %s, want OCI", mt)
	}

	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if !slices.Equal(c.Entrypoint, []string{"/usr/local/bin/modelship"}) || !slices.Equal(c.Cmd, []string{"serve-model"}) ||
		c.User != "65532" || c.WorkingDir != "/" || c.Labels[VersionLabel] != testVersion {
		t.Errorf("config: entrypoint %q cmd %q user %q workdir %q labels %v", c.Entrypoint, c.Cmd, c.User, c.WorkingDir, c.Labels)
	}
	if cf.OS != "linux" || cf.Architecture != hostArch || !cf.Created.Time.Equal(Epoch) {
		t.Errorf("config: os %s arch %s created %v", cf.OS, cf.Architecture, cf.Created)
	}
	if !slices.Contains(filepath.SplitList(envValue(c.Env, "PATH")), "/usr/local/bin") {
		t.Errorf("PATH in %q lacks /usr/local/bin, where Kubernetes finds the command modelship", c.Env)
	}

	root, headers := extract(t, img)
	if h := headers["/tmp"]; h == nil || h.Typeflag != tar.TypeDir || h.Mode != 0o1777 {
		t.Errorf("/tmp: %+v, want a directory with mode 1777", h)
	}
	if h := headers["/home/nonroot"]; h == nil || h.Typeflag != tar.TypeDir || h.Uid != 65532 || h.Gid != 65532 {
		t.Errorf("/home/nonroot: %+v, want a directory owned by 65532", h)
	}
	for p, h := range headers {
		if (h.Uid != 0 || h.Gid != 0) && p != "/home/nonroot" || !h.ModTime.Equal(Epoch) {
			t.Errorf("%s: uid %d gid %d mtime %v, want root and %v", p, h.Uid, h.Gid, h.ModTime, Epoch)
		}
	}
	if b, err := os.ReadFile(filepath.Join(root, "etc/passwd")); err != nil || !strings.Contains(string(b), ":65532:65532:") {
		t.Errorf("/etc/passwd: %q %v", b, err)
	}
	if want, err := os.ReadFile(CACertsPath); err == nil {
		if got, err := os.ReadFile(filepath.Join(root, CACertsPath)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("CA certificates not copied: %v", err)
		}
	}

	r := newRootRunner(t, root, img)
	t.Logf("running in the image with chroot=%v", r.chroot)
	if out := r.run(c.Entrypoint[0], "--version"); !strings.Contains(out, "modelship version "+testVersion) {
		t.Errorf("modelship --version in the image printed %q", out)
	}

	if ort == ONNXRuntimeNone {
		if envValue(c.Env, "MODELSHIP_ORT_LIB") != "" {
			t.Errorf("MODELSHIP_ORT_LIB set without ONNX Runtime: %q", c.Env)
		}
		return
	}
	lib := envValue(c.Env, "MODELSHIP_ORT_LIB")
	if lib != "/usr/local/lib/modelship/onnxruntime/"+filepath.Base(ort) {
		t.Fatalf("MODELSHIP_ORT_LIB = %q", lib)
	}
	t.Run("ONNXRuntimeDeps", func(t *testing.T) {
		if !r.chroot {
			t.Skip("needs root for chroot: ld.so --list outside a chroot resolves against the host")
		}
		out := r.run("/lib64/ld-linux-x86-64.so.2", "--list", lib)
		if strings.Contains(out, "not found") || !strings.Contains(out, "libstdc++.so.6 => ") {
			t.Errorf("ld.so --list %s in the image:\n%s", lib, out)
		}
	})
	t.Run("ServeONNXModel", func(t *testing.T) {
		serveONNX(t, r)
	})
}

// serveONNX runs `serve-model` on the digits example's ONNX model in the
// image and scores it through ONNX Runtime.
func serveONNX(t *testing.T, r *rootRunner) {
	model, err := os.ReadFile("../examples/onnx-digits/model.onnx")
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile("../examples/onnx-digits/sample-infer.json")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(r.root, "models", "digits")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "model.onnx"), model, 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	cmd := r.command(r.config.Entrypoint[0], "serve-model", "--model-dir", r.path("/models/digits"), "--model-name", "digits",
		"--host", "127.0.0.1", "--port", port)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	url := "http://127.0.0.1:" + port
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-done:
			t.Fatalf("serve-model exited: %v\n%s", err, log.String())
		default:
		}
		if resp, err := http.Get(url + "/v2/models/digits/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve-model not ready after 60s:\n%s", log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	resp, err := http.Post(url+"/v2/models/digits/infer", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(out), `"outputs"`) {
		t.Fatalf("infer = %d %s\nlog:\n%s", resp.StatusCode, out, log.String())
	}
	t.Logf("infer in the image: %.200s", out)
}

func TestDeterministic(t *testing.T) {
	ctx := context.Background()
	ort := ortLib(t)
	digest := func(bin string) v1.Hash {
		t.Helper()
		img, err := Build(ctx, Options{Binary: bin, ONNXRuntime: ort})
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	a, b := digest(testBin), digest(testBin)
	if a != b {
		t.Errorf("the same inputs gave %s and %s", a, b)
	}
	// A copy at another path with the same bytes gives the same image; one
	// byte more gives another.
	other := filepath.Join(t.TempDir(), "bin", "modelship")
	os.MkdirAll(filepath.Dir(other), 0o755)
	data, err := os.ReadFile(testBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, data, 0o700); err != nil {
		t.Fatal(err)
	}
	if c := digest(other); c != a {
		t.Errorf("a copy of the binary gave %s, want %s", c, a)
	}
	if err := os.WriteFile(other, append(data, 0), 0o755); err != nil {
		t.Fatal(err)
	}
	if c := digest(other); c == a {
		t.Errorf("a different binary gave the same digest %s", c)
	}
}

// baseImage makes a small base: a marker file, merged-/usr (/lib -> usr/lib)
// with the host's libc (or the file libcSrc) at its multiarch path, an env
// var and a user, in two layers.
func baseImage(t *testing.T, arch, libcSrc string) v1.Image {
	t.Helper()
	triplet := arches[hostArch].triplet
	if libcSrc == "" {
		libcSrc = "/lib/" + triplet + "/libc.so.6"
	}
	libc, err := filepath.EvalSymlinks(libcSrc)
	if err != nil {
		t.Skipf("no multiarch libc on this machine: %v", err)
	}
	libcData, err := os.ReadFile(libc)
	if err != nil {
		t.Fatal(err)
	}
	layer := func(entries ...*tar.Header) v1.Layer {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, h := range entries {
			h.ModTime = Epoch
			if err := tw.WriteHeader(h); err != nil {
				t.Fatal(err)
			}
			if h.Name == "usr/lib/"+triplet+"/libc.so.6" {
				tw.Write(libcData)
			} else if h.Typeflag == tar.TypeReg {
				tw.Write([]byte("base-marker\n"))
			}
		}
		tw.Close()
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	l1 := layer(
		&tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755},
		&tar.Header{Name: "etc/base-marker", Typeflag: tar.TypeReg, Mode: 0o644, Size: 12},
		&tar.Header{Name: "lib", Typeflag: tar.TypeSymlink, Linkname: "usr/lib", Mode: 0o777},
		&tar.Header{Name: "usr/", Typeflag: tar.TypeDir, Mode: 0o755},
		&tar.Header{Name: "usr/lib/", Typeflag: tar.TypeDir, Mode: 0o755},
		&tar.Header{Name: "usr/lib/" + triplet + "/", Typeflag: tar.TypeDir, Mode: 0o755},
	)
	l2 := layer(
		&tar.Header{Name: "usr/lib/" + triplet + "/libc.so.6", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(libcData))},
		&tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777},
	)
	img, err := mutate.AppendLayers(empty.Image, l1, l2)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Config.Env = []string{"PATH=/opt/base/bin:/usr/bin", "BASE_VAR=1"}
	cf.Config.User = "1234"
	cf.Config.WorkingDir = "/app"
	cf.Config.Labels = map[string]string{"base": "yes"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestBaseImage(t *testing.T) {
	ctx := context.Background()
	base := baseImage(t, hostArch, "")
	baseDigest, _ := base.Digest()
	dir := t.TempDir()
	reg := startRegistry(t)
	if _, err := Push(ctx, base, reg+"/python-ish:1", false, nil); err != nil {
		t.Fatal(err)
	}
	if err := WriteLayout(filepath.Join(dir, "layout"), "python-ish:1", base); err != nil {
		t.Fatal(err)
	}
	if err := WriteTarball(filepath.Join(dir, "base.tar"), "python-ish:1", base); err != nil {
		t.Fatal(err)
	}
	ort := ortLib(t)
	var first v1.Hash
	for i, ref := range []string{reg + "/python-ish:1", LayoutPrefix + filepath.Join(dir, "layout"), TarballPrefix + filepath.Join(dir, "base.tar")} {
		res, err := BuildReport(ctx, Options{Binary: testBin, Base: ref, ONNXRuntime: ort})
		if err != nil {
			t.Fatalf("base %s: %v", ref, err)
		}
		if res.BaseDigest != baseDigest.String() {
			t.Errorf("base %s: digest %s, want %s", ref, res.BaseDigest, baseDigest)
		}
		d, _ := res.Image.Digest()
		if i == 0 {
			first = d
			checkOnBase(t, base, res)
		} else if d != first {
			t.Errorf("base %s gave image %s; the registry's copy gave %s", ref, d, first)
		}
	}
}

func checkOnBase(t *testing.T, base v1.Image, res *Result) {
	triplet := arches[hostArch].triplet
	img := res.Image
	bl, _ := base.Layers()
	il, _ := img.Layers()
	if len(il) != len(bl)+1 {
		t.Fatalf("%d layers on a base of %d", len(il), len(bl))
	}
	for i := range bl {
		a, _ := bl[i].Digest()
		b, _ := il[i].Digest()
		if a != b {
			t.Errorf("layer %d is %s, the base's is %s", i, b, a)
		}
	}
	if !slices.Contains(res.FromBase, "/lib/"+triplet+"/libc.so.6") {
		t.Errorf("libc not taken from the base: from base %q", res.FromBase)
	}
	files := layerFiles(t, img)
	for p, h := range files {
		if h.Typeflag == tar.TypeSymlink {
			t.Errorf("modelship's layer on a base has symlink %s -> %s", p, h.Linkname)
		}
	}
	for _, p := range []string{"/lib", "/usr", "/usr/lib", "/tmp", "/etc/passwd", "/usr/lib/" + triplet + "/libc.so.6", "/lib/" + triplet + "/libc.so.6"} {
		if _, ok := files[p]; ok {
			t.Errorf("modelship's layer overwrites the base's %s", p)
		}
	}
	if _, ok := files["/usr/lib/"+triplet+"/ld-linux-x86-64.so.2"]; hostArch == "amd64" && !ok {
		t.Errorf("the loader the base lacks is not in modelship's layer: %v", slices.Sorted(mapsKeys(files)))
	}
	cf, _ := img.ConfigFile()
	c := cf.Config
	if c.User != "1234" || c.WorkingDir != "/app" || envValue(c.Env, "BASE_VAR") != "1" || envValue(c.Env, "PATH") != "/opt/base/bin:/usr/bin:/usr/local/bin" ||
		c.Labels["base"] != "yes" || c.Labels[VersionLabel] != testVersion || !slices.Equal(c.Entrypoint, []string{BinaryPath}) {
		t.Errorf("config on a base: %+v", c)
	}
	root, _ := extract(t, img)
	if b, err := os.ReadFile(filepath.Join(root, "etc/base-marker")); err != nil || string(b) != "base-marker\n" {
		t.Errorf("base marker: %q %v", b, err)
	}
	if fi, err := os.Lstat(filepath.Join(root, "lib")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the base's /lib symlink is gone: %v %v", fi, err)
	}
	r := newRootRunner(t, root, img)
	r.config.User = "" // the base's user 1234 has no rights on the test's files; it is only a config value
	if out := r.run(BinaryPath, "--version"); !strings.Contains(out, testVersion) {
		t.Errorf("--version on the base printed %q", out)
	}
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestOutputs(t *testing.T) {
	img, err := Build(context.Background(), Options{Binary: testBin, ONNXRuntime: ONNXRuntimeNone})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	dir := t.TempDir()

	file := filepath.Join(dir, "img.tar")
	if err := WriteTarball(file, "example.com/ml/modelship:v1", img); err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("example.com/ml/modelship:v1")
	back, err := tarball.ImageFromPath(file, &tag)
	if err != nil {
		t.Fatal(err)
	}
	// A tarball stores the config and the uncompressed layers; the image
	// read back must have the same config and layer contents.
	if got, _ := back.ConfigName(); got != mustConfigName(t, img) {
		t.Errorf("tarball config %s, want %s", got, mustConfigName(t, img))
	}
	if err := WriteTarball(filepath.Join(dir, "x.tar"), "", img); err == nil {
		t.Error("a tarball without a tag was written")
	}

	lay := filepath.Join(dir, "layout")
	for range 2 {
		if err := WriteLayout(lay, "modelship:v1", img); err != nil {
			t.Fatal(err)
		}
	}
	idx, err := layout.ImageIndexFromPath(lay)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := idx.IndexManifest()
	if len(m.Manifests) != 1 || m.Manifests[0].Digest != want || m.Manifests[0].Annotations[RefNameAnnotation] != "modelship:v1" {
		t.Fatalf("layout index after writing twice: %+v", m.Manifests)
	}
	fromLayout, err := idx.Image(want)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := extract(t, fromLayout)
	if out := newRootRunner(t, root, fromLayout).run(BinaryPath, "--version"); !strings.Contains(out, testVersion) {
		t.Errorf("--version from the layout's image printed %q", out)
	}
	bad := filepath.Join(dir, "notlayout")
	os.MkdirAll(bad, 0o755)
	os.WriteFile(filepath.Join(bad, "index.json"), []byte("{"), 0o644)
	if err := WriteLayout(bad, "", img); err == nil || !strings.Contains(err.Error(), "not an OCI layout") {
		t.Errorf("writing into a broken layout: %v", err)
	}
}

func mustConfigName(t *testing.T, img v1.Image) v1.Hash {
	h, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestStaticBinary(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	os.WriteFile(src, []byte("package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"modelship version static-1\") }\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module static\n\ngo 1.22\n"), 0o644)
	bin := filepath.Join(dir, "static")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Chdir(dir) // a relative --binary
	res, err := BuildReport(context.Background(), Options{Binary: "static", ONNXRuntime: ONNXRuntimeNone})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Static || res.Version != "static-1" {
		t.Errorf("static %v version %q", res.Static, res.Version)
	}
	for _, f := range res.Files {
		if f.Kind == "library" || f.Kind == "interpreter" || f.Kind == "symlink" {
			t.Errorf("a static binary got %s %s", f.Kind, f.Path)
		}
	}
	root, _ := extract(t, res.Image)
	r := newRootRunner(t, root, res.Image)
	if !r.chroot {
		t.Skip("running a static binary in the tree needs chroot (root)")
	}
	if out := r.run(BinaryPath); !strings.Contains(out, "static-1") {
		t.Errorf("static binary in the image printed %q", out)
	}
}

func TestBadInputs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	text := filepath.Join(dir, "script.sh")
	os.WriteFile(text, []byte("#!/bin/sh\necho hi\n"), 0o755)
	armBase := baseImage(t, "arm64", "")
	if err := WriteLayout(filepath.Join(dir, "arm"), "", armBase); err != nil {
		t.Fatal(err)
	}
	// A base whose libc.so.6 defines no GLIBC_* versions, like a libc older
	// than the one modelship was linked against.
	oldBase := baseImage(t, hostArch, "/lib/"+arches[hostArch].triplet+"/libgcc_s.so.1")
	if err := WriteLayout(filepath.Join(dir, "old"), "", oldBase); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"NotELF", Options{Binary: text, ONNXRuntime: ONNXRuntimeNone}, "is not an ELF file"},
		{"NoBinary", Options{Binary: filepath.Join(dir, "nope"), ONNXRuntime: ONNXRuntimeNone}, "no such file"},
		{"ORTMissing", Options{Binary: testBin, ONNXRuntime: filepath.Join(dir, "libonnxruntime.so")}, "ONNX Runtime library"},
		{"ORTNotLibrary", Options{Binary: testBin, ONNXRuntime: text}, "ONNX Runtime library"},
		{"ORTIsExecutable", Options{Binary: testBin, ONNXRuntime: testBin}, "not an executable or shared library"},
		{"LayoutMissing", Options{Binary: testBin, ONNXRuntime: ONNXRuntimeNone, Base: LayoutPrefix + filepath.Join(dir, "none")}, "not an OCI layout"},
		{"TarballMissing", Options{Binary: testBin, ONNXRuntime: ONNXRuntimeNone, Base: TarballPrefix + filepath.Join(dir, "none.tar")}, "base image tarball:"},
		{"BadRef", Options{Binary: testBin, ONNXRuntime: ONNXRuntimeNone, Base: "UPPER/Case::x"}, "not a registry reference"},
		{"BaseOtherArch", Options{Binary: testBin, ONNXRuntime: ONNXRuntimeNone, Base: LayoutPrefix + filepath.Join(dir, "arm")}, "no image for linux/" + hostArch},
		{"BaseOldLibc", Options{Binary: testBin, ONNXRuntime: ONNXRuntimeNone, Base: LayoutPrefix + filepath.Join(dir, "old")}, "libc.so.6 lacks GLIBC_"},
		{"PlatformMismatch", Options{Binary: testBin, ONNXRuntime: ONNXRuntimeNone, Platform: &v1.Platform{OS: "linux", Architecture: otherArch()}}, "is for"},
		{"PlatformUnknown", Options{Binary: testBin, ONNXRuntime: ONNXRuntimeNone, Platform: &v1.Platform{OS: "windows", Architecture: "amd64"}}, "not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Build(ctx, tc.opts)
			t.Log(err)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := ParsePlatform("linux/mips"); err == nil || !strings.Contains(err.Error(), "amd64") {
		t.Errorf("ParsePlatform(linux/mips): %v", err)
	}
	if _, err := Push(ctx, empty.Image, "127.0.0.1:1/x:y", false, nil); err == nil {
		t.Error("push to a closed port succeeded")
	}
}

func otherArch() string {
	if hostArch == "arm64" {
		return "amd64"
	}
	return "arm64"
}
