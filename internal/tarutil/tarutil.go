// Package tarutil writes folders as deterministic tar streams and extracts
// tar streams safely: no entry may land or point outside the target folder.
package tarutil

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// CleanName returns the cleaned relative name of a tar entry, or an error
// when it is absolute, contains "..", a backslash or a NUL.
func CleanName(name string) (string, error) {
	if name == "" || strings.ContainsAny(name, "\x00\\") {
		return "", fmt.Errorf("tar entry name %q is invalid", name)
	}
	if path.IsAbs(name) {
		return "", fmt.Errorf("tar entry %q has an absolute path", name)
	}
	clean := path.Clean(strings.TrimSuffix(name, "/"))
	if !Local(clean) {
		return "", fmt.Errorf("tar entry %q escapes the model folder", name)
	}
	return clean, nil
}

// Local reports whether a cleaned relative path stays inside its root.
func Local(p string) bool {
	return p != ".." && !strings.HasPrefix(p, "../") && !path.IsAbs(p)
}

// LinkTarget checks a link entry and returns its target relative to the
// root; links must stay inside the folder.
func LinkTarget(name string, hdr *tar.Header) (string, error) {
	target := hdr.Linkname
	if path.IsAbs(target) {
		return "", fmt.Errorf("tar entry %q links to %q, outside the model folder", name, hdr.Linkname)
	}
	if hdr.Typeflag == tar.TypeSymlink {
		target = path.Join(path.Dir(name), target)
	}
	target = path.Clean(target)
	if !Local(target) {
		return "", fmt.Errorf("tar entry %q links to %q, outside the model folder", name, hdr.Linkname)
	}
	return target, nil
}

var epoch = time.Unix(0, 0).UTC()

// WriteDir writes the folder dir to w as a tar stream with entries in
// lexical order, mode bits only, and zeroed times and owners, so that the
// same folder always gives the same bytes (and the same sha256).
func WriteDir(w io.Writer, dir string) error {
	return WriteDirAs(w, dir, "", nil)
}

// WriteDirAs is WriteDir with every entry under prefix/ (a folder entry
// for prefix itself first), e.g. a model folder registered by its name.
//
// A symbolic link that stays inside the folder is kept as a link. One that
// leaves it (a virtualenv's bin/python, a link to a shared data folder, a
// Hugging Face cache snapshot) is followed, as Azure's upload read through
// links: the file's content, or the folder's tree, is written under the
// link's name. A link that leads nowhere, or into a loop, is left out and
// reported to warn (when not nil).
func WriteDirAs(w io.Writer, dir, prefix string, warn func(string)) error {
	wr := &dirWriter{tw: tar.NewWriter(w), buf: make([]byte, 1<<20), warn: warn}
	if prefix != "" {
		if err := wr.tw.WriteHeader(&tar.Header{Name: prefix + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	wr.open = map[string]bool{real: true}
	if err := wr.tree(dir, prefix); err != nil {
		return err
	}
	return wr.tw.Close()
}

type dirWriter struct {
	tw   *tar.Writer
	buf  []byte
	warn func(string)
	open map[string]bool // real paths of the folders being written (loop guard)
}

// tree writes the entries of folder dir under the tar name prefix.
func (wr *dirWriter) tree(dir, prefix string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		name := e.Name()
		if prefix != "" {
			name = prefix + "/" + name
		}
		if err := wr.entry(p, name); err != nil {
			return err
		}
	}
	return nil
}

func (wr *dirWriter) entry(p, name string) error {
	info, err := os.Lstat(p)
	if err != nil {
		return err
	}
	if info.Mode()&fs.ModeSymlink != 0 {
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: filepath.ToSlash(target), Mode: 0o777, ModTime: epoch, Format: tar.FormatPAX}
		if _, err := LinkTarget(name, hdr); err == nil && !strings.HasPrefix(name, "../") {
			if _, serr := os.Stat(p); serr == nil {
				return wr.tw.WriteHeader(hdr) // stays inside: keep the link
			}
		}
		// Leaves the folder (or leads nowhere): follow it.
		info, err = os.Stat(p)
		if err != nil {
			wr.warnf("%s links to %s, which does not exist; left out", p, target)
			return nil
		}
		if info.IsDir() {
			real, err := filepath.EvalSymlinks(p)
			if err != nil || wr.contains(real) {
				wr.warnf("%s links to %s, a folder that contains it (a loop); left out", p, target)
				return nil
			}
			wr.open[real] = true
			defer delete(wr.open, real)
		}
	}
	hdr := &tar.Header{Name: name, Mode: int64(info.Mode().Perm()), ModTime: epoch, Format: tar.FormatPAX}
	switch {
	case info.Mode().IsRegular():
		hdr.Typeflag = tar.TypeReg
		hdr.Size = info.Size()
	case info.IsDir():
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
		if err := wr.tw.WriteHeader(hdr); err != nil {
			return err
		}
		return wr.tree(p, name)
	default:
		return fmt.Errorf("%s is not a regular file, folder or link; remove it from the folder", p)
	}
	if err := wr.tw.WriteHeader(hdr); err != nil {
		return err
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.CopyBuffer(wr.tw, io.LimitReader(f, hdr.Size), wr.buf)
	if err == nil && n != hdr.Size {
		err = fmt.Errorf("%s changed size while being read", p)
	}
	return err
}

// contains reports whether folder real is, or holds, a folder being written.
func (wr *dirWriter) contains(real string) bool {
	for o := range wr.open {
		if o == real || strings.HasPrefix(o, real+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

func (wr *dirWriter) warnf(format string, args ...any) {
	if wr.warn != nil {
		wr.warn(fmt.Sprintf(format, args...))
	}
}

// Extract unpacks a tar stream into dir (which must exist), refusing entries
// that would escape it. It returns the number of regular files written.
func Extract(r io.Reader, dir string) (int, error) {
	tr := tar.NewReader(r)
	files := 0
	buf := make([]byte, 1<<20)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files, nil
		}
		if err != nil {
			return files, fmt.Errorf("reading tar: %w", err)
		}
		name, err := CleanName(hdr.Name)
		if err != nil {
			return files, err
		}
		if name == "." {
			continue
		}
		dst := filepath.Join(dir, filepath.FromSlash(name))
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return files, err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return files, err
			}
			mode := fs.FileMode(hdr.Mode).Perm() | 0o600
			f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
			if err != nil {
				return files, err
			}
			_, err = io.CopyBuffer(f, tr, buf)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return files, fmt.Errorf("writing %s: %w", dst, err)
			}
			files++
		case tar.TypeSymlink:
			if _, err := LinkTarget(name, hdr); err != nil {
				return files, err
			}
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return files, err
			}
			if err := os.Symlink(filepath.FromSlash(hdr.Linkname), dst); err != nil {
				return files, err
			}
		case tar.TypeLink:
			target, err := LinkTarget(name, hdr)
			if err != nil {
				return files, err
			}
			if err := os.Link(filepath.Join(dir, filepath.FromSlash(target)), dst); err != nil {
				return files, err
			}
			files++
		default:
			return files, fmt.Errorf("tar entry %q has unsupported type %q", name, string(hdr.Typeflag))
		}
	}
}
