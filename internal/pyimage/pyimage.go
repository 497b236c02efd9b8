// Package pyimage builds a minimal Python base image from the host's own
// Python (e.g. Debian's /usr/bin/python3 with numpy from apt), for tests that
// run score.py services in a real cluster without pulling anything: the
// interpreter, its standard library, the chosen package directories and every
// shared library their ELF files need (as `ldd` resolves them), at the same
// absolute paths as on the host, with the host's symlinks (merged /usr,
// /etc/alternatives) recreated.
package pyimage

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Options say what goes into the image.
type Options struct {
	// Python is the interpreter (default /usr/bin/python3).
	Python string
	// Stdlib is the standard library directory (default /usr/lib/python3.11).
	Stdlib string
	// Packages are package directories copied whole (minus tests and
	// __pycache__), e.g. /usr/lib/python3/dist-packages/numpy.
	Packages []string
	// WorkDir receives the layer file (default os.TempDir()).
	WorkDir string
}

// Report says what the image holds.
type Report struct {
	Files, Symlinks, ELF int
	Uncompressed         int64
	Compressed           int64
	Libraries            []string
}

// stdlibSkip are standard library directories left out.
var stdlibSkip = map[string]bool{"test": true, "idlelib": true, "tkinter": true, "ensurepip": true, "__pycache__": true,
	"lib2to3": true, "turtledemo": true, "site-packages": true, "dist-packages": true}

type entry struct {
	kind     byte // tar.TypeReg, TypeDir, TypeSymlink
	src      string
	linkname string
	mode     int64
	size     int64
}

type tree struct {
	entries map[string]*entry
	elfs    []string
}

// FromHost builds the image.
func FromHost(ctx context.Context, opts Options) (v1.Image, *Report, error) {
	if opts.Python == "" {
		opts.Python = "/usr/bin/python3"
	}
	if opts.Stdlib == "" {
		opts.Stdlib = "/usr/lib/python3.11"
	}
	if opts.WorkDir == "" {
		opts.WorkDir = os.TempDir()
	}
	t := &tree{entries: map[string]*entry{}}
	t.addDir("/tmp", 0o1777)
	if err := t.addChain(opts.Python, 0); err != nil {
		return nil, nil, err
	}
	skipStd := func(rel string, d fs.DirEntry) bool {
		if !d.IsDir() {
			return false
		}
		if stdlibSkip[d.Name()] {
			return true
		}
		return strings.HasPrefix(d.Name(), "config-")
	}
	if err := t.addTree(opts.Stdlib, skipStd); err != nil {
		return nil, nil, err
	}
	skipPkg := func(rel string, d fs.DirEntry) bool {
		return d.IsDir() && (d.Name() == "__pycache__" || d.Name() == "tests")
	}
	for _, p := range opts.Packages {
		if err := t.addTree(p, skipPkg); err != nil {
			return nil, nil, err
		}
	}
	rep := &Report{}
	// Shared libraries of every ELF file, until nothing new turns up.
	done := map[string]bool{}
	for len(t.elfs) > 0 {
		f := t.elfs[0]
		t.elfs = t.elfs[1:]
		if done[f] {
			continue
		}
		done[f] = true
		libs, err := ldd(ctx, f)
		if err != nil {
			return nil, nil, err
		}
		for _, l := range libs {
			if !slices.Contains(rep.Libraries, l) {
				rep.Libraries = append(rep.Libraries, l)
			}
			if err := t.addChain(l, 0); err != nil {
				return nil, nil, err
			}
		}
	}
	slices.Sort(rep.Libraries)

	file := filepath.Join(opts.WorkDir, "pyimage-layer.tar")
	if err := t.writeTar(file, rep); err != nil {
		return nil, nil, err
	}
	layer, err := tarball.LayerFromFile(file, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, nil, err
	}
	if rep.Compressed, err = layer.Size(); err != nil {
		return nil, nil, err
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{CreatedBy: "pyimage from the host's Python"}})
	if err != nil {
		return nil, nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}
	cf.Config.Cmd = []string{"python3"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, nil, err
	}
	return img, rep, nil
}

func (t *tree) addDir(p string, mode int64) {
	if e, ok := t.entries[p]; ok && e.kind == tar.TypeDir {
		return
	}
	t.entries[p] = &entry{kind: tar.TypeDir, mode: mode}
}

// addParents adds p's parent directories (as real directories).
func (t *tree) addParents(p string) {
	for d := path.Dir(p); d != "/" && d != "."; d = path.Dir(d) {
		if _, ok := t.entries[d]; !ok {
			t.entries[d] = &entry{kind: tar.TypeDir, mode: 0o755}
		}
	}
}

// addChain adds host path p: each symlink on the way (in a directory
// component or at the end) becomes a symlink in the image and its target is
// added too; a final directory is added empty, a final file with its
// content.
func (t *tree) addChain(p string, depth int) error {
	if depth > 40 {
		return fmt.Errorf("%s: too many levels of symlinks", p)
	}
	p = path.Clean(p)
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	cur := "/"
	for i, part := range parts {
		next := path.Join(cur, part)
		fi, err := os.Lstat(next)
		if err != nil {
			return err
		}
		last := i == len(parts)-1
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(next)
			if err != nil {
				return err
			}
			if e, ok := t.entries[next]; !ok || e.kind != tar.TypeSymlink {
				t.addParents(next)
				t.entries[next] = &entry{kind: tar.TypeSymlink, linkname: target}
			}
			resolved := target
			if !path.IsAbs(target) {
				resolved = path.Join(cur, target)
			}
			rest := path.Join(append([]string{resolved}, parts[i+1:]...)...)
			return t.addChain(rest, depth+1)
		case fi.IsDir():
			if _, ok := t.entries[next]; !ok {
				t.entries[next] = &entry{kind: tar.TypeDir, mode: int64(fi.Mode().Perm())}
			}
			cur = next
		case fi.Mode().IsRegular():
			if !last {
				return fmt.Errorf("%s: not a directory", next)
			}
			t.addFile(next, fi)
			return nil
		default:
			return fmt.Errorf("%s: not a file, directory or symlink", next)
		}
	}
	return nil
}

func (t *tree) addFile(p string, fi fs.FileInfo) {
	if _, ok := t.entries[p]; ok {
		return
	}
	t.addParents(p)
	t.entries[p] = &entry{kind: tar.TypeReg, src: p, mode: int64(fi.Mode().Perm()), size: fi.Size()}
	if isELF(p) {
		t.elfs = append(t.elfs, p)
	}
}

// addTree adds root and everything under it except what skip says.
func (t *tree) addTree(root string, skip func(rel string, d fs.DirEntry) bool) error {
	if err := t.addChain(root, 0); err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		return err
	}
	return filepath.WalkDir(real, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(real, p)
		if p != real && skip(rel, d) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			return t.addChain(p, 0)
		case d.IsDir():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			t.addDir(p, int64(fi.Mode().Perm()))
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			t.addFile(p, fi)
		}
		return nil
	})
}

func isELF(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [4]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return false
	}
	return bytes.Equal(b[:], []byte("\x7fELF"))
}

// ldd lists the shared libraries (and the loader) of an ELF file.
func ldd(ctx context.Context, p string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ldd", p).Output()
	if err != nil {
		// "not a dynamic executable" (static files) exits 1.
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 1 {
			return nil, nil
		}
		return nil, fmt.Errorf("ldd %s: %w", p, err)
	}
	var libs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.Contains(line, "not found") {
			return nil, fmt.Errorf("ldd %s: %s", p, line)
		}
		var lib string
		if _, after, ok := strings.Cut(line, "=> "); ok {
			lib, _, _ = strings.Cut(after, " (")
		} else if strings.HasPrefix(line, "/") {
			lib, _, _ = strings.Cut(line, " (")
		}
		if lib = strings.TrimSpace(lib); strings.HasPrefix(lib, "/") {
			libs = append(libs, lib)
		}
	}
	return libs, nil
}

// writeTar writes the layer, parents before children.
func (t *tree) writeTar(file string, rep *Report) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	tw := tar.NewWriter(bw)
	mt := time.Unix(0, 0).UTC()
	paths := make([]string, 0, len(t.entries))
	for p := range t.entries {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		e := t.entries[p]
		h := &tar.Header{Name: strings.TrimPrefix(p, "/"), Typeflag: e.kind, Mode: e.mode, ModTime: mt, Format: tar.FormatPAX}
		switch e.kind {
		case tar.TypeDir:
			h.Name += "/"
		case tar.TypeSymlink:
			h.Linkname, h.Mode = e.linkname, 0o777
			rep.Symlinks++
		case tar.TypeReg:
			h.Size = e.size
			rep.Files++
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if e.kind == tar.TypeReg {
			src, err := os.Open(e.src)
			if err != nil {
				return err
			}
			n, err := io.Copy(tw, src)
			src.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", e.src, err)
			}
			if n != e.size {
				return fmt.Errorf("%s changed size while copying", e.src)
			}
			if isELF(e.src) {
				rep.ELF++
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	rep.Uncompressed = fi.Size()
	return f.Close()
}
