package ociimage

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// elfObject is one dynamically linked file the image needs: where the
// dynamic loader looks for it inside the image, and which host file to copy.
type elfObject struct {
	// ImagePath is the absolute path the loader opens in the image: the
	// interpreter path as PT_INTERP names it, or <search dir>/<soname>.
	ImagePath string
	// HostPath is the same path on the build host (symlinks unresolved),
	// used to mirror the host's symlinks when building from scratch.
	HostPath string
	// Mirror is true when ImagePath equals HostPath, so the host's symlink
	// chain can be reproduced; false for files found through $ORIGIN of an
	// object that moves (the ONNX Runtime library).
	Mirror bool
	// Interp is true for the program interpreter (ld.so).
	Interp bool
}

// depResolver finds the shared libraries an ELF file needs on the build
// host, the way glibc's ld.so would: DT_RPATH (when there is no DT_RUNPATH),
// DT_RUNPATH, the directories of /etc/ld.so.conf, then the system
// directories. LD_LIBRARY_PATH of the build is ignored on purpose.
type depResolver struct {
	machine elf.Machine
	class   elf.Class
	conf    []string // directories from ld.so.conf, then system dirs
	// seen maps a real host file to true once its needs were resolved.
	seen map[string]bool
	objs []elfObject
	// byImage dedups objects by image path.
	byImage map[string]bool
}

// systemLibDirs are the directories glibc's loader searches without a
// cache, for an architecture's Debian multiarch triplet, followed by the
// lib64 directories of other distributions.
func systemLibDirs(triplet string) []string {
	return []string{"/lib/" + triplet, "/usr/lib/" + triplet, "/lib64", "/usr/lib64", "/lib", "/usr/lib"}
}

// ldConfDirs reads the directories of an ld.so.conf file, following its
// include lines (globs, relative to the including file's directory).
func ldConfDirs(file string, depth int) []string {
	if depth > 8 {
		return nil
	}
	f, err := os.Open(file)
	if err != nil {
		return nil
	}
	defer f.Close()
	var dirs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "include"); ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t') {
			for _, pat := range strings.Fields(rest) {
				if !filepath.IsAbs(pat) {
					pat = filepath.Join(filepath.Dir(file), pat)
				}
				matches, _ := filepath.Glob(pat)
				// filepath.Glob returns sorted matches, as ldconfig reads them.
				for _, m := range matches {
					dirs = append(dirs, ldConfDirs(m, depth+1)...)
				}
			}
			continue
		}
		if strings.HasPrefix(line, "hwcap ") {
			continue
		}
		for _, d := range strings.FieldsFunc(line, func(r rune) bool { return r == ':' || r == ',' || r == ' ' || r == '\t' }) {
			if filepath.IsAbs(d) {
				dirs = append(dirs, filepath.Clean(d))
			}
		}
	}
	return dirs
}

func newDepResolver(machine elf.Machine, class elf.Class, triplet string) *depResolver {
	var dirs []string
	seen := map[string]bool{}
	for _, d := range append(ldConfDirs("/etc/ld.so.conf", 0), systemLibDirs(triplet)...) {
		if !seen[d] {
			seen[d] = true
			dirs = append(dirs, d)
		}
	}
	return &depResolver{machine: machine, class: class, conf: dirs, seen: map[string]bool{}, byImage: map[string]bool{}}
}

// elfInfo opens an ELF file and reads its program interpreter, if any.
func elfInfo(p string) (f *elf.File, interp string, err error) {
	f, err = elf.Open(p)
	if err != nil {
		return nil, "", err
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			b := make([]byte, prog.Filesz)
			if _, err := prog.ReadAt(b, 0); err != nil {
				f.Close()
				return nil, "", fmt.Errorf("reading PT_INTERP of %s: %w", p, err)
			}
			interp = strings.TrimRight(string(b), "\x00")
		}
	}
	return f, interp, nil
}

// add resolves the dependencies of the ELF file at hostPath, which sits in
// the image directory imageDir (for $ORIGIN).
func (r *depResolver) add(hostPath, imageDir string) error {
	real, err := filepath.EvalSymlinks(hostPath)
	if err != nil {
		return err
	}
	if r.seen[real] {
		return nil
	}
	r.seen[real] = true
	f, interp, err := elfInfo(real)
	if err != nil {
		return fmt.Errorf("%s: %w", hostPath, err)
	}
	defer f.Close()
	if interp != "" {
		if _, err := os.Stat(interp); err != nil {
			return fmt.Errorf("%s names the program interpreter %s, which is not on this machine: %w", hostPath, interp, err)
		}
		r.record(elfObject{ImagePath: interp, HostPath: interp, Mirror: true, Interp: true})
	}
	needed, err := f.DynString(elf.DT_NEEDED)
	if err != nil {
		// A file without a dynamic section has no needs.
		needed = nil
	}
	if len(needed) == 0 {
		return nil
	}
	runpath, _ := f.DynString(elf.DT_RUNPATH)
	rpath, _ := f.DynString(elf.DT_RPATH)
	origin := filepath.Dir(hostPath)
	type dir struct{ host, image string }
	var dirs []dir
	expand := func(list []string) {
		for _, entry := range list {
			for _, d := range strings.Split(entry, ":") {
				if d == "" {
					continue
				}
				if strings.Contains(d, "$ORIGIN") || strings.Contains(d, "${ORIGIN}") {
					rel := strings.NewReplacer("${ORIGIN}", "", "$ORIGIN", "").Replace(d)
					dirs = append(dirs, dir{host: filepath.Join(origin, rel), image: path.Join(imageDir, rel)})
					continue
				}
				if filepath.IsAbs(d) {
					dirs = append(dirs, dir{host: filepath.Clean(d), image: filepath.Clean(d)})
				}
			}
		}
	}
	if len(runpath) == 0 {
		expand(rpath)
	}
	expand(runpath)
	for _, d := range r.conf {
		dirs = append(dirs, dir{host: d, image: d})
	}
	for _, soname := range needed {
		if strings.Contains(soname, "/") {
			if err := r.found(soname, soname, true); err != nil {
				return err
			}
			continue
		}
		ok := false
		for _, d := range dirs {
			cand := filepath.Join(d.host, soname)
			if !r.matches(cand) {
				continue
			}
			ip := path.Join(d.image, soname)
			if err := r.found(cand, ip, d.host == d.image); err != nil {
				return err
			}
			ok = true
			break
		}
		if !ok {
			return fmt.Errorf("%s needs %s, which is not in any library directory of this machine (%s)", hostPath, soname, strings.Join(r.conf, ", "))
		}
	}
	return nil
}

func (r *depResolver) found(hostPath, imagePath string, mirror bool) error {
	r.record(elfObject{ImagePath: imagePath, HostPath: hostPath, Mirror: mirror})
	return r.add(hostPath, path.Dir(imagePath))
}

func (r *depResolver) record(o elfObject) {
	if r.byImage[o.ImagePath] {
		return
	}
	r.byImage[o.ImagePath] = true
	r.objs = append(r.objs, o)
}

// matches reports whether p is an ELF file of the resolver's class and
// machine (a 32-bit libc in a search dir is skipped, as ld.so does).
func (r *depResolver) matches(p string) bool {
	f, err := elf.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	return f.Machine == r.machine && f.Class == r.class
}

// keepLibs accepts the file names a base image may hold the libraries objs
// name under: the soname itself or a longer version of it
// (libstdc++.so.6.0.30 for libstdc++.so.6).
func keepLibs(objs []elfObject) func(string) bool {
	var stems []string
	for _, o := range objs {
		base := path.Base(o.ImagePath)
		if i := strings.Index(base, ".so"); i >= 0 {
			base = base[:i+len(".so")]
		}
		stems = append(stems, base)
	}
	return func(name string) bool {
		for _, s := range stems {
			if strings.HasPrefix(name, s) {
				return true
			}
		}
		return false
	}
}

// checkBaseVersions fails when a library the base image provides (and the
// image will therefore use) lacks a symbol version that the binary, ONNX
// Runtime or a library taken from this machine needs: the image would not
// start ("version `GLIBC_2.38' not found"). Libraries whose contents could
// not be read (hard links) are not checked.
func checkBaseVersions(view *fsView, bin, ort string, objs []elfObject) error {
	provided := map[string]*elf.File{} // soname -> the base's file
	where := map[string]string{}
	for _, o := range objs {
		if !view.providesFile(o.ImagePath) {
			continue
		}
		_, e, _ := view.resolve(o.ImagePath)
		if e == nil || e.data == nil {
			continue
		}
		f, err := elf.NewFile(bytes.NewReader(e.data))
		if err != nil {
			return fmt.Errorf("%s is not an ELF file: %w", o.ImagePath, err)
		}
		provided[path.Base(o.ImagePath)] = f
		where[path.Base(o.ImagePath)] = o.ImagePath
	}
	if len(provided) == 0 {
		return nil
	}
	users := []string{bin}
	if ort != "" {
		users = append(users, ort)
	}
	for _, o := range objs {
		if !view.providesFile(o.ImagePath) {
			users = append(users, o.HostPath)
		}
	}
	lacks := map[string][]string{} // base library -> versions it lacks
	neededBy := map[string][]string{}
	for _, u := range users {
		f, err := elf.Open(u)
		if err != nil {
			return err
		}
		needs, _ := f.DynamicVersionNeeds()
		f.Close()
		for _, n := range needs {
			lib, ok := provided[n.Name]
			if !ok {
				continue
			}
			defs, _ := lib.DynamicVersions()
			for _, d := range n.Needs {
				if !slices.ContainsFunc(defs, func(v elf.DynamicVersion) bool { return v.Name == d.Dep }) {
					w := where[n.Name]
					lacks[w] = appendNew(lacks[w], d.Dep)
					neededBy[w] = appendNew(neededBy[w], u)
				}
			}
		}
	}
	if len(lacks) > 0 {
		var msgs []string
		for _, w := range slices.Sorted(maps.Keys(lacks)) {
			slices.Sort(lacks[w])
			msgs = append(msgs, fmt.Sprintf("%s lacks %s (needed by %s)", w, strings.Join(lacks[w], ", "), strings.Join(neededBy[w], ", ")))
		}
		return fmt.Errorf("its libraries are older than this machine's, which modelship was built against: %s; use a base image of the same or a newer distribution release than this machine, or build modelship on an older one",
			strings.Join(msgs, "; "))
	}
	return nil
}
