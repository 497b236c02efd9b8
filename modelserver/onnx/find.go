package onnx

import (
	"cmp"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
)

// FindModels finds the .onnx files under dir. When every file sits in
// Azure's multi-model layout, <dir>/<name>/<version>/.../<file>.onnx with an
// integer version, each becomes a model with that name and version (one file
// per version folder). Otherwise dir is a single model folder and must hold
// exactly one .onnx file, served as defaultName (the file's base name when
// empty) and defaultVersion. It fails, naming dir, when nothing is found.
func FindModels(dir, defaultName, defaultVersion string) ([]Model, error) {
	var files []string // relative to dir, slash-separated
	// A symlinked model folder is walked through its target (WalkDir does
	// not follow a symlinked root).
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.EqualFold(filepath.Ext(p), ".onnx") {
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("looking for ONNX models in %s: %w", dir, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no .onnx model file found under %s", dir)
	}
	if models, ok, err := azureLayout(dir, files); ok || err != nil {
		return models, err
	}
	if len(files) > 1 {
		return nil, fmt.Errorf("found %d .onnx files under %s (%s): use one model per folder, or the <dir>/<name>/<version>/ layout for several",
			len(files), dir, strings.Join(files, ", "))
	}
	name := defaultName
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(files[0]), filepath.Ext(files[0]))
	}
	return []Model{{Name: name, Version: defaultVersion, Path: filepath.Join(dir, filepath.FromSlash(files[0]))}}, nil
}

// azureLayout reads files as <name>/<version>/.../<file>.onnx; ok is false
// when some file does not fit.
func azureLayout(dir string, files []string) (models []Model, ok bool, err error) {
	byKey := map[[2]string][]string{}
	for _, f := range files {
		parts := strings.Split(f, "/")
		if len(parts) < 3 || !isDigits(parts[1]) {
			return nil, false, nil
		}
		key := [2]string{parts[0], parts[1]}
		byKey[key] = append(byKey[key], f)
	}
	for key, fs := range byKey {
		if len(fs) > 1 {
			return nil, true, fmt.Errorf("model %s version %s under %s has %d .onnx files (%s); keep one",
				key[0], key[1], dir, len(fs), strings.Join(fs, ", "))
		}
		models = append(models, Model{Name: key[0], Version: key[1], Path: filepath.Join(dir, filepath.FromSlash(fs[0]))})
	}
	slices.SortFunc(models, func(a, b Model) int {
		if c := cmp.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		if versionLess(a.Version, b.Version) {
			return -1
		}
		return 1
	})
	return models, true, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
