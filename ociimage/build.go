// Package ociimage builds the OCI image Kubernetes pods run (model-server
// replicas running `modelship serve-model` and the in-cluster front end
// running `modelship gateway`) without Docker: the modelship binary, the
// shared libraries it and ONNX Runtime need, CA certificates and a /tmp, in
// one layer on top of scratch or of a user's base image (a Python
// environment for score.py services).
package ociimage

import (
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/modelship/modelship/modelserver/onnx"
)

// Paths and settings inside the image.
const (
	BinaryPath      = "/usr/local/bin/modelship"
	ONNXRuntimeDir  = "/usr/local/lib/modelship/onnxruntime"
	CACertsPath     = "/etc/ssl/certs/ca-certificates.crt"
	NonRootUser     = "65532"
	DefaultPath     = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	VersionLabel    = "org.opencontainers.image.version"
	ONNXRuntimeNone = "none"
)

// Base image reference prefixes besides a registry reference.
const (
	LayoutPrefix  = "oci-layout:"
	TarballPrefix = "tarball:"
)

// Options say what to build.
type Options struct {
	// Binary is the modelship binary to put in the image; empty means the
	// running executable.
	Binary string
	// Base is the image modelship's layer goes on: empty for scratch, a
	// registry reference, oci-layout:DIR or tarball:FILE.
	Base string
	// ONNXRuntime is the ONNX Runtime shared library to include: empty for
	// the one the server finds (onnx.DefaultLibraryPath; an error when it
	// is missing), "none" to build without ONNX Runtime.
	ONNXRuntime string
	// Platform is the image's platform; nil means linux and the host's
	// architecture. The binary must be of that architecture.
	Platform *v1.Platform
	// Version is the value of the org.opencontainers.image.version label;
	// empty means what `<Binary> --version` prints.
	Version string
	// Insecure allows pulling a registry base image over plain HTTP.
	Insecure bool
	// Keychain authenticates to the base image's registry; nil means
	// authn.DefaultKeychain (docker config, credential helpers).
	Keychain authn.Keychain
}

// File is one path of modelship's layer, for the build report.
type File struct {
	Path   string `json:"path"`
	Kind   string `json:"kind"` // binary, onnxruntime, interpreter, library, symlink, ca-certificates, passwd, group, directory
	Source string `json:"source,omitempty"`
	Target string `json:"target,omitempty"` // symlinks
	Size   int64  `json:"size,omitempty"`
}

// Result is a built image and what went into it.
type Result struct {
	Image v1.Image `json:"-"`
	// Base is the base reference, empty for scratch; BaseDigest its digest.
	Base       string `json:"base,omitempty"`
	BaseDigest string `json:"baseDigest,omitempty"`
	Platform   string `json:"platform"`
	Version    string `json:"version"`
	// Static is true when the binary needs no shared libraries.
	Static bool `json:"static"`
	// ONNXRuntime is the image path of the ONNX Runtime library, empty when
	// omitted.
	ONNXRuntime string `json:"onnxRuntime,omitempty"`
	// Files are the layer's files and symlinks, sorted by path.
	Files []File `json:"files"`
	// FromBase are the library paths the loader will find in the base
	// image, which modelship's layer therefore does not carry.
	FromBase []string `json:"fromBase,omitempty"`
	// LayerSize and LayerUncompressed are the sizes of modelship's layer.
	LayerSize         int64    `json:"layerSize"`
	LayerUncompressed int64    `json:"layerUncompressedSize"`
	Env               []string `json:"env"`
}

// Build builds the image.
func Build(ctx context.Context, opts Options) (v1.Image, error) {
	res, err := BuildReport(ctx, opts)
	if err != nil {
		return nil, err
	}
	return res.Image, nil
}

// archInfo is what an architecture's binaries look like.
type archInfo struct {
	machine elf.Machine
	triplet string
}

var arches = map[string]archInfo{
	"amd64":   {elf.EM_X86_64, "x86_64-linux-gnu"},
	"arm64":   {elf.EM_AARCH64, "aarch64-linux-gnu"},
	"ppc64le": {elf.EM_PPC64, "powerpc64le-linux-gnu"},
	"s390x":   {elf.EM_S390, "s390x-linux-gnu"},
	"riscv64": {elf.EM_RISCV, "riscv64-linux-gnu"},
}

// ParsePlatform parses os/arch[/variant].
func ParsePlatform(s string) (*v1.Platform, error) {
	p, err := v1.ParsePlatform(s)
	if err != nil {
		return nil, err
	}
	if p.OS != "linux" {
		return nil, fmt.Errorf("platform %q: only linux images can be built", s)
	}
	if _, ok := arches[p.Architecture]; !ok {
		return nil, fmt.Errorf("platform %q: architecture %q is not supported (use one of %s)", s, p.Architecture, strings.Join(slices.Sorted(maps.Keys(arches)), ", "))
	}
	return p, nil
}

// BuildReport builds the image and reports what it holds.
func BuildReport(ctx context.Context, opts Options) (*Result, error) {
	plat := opts.Platform
	if plat == nil {
		plat = &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	}
	arch, ok := arches[plat.Architecture]
	if !ok || plat.OS != "linux" {
		return nil, fmt.Errorf("platform %s is not supported: only linux on %s", plat, strings.Join(slices.Sorted(maps.Keys(arches)), ", "))
	}
	bin := opts.Binary
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("finding the running modelship binary: %w", err)
		}
		bin = exe
	}
	binReal, err := filepath.EvalSymlinks(bin)
	if err == nil {
		binReal, err = filepath.Abs(binReal)
	}
	if err != nil {
		return nil, fmt.Errorf("binary: %w", err)
	}
	if err := checkELF(binReal, arch.machine, "binary", elf.ET_EXEC, elf.ET_DYN); err != nil {
		return nil, err
	}

	res := &Result{Platform: plat.String(), Base: opts.Base}

	// ONNX Runtime.
	ort := opts.ONNXRuntime
	defaulted := ort == ""
	if defaulted {
		ort = onnx.DefaultLibraryPath()
	}
	var ortReal, ortImage string
	if ort != ONNXRuntimeNone {
		ortReal, err = filepath.EvalSymlinks(ort)
		if err == nil {
			ortReal, err = filepath.Abs(ortReal)
		}
		if err != nil {
			if defaulted {
				return nil, fmt.Errorf("ONNX Runtime library not found at %s (where the server looks for it); run scripts/setup.sh, or give its path, or build without it with ONNX Runtime %q", ort, ONNXRuntimeNone)
			}
			return nil, fmt.Errorf("ONNX Runtime library: %w", err)
		}
		if err := checkELF(ortReal, arch.machine, "ONNX Runtime library", elf.ET_DYN); err != nil {
			return nil, err
		}
		ortImage = path.Join(ONNXRuntimeDir, filepath.Base(ort))
		res.ONNXRuntime = ortImage
	}

	// Shared libraries.
	deps := newDepResolver(arch.machine, elf.ELFCLASS64, arch.triplet)
	if err := deps.add(binReal, path.Dir(BinaryPath)); err != nil {
		return nil, fmt.Errorf("resolving the shared libraries of the binary: %w", err)
	}
	res.Static = len(deps.objs) == 0
	if ortReal != "" {
		if err := deps.add(ortReal, ONNXRuntimeDir); err != nil {
			return nil, fmt.Errorf("resolving the shared libraries of ONNX Runtime: %w", err)
		}
	}

	// The base image and its file list.
	var base v1.Image
	var view *fsView
	if opts.Base != "" {
		base, err = LoadBase(ctx, opts.Base, *plat, opts.Insecure, opts.Keychain)
		if err != nil {
			return nil, err
		}
		d, err := base.Digest()
		if err != nil {
			return nil, fmt.Errorf("base image %s: %w", opts.Base, err)
		}
		res.BaseDigest = d.String()
		cf, err := base.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("base image %s: reading its config: %w", opts.Base, err)
		}
		if cf.OS != "" && cf.Architecture != "" && (cf.OS != plat.OS || cf.Architecture != plat.Architecture) {
			return nil, fmt.Errorf("base image %s is for %s/%s, not %s", opts.Base, cf.OS, cf.Architecture, plat)
		}
		rc := mutate.Extract(base)
		view, err = readView(rc, keepLibs(deps.objs))
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("base image %s: %w", opts.Base, err)
		}
	}

	if view != nil {
		if err := checkBaseVersions(view, binReal, ortReal, deps.objs); err != nil {
			return nil, fmt.Errorf("base image %s: %w", opts.Base, err)
		}
	}

	t := newTree(view)
	if err := t.addFile(BinaryPath, binReal, nil, 0o755, "binary"); err != nil {
		return nil, err
	}
	if ortReal != "" {
		if err := t.addFile(ortImage, ortReal, nil, 0o755, "onnxruntime"); err != nil {
			return nil, err
		}
	}
	var libDirs []string
	for _, o := range deps.objs {
		role := "library"
		if o.Interp {
			role = "interpreter"
		}
		if view != nil && view.providesFile(o.ImagePath) {
			res.FromBase = append(res.FromBase, o.ImagePath)
			continue
		}
		real, err := filepath.EvalSymlinks(o.HostPath)
		if err != nil {
			return nil, err
		}
		if view == nil && o.Mirror {
			err = t.mirror(o.HostPath, role)
		} else {
			err = t.addFile(o.ImagePath, real, nil, 0, role)
		}
		if err != nil {
			return nil, err
		}
		if !o.Interp {
			libDirs = appendNew(libDirs, path.Dir(o.ImagePath))
		}
	}
	if _, err := os.Stat(CACertsPath); err == nil && (view == nil || !view.providesFile(CACertsPath)) {
		real, err := filepath.EvalSymlinks(CACertsPath)
		if err != nil {
			return nil, err
		}
		if err := t.addFile(CACertsPath, real, nil, 0o644, "ca-certificates"); err != nil {
			return nil, err
		}
	}
	if view == nil {
		if err := t.addDir("/tmp", 0o1777, 0); err != nil {
			return nil, err
		}
		if err := t.addDir("/home/nonroot", 0o755, 65532); err != nil {
			return nil, err
		}
		if err := t.addFile("/etc/passwd", "", []byte(passwd), 0o644, "passwd"); err != nil {
			return nil, err
		}
		if err := t.addFile("/etc/group", "", []byte(group), 0o644, "group"); err != nil {
			return nil, err
		}
	} else if _, e, err := view.resolve("/tmp"); err == nil && e == nil {
		if err := t.addDir("/tmp", 0o1777, 0); err != nil {
			return nil, err
		}
	}

	// The layer.
	raw, err := t.tarBytes()
	if err != nil {
		return nil, err
	}
	res.LayerUncompressed = int64(len(raw))
	layerType := types.OCILayer
	if base != nil {
		if mt, err := base.MediaType(); err == nil && mt == types.DockerManifestSchema2 {
			layerType = types.DockerLayer
		}
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	}, tarball.WithMediaType(layerType), tarball.WithCompressedCaching)
	if err != nil {
		return nil, err
	}
	if res.LayerSize, err = layer.Size(); err != nil {
		return nil, err
	}

	// The image.
	img := base
	if img == nil {
		img = mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	}
	version := opts.Version
	if version == "" {
		version = binaryVersion(ctx, binReal)
	}
	res.Version = version
	created := Epoch
	if base != nil {
		if cf, err := base.ConfigFile(); err == nil && !cf.Created.IsZero() {
			created = cf.Created.UTC()
		}
	}
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{
		Created:   v1.Time{Time: created},
		CreatedBy: "modelship image build",
		Comment:   "modelship " + version,
	}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: created}
	cf.OS, cf.Architecture, cf.Variant = plat.OS, plat.Architecture, plat.Variant
	cf.Config.Entrypoint = []string{BinaryPath}
	cf.Config.Cmd = []string{"serve-model"}
	if base == nil {
		cf.Config.User = NonRootUser
	}
	if cf.Config.WorkingDir == "" {
		cf.Config.WorkingDir = "/"
	}
	env := cf.Config.Env
	// Kubernetes runs the command "modelship" through the image's PATH.
	if p := envValue(env, "PATH"); p == "" {
		env = setEnv(env, "PATH", DefaultPath)
	} else if !slices.Contains(filepath.SplitList(p), path.Dir(BinaryPath)) {
		env = setEnv(env, "PATH", p+":"+path.Dir(BinaryPath))
	}
	if ortImage != "" {
		env = setEnv(env, "MODELSHIP_ORT_LIB", ortImage)
	}
	if base == nil {
		// Without an ld.so.cache the loader searches only its system
		// directories; libraries found elsewhere on the host need
		// LD_LIBRARY_PATH.
		var extra []string
		sys := systemLibDirs(arch.triplet)
		for _, d := range libDirs {
			if !slices.Contains(sys, d) {
				extra = append(extra, d)
			}
		}
		if len(extra) > 0 {
			env = setEnv(env, "LD_LIBRARY_PATH", strings.Join(extra, ":"))
		}
	}
	cf.Config.Env = env
	res.Env = env
	if cf.Config.Labels == nil {
		cf.Config.Labels = map[string]string{}
	}
	cf.Config.Labels[VersionLabel] = version
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	res.Image = img

	for _, p := range slices.Sorted(maps.Keys(t.entries)) {
		e := t.entries[p]
		switch e.kind {
		case kindFile:
			res.Files = append(res.Files, File{Path: p, Kind: e.role, Source: e.src, Size: e.size})
		case kindSymlink:
			res.Files = append(res.Files, File{Path: p, Kind: "symlink", Target: e.linkname})
		}
	}
	return res, nil
}

const (
	passwd = "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	group  = "root:x:0:\nnonroot:x:65532:\n"
)

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

func envValue(env []string, k string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, k+"="); ok {
			return v
		}
	}
	return ""
}

func setEnv(env []string, k, v string) []string {
	out := slices.Clone(env)
	for i, kv := range out {
		if strings.HasPrefix(kv, k+"=") {
			out[i] = k + "=" + v
			return out
		}
	}
	return append(out, k+"="+v)
}

// checkELF fails unless p is an ELF file of the machine and one of types.
func checkELF(p string, machine elf.Machine, what string, types ...elf.Type) error {
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("%s %s is not an ELF file for Linux: %w", what, p, err)
	}
	defer f.Close()
	if f.Machine != machine {
		return fmt.Errorf("%s %s is for %s, not %s", what, p, f.Machine, machine)
	}
	if f.Class != elf.ELFCLASS64 {
		return fmt.Errorf("%s %s is not a 64-bit ELF file", what, p)
	}
	if !slices.Contains(types, f.Type) {
		return fmt.Errorf("%s %s is an ELF %s, not an executable or shared library", what, p, f.Type)
	}
	return nil
}

var versionRE = regexp.MustCompile(`version (\S+)`)

// binaryVersion asks the binary for its version ("modelship version X").
func binaryVersion(ctx context.Context, bin string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if m := versionRE.FindSubmatch(out); err == nil && m != nil {
		return string(m[1])
	}
	return "unknown"
}

// LoadBase opens a base image: oci-layout:DIR (the image of plat in the
// layout's index), tarball:FILE (a docker save / tarball.Write file with
// one image) or a registry reference.
func LoadBase(ctx context.Context, ref string, plat v1.Platform, insecure bool, kc authn.Keychain) (v1.Image, error) {
	switch {
	case strings.HasPrefix(ref, LayoutPrefix):
		dir := strings.TrimPrefix(ref, LayoutPrefix)
		idx, err := layout.ImageIndexFromPath(dir)
		if err != nil {
			return nil, fmt.Errorf("base image %s: not an OCI layout directory: %w", ref, err)
		}
		img, err := pickImage(idx, plat)
		if err != nil {
			return nil, fmt.Errorf("base image %s: %w", ref, err)
		}
		return img, nil
	case strings.HasPrefix(ref, TarballPrefix):
		file := strings.TrimPrefix(ref, TarballPrefix)
		img, err := tarball.ImageFromPath(file, nil)
		if err != nil {
			return nil, fmt.Errorf("base image %s: %w", ref, err)
		}
		return img, nil
	}
	var nopts []name.Option
	if insecure {
		nopts = append(nopts, name.Insecure)
	}
	r, err := name.ParseReference(ref, nopts...)
	if err != nil {
		return nil, fmt.Errorf("base image %q is not a registry reference, %sDIR or %sFILE: %w", ref, LayoutPrefix, TarballPrefix, err)
	}
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	img, err := remote.Image(r, remote.WithContext(ctx), remote.WithAuthFromKeychain(kc), remote.WithPlatform(plat))
	if err != nil {
		return nil, fmt.Errorf("pulling base image %s: %w", ref, err)
	}
	return img, nil
}

// pickImage finds the one image for plat in an index (descending into
// nested indexes); an image without a platform matches any.
func pickImage(idx v1.ImageIndex, plat v1.Platform) (v1.Image, error) {
	var found []v1.Image
	var walk func(v1.ImageIndex) error
	walk = func(idx v1.ImageIndex) error {
		m, err := idx.IndexManifest()
		if err != nil {
			return err
		}
		for _, d := range m.Manifests {
			switch {
			case d.MediaType.IsIndex():
				child, err := idx.ImageIndex(d.Digest)
				if err != nil {
					return err
				}
				if err := walk(child); err != nil {
					return err
				}
			case d.MediaType.IsImage():
				if d.Platform != nil && !d.Platform.Satisfies(plat) {
					continue
				}
				img, err := idx.Image(d.Digest)
				if err != nil {
					return err
				}
				if d.Platform == nil {
					if cf, err := img.ConfigFile(); err == nil && cf.Architecture != "" && (cf.OS != plat.OS || cf.Architecture != plat.Architecture) {
						continue
					}
				}
				found = append(found, img)
			}
		}
		return nil
	}
	if err := walk(idx); err != nil {
		return nil, err
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("it holds no image for %s", plat.String())
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("it holds %d images for %s; keep one", len(found), plat.String())
}
