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
	return WriteDirAs(w, dir, "")
}

// WriteDirAs is WriteDir with every entry under prefix/ (a folder entry
// for prefix itself first), e.g. a model folder registered by its name.
func WriteDirAs(w io.Writer, dir, prefix string) error {
	tw := tar.NewWriter(w)
	buf := make([]byte, 1<<20)
	if prefix != "" {
		if err := tw.WriteHeader(&tar.Header{Name: prefix + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		name := filepath.ToSlash(rel)
		if prefix != "" {
			name = prefix + "/" + name
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: name, Mode: int64(info.Mode().Perm()), ModTime: epoch, Format: tar.FormatPAX}
		switch {
		case info.Mode().IsRegular():
			hdr.Typeflag = tar.TypeReg
			hdr.Size = info.Size()
		case info.IsDir():
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			hdr.Typeflag = tar.TypeSymlink
			hdr.Linkname = filepath.ToSlash(target)
			if _, err := LinkTarget(name, hdr); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		default:
			return fmt.Errorf("%s is not a regular file, folder or link; remove it from the model folder", p)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		n, err := io.CopyBuffer(tw, io.LimitReader(f, hdr.Size), buf)
		if err == nil && n != hdr.Size {
			err = fmt.Errorf("%s changed size while being read", p)
		}
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
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
