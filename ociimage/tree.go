package ociimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Epoch is the modification time of every entry of modelship's layer and
// the creation time of an image built from scratch, so that the same
// inputs give the same digest.
var Epoch = time.Unix(0, 0).UTC()

type entryKind int

const (
	kindDir entryKind = iota
	kindFile
	kindSymlink
)

// entry is one path of the layer being built.
type entry struct {
	kind     entryKind
	mode     int64
	linkname string // kindSymlink
	src      string // kindFile: host file to copy
	data     []byte // kindFile: contents when src is empty
	size     int64
	role     string // what the file is, for the report
	uid      int    // owner (and group); 0 for everything but a home
}

// tree is the content of modelship's layer, keyed by clean absolute path.
// On a base image, base is the base's flattened file list: paths are placed
// through the base's symlinks, and directories the base has get no entry.
type tree struct {
	entries map[string]*entry
	base    *fsView
}

func newTree(base *fsView) *tree {
	return &tree{entries: map[string]*entry{}, base: base}
}

// mkdirAll makes sure every parent of p up to p itself is a directory.
func (t *tree) mkdirAll(p string) error {
	if p == "/" {
		return nil
	}
	if err := t.mkdirAll(path.Dir(p)); err != nil {
		return err
	}
	if e, ok := t.entries[p]; ok {
		if e.kind != kindDir {
			return fmt.Errorf("image path %s is needed as a directory but is already a %s", p, kindName(e.kind))
		}
		return nil
	}
	if t.base != nil {
		if e, ok := t.base.entries[p]; ok {
			if e.kind != kindDir {
				return fmt.Errorf("image path %s is needed as a directory but the base image has a %s there", p, kindName(e.kind))
			}
			return nil
		}
	}
	t.entries[p] = &entry{kind: kindDir, mode: 0o755}
	return nil
}

func kindName(k entryKind) string {
	switch k {
	case kindDir:
		return "directory"
	case kindSymlink:
		return "symlink"
	}
	return "file"
}

// place returns where p lands: itself from scratch, or p resolved through
// the base image's symlinks.
func (t *tree) place(p string) (string, error) {
	if t.base == nil {
		return p, nil
	}
	dest, _, err := t.base.resolve(p)
	return dest, err
}

// addFile adds the host file src (or data when src is empty) at p.
func (t *tree) addFile(p, src string, data []byte, mode int64, role string) error {
	p, err := t.place(p)
	if err != nil {
		return err
	}
	size := int64(len(data))
	if src != "" {
		fi, err := os.Stat(src)
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", src)
		}
		size = fi.Size()
		if mode == 0 {
			mode = 0o644
			if fi.Mode().Perm()&0o111 != 0 {
				mode = 0o755
			}
		}
	}
	if e, ok := t.entries[p]; ok {
		if e.kind == kindFile && e.src == src && src != "" {
			return nil
		}
		return fmt.Errorf("image path %s is added twice (%s and %s)", p, e.src, src)
	}
	if err := t.mkdirAll(path.Dir(p)); err != nil {
		return err
	}
	t.entries[p] = &entry{kind: kindFile, mode: mode, src: src, data: data, size: size, role: role}
	return nil
}

// addDir adds a directory with the given mode and owner (for /tmp and the
// non-root user's home).
func (t *tree) addDir(p string, mode int64, uid int) error {
	if err := t.mkdirAll(p); err != nil {
		return err
	}
	if e, ok := t.entries[p]; ok {
		e.mode, e.uid = mode, uid
	}
	return nil
}

func (t *tree) addSymlink(p, target, role string) error {
	if e, ok := t.entries[p]; ok {
		if e.kind == kindSymlink && e.linkname == target {
			return nil
		}
		return fmt.Errorf("image path %s is needed as a symlink to %s but is already a %s", p, target, kindName(e.kind))
	}
	if err := t.mkdirAll(path.Dir(p)); err != nil {
		return err
	}
	t.entries[p] = &entry{kind: kindSymlink, mode: 0o777, linkname: target, role: role}
	return nil
}

// mirror copies the host path p into the tree at the same path, with every
// symlink met on the way (the soname link, /lib -> usr/lib, ...) reproduced
// as a symlink, and the real file at the end. Used when building from
// scratch, where the image's layout is the host's.
func (t *tree) mirror(p, role string) error {
	parts := splitPath(p)
	cur := "/"
	for hops := 0; len(parts) > 0; {
		next := path.Join(cur, parts[0])
		fi, err := os.Lstat(next)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			if hops++; hops > 40 {
				return fmt.Errorf("too many levels of symlinks resolving %s", p)
			}
			target, err := os.Readlink(next)
			if err != nil {
				return err
			}
			if err := t.addSymlink(next, target, "symlink"); err != nil {
				return err
			}
			from := cur
			if path.IsAbs(target) {
				from = "/"
			}
			parts = append(splitPath(path.Join(from, target)), parts[1:]...)
			cur = "/"
		case fi.IsDir():
			if err := t.mkdirAll(next); err != nil {
				return err
			}
			cur, parts = next, parts[1:]
		case fi.Mode().IsRegular() && len(parts) == 1:
			return t.addFile(next, next, nil, 0, role)
		default:
			return fmt.Errorf("resolving %s: %s is not a directory", p, next)
		}
	}
	return fmt.Errorf("%s is a directory, not a file", p)
}

func splitPath(p string) []string {
	var parts []string
	for _, s := range strings.Split(path.Clean("/"+p), "/") {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return parts
}

// writeTar writes the tree as a tar stream: entries sorted by path, owned
// by root, with Epoch as their time, so that equal trees give equal bytes.
func (t *tree) writeTar(w io.Writer) error {
	paths := make([]string, 0, len(t.entries))
	for p := range t.entries {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	tw := tar.NewWriter(w)
	for _, p := range paths {
		e := t.entries[p]
		h := &tar.Header{Name: strings.TrimPrefix(p, "/"), Mode: e.mode, Uid: e.uid, Gid: e.uid, ModTime: Epoch, Format: tar.FormatPAX}
		switch e.kind {
		case kindDir:
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		case kindSymlink:
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.linkname
		case kindFile:
			h.Typeflag, h.Size = tar.TypeReg, e.size
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if e.kind != kindFile {
			continue
		}
		if e.src == "" {
			if _, err := tw.Write(e.data); err != nil {
				return err
			}
			continue
		}
		if err := copyFile(tw, e.src, e.size); err != nil {
			return err
		}
	}
	return tw.Close()
}

func copyFile(w io.Writer, src string, size int64) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(w, io.LimitReader(f, size+1))
	if err != nil {
		return fmt.Errorf("reading %s: %w", src, err)
	}
	if n != size {
		return fmt.Errorf("%s changed size while the image was built", src)
	}
	return nil
}

// tarBytes returns the layer's uncompressed tar.
func (t *tree) tarBytes() ([]byte, error) {
	var buf bytes.Buffer
	if err := t.writeTar(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// fsView is a read-only file list: the base image's flattened filesystem.
type fsView struct {
	entries map[string]*entry
}

// resolve follows p through the view's symlinks. It returns the final path
// (the rest of p appended literally from the first missing component) and
// the entry there, nil when missing.
func (v *fsView) resolve(p string) (string, *entry, error) {
	parts := splitPath(p)
	cur := "/"
	hops := 0
	for len(parts) > 0 {
		next := path.Join(cur, parts[0])
		e, ok := v.entries[next]
		if !ok {
			return path.Join(append([]string{next}, parts[1:]...)...), nil, nil
		}
		switch {
		case e.kind == kindSymlink:
			if hops++; hops > 40 {
				return "", nil, fmt.Errorf("too many levels of symlinks in the base image resolving %s", p)
			}
			from := cur
			if path.IsAbs(e.linkname) {
				from = "/"
			}
			parts = append(splitPath(path.Join(from, e.linkname)), parts[1:]...)
			cur = "/"
		case len(parts) == 1:
			return next, e, nil
		case e.kind != kindDir:
			return "", nil, fmt.Errorf("the base image has a file at %s where %s needs a directory", next, p)
		default:
			cur, parts = next, parts[1:]
		}
	}
	return cur, &entry{kind: kindDir}, nil
}

// providesFile reports whether p resolves to a regular file in the view.
func (v *fsView) providesFile(p string) bool {
	_, e, err := v.resolve(p)
	return err == nil && e != nil && e.kind == kindFile
}

// readView reads a flattened image filesystem (a tar stream from
// mutate.Extract) into a file list. Regular files whose base name keep
// accepts keep their contents (for checking library versions).
func readView(r io.Reader, keep func(name string) bool) (*fsView, error) {
	v := &fsView{entries: map[string]*entry{"/": {kind: kindDir}}}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading the base image's files: %w", err)
		}
		p := path.Clean("/" + filepath.ToSlash(h.Name))
		var e *entry
		switch h.Typeflag {
		case tar.TypeDir:
			e = &entry{kind: kindDir}
		case tar.TypeSymlink:
			e = &entry{kind: kindSymlink, linkname: h.Linkname}
		case tar.TypeReg:
			e = &entry{kind: kindFile, size: h.Size}
			if keep != nil && keep(path.Base(p)) && h.Size < 64<<20 {
				if e.data, err = io.ReadAll(tr); err != nil {
					return nil, fmt.Errorf("reading the base image's %s: %w", p, err)
				}
			}
		case tar.TypeLink:
			e = &entry{kind: kindFile}
		default:
			e = &entry{kind: kindFile} // devices, fifos: "something is there"
		}
		v.entries[p] = e
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if _, ok := v.entries[d]; ok {
				break
			}
			v.entries[d] = &entry{kind: kindDir}
		}
	}
	return v, nil
}
