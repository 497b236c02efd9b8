package python

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"sync"
)

// shimFS holds the worker and the Azure compatibility modules.
//
//go:embed all:py
var shimFS embed.FS

var (
	shimOnce sync.Once
	shimPath string
	shimErr  error
)

// shimDir extracts the embedded Python tree once per process into a cache
// directory named after its content hash and returns that directory.
func shimDir() (string, error) {
	shimOnce.Do(func() { shimPath, shimErr = extractShims() })
	return shimPath, shimErr
}

func extractShims() (string, error) {
	var files []string
	err := fs.WalkDir(shimFS, "py", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "__pycache__" {
			return fs.SkipDir
		}
		if !d.IsDir() && path.Ext(p) == ".py" {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("walk embedded python: %w", err)
	}
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		b, err := shimFS.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("read embedded %s: %w", f, err)
		}
		fmt.Fprintf(h, "%s\x00%d\x00", f, len(b))
		h.Write(b)
	}
	sum := hex.EncodeToString(h.Sum(nil))[:16]
	var bases []string
	if c, err := os.UserCacheDir(); err == nil && c != "" {
		bases = append(bases, c)
	}
	bases = append(bases, os.TempDir())
	var firstErr error
	for _, base := range bases {
		dir := filepath.Join(base, "modelship", "pyshims", sum)
		err := installShims(dir, files)
		if err == nil {
			return dir, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return "", firstErr
}

// installShims writes files into dir unless a complete copy is there; it
// writes to a temporary sibling and renames it, so concurrent processes
// never see a partial tree.
func installShims(dir string, files []string) error {
	if _, err := os.Stat(filepath.Join(dir, "_modelship_worker.py")); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("create shim cache: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+".tmp")
	if err != nil {
		return fmt.Errorf("create shim dir: %w", err)
	}
	for _, f := range files {
		b, _ := shimFS.ReadFile(f)
		rel, _ := filepath.Rel("py", filepath.FromSlash(f))
		dst := filepath.Join(tmp, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			os.RemoveAll(tmp)
			return fmt.Errorf("extract shims: %w", err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			os.RemoveAll(tmp)
			return fmt.Errorf("extract shims: %w", err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another process won the race: use its copy.
		os.RemoveAll(tmp)
		if _, statErr := os.Stat(filepath.Join(dir, "_modelship_worker.py")); statErr != nil {
			return fmt.Errorf("install shims: %w", err)
		}
	}
	return nil
}
