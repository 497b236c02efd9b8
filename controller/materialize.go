package controller

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/internal/tarutil"
)

// cache extracts stored blobs (models, source folders) into directories
// keyed by digest, once, atomically: <root>/<digest>/.
type cache struct {
	root      string
	artifacts modelship.ArtifactStore
	mu        sync.Mutex
}

// modelDir returns the extracted directory of a model version: a file model
// as <dir>/<fileName>, a folder model as its tree.
func (c *cache) modelDir(ctx context.Context, mv *modelship.ModelVersion) (string, error) {
	return c.extract(ctx, mv.SHA256, func(dst string, r io.Reader) error {
		if mv.AssetType == modelship.AssetFolder {
			_, err := tarutil.Extract(r, dst)
			return err
		}
		f, err := os.OpenFile(filepath.Join(dst, mv.FileName), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, r)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	})
}

// sourceDir returns the extracted source folder stored under digest.
func (c *cache) sourceDir(ctx context.Context, digest string) (string, error) {
	return c.extract(ctx, digest, func(dst string, r io.Reader) error {
		_, err := tarutil.Extract(r, dst)
		return err
	})
}

func (c *cache) extract(ctx context.Context, digest string, fill func(dst string, r io.Reader) error) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	final := filepath.Join(c.root, digest)
	if _, err := os.Stat(final); err == nil {
		return final, nil
	}
	if err := os.MkdirAll(c.root, 0o755); err != nil {
		return "", err
	}
	rc, err := c.artifacts.Open(ctx, digest)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	tmp, err := os.MkdirTemp(c.root, ".extract-")
	if err != nil {
		return "", err
	}
	if err := fill(tmp, rc); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("extracting %s: %w", digest, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	return final, nil
}

// modelRoot lays out the models of a deployment as Azure does, under
// <dir>/azureml-models/<name>/<version> (symlinks into the cache), and
// returns AZUREML_MODEL_DIR: the single model's folder, or the root when
// there are several (spec §2.3).
func (c *cache) modelRoot(ctx context.Context, dir string, models []*modelship.ModelVersion) (string, error) {
	root := filepath.Join(dir, "azureml-models")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	for _, mv := range models {
		src, err := c.modelDir(ctx, mv)
		if err != nil {
			return "", err
		}
		parent := filepath.Join(root, mv.Name)
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return "", err
		}
		link := filepath.Join(parent, fmt.Sprint(mv.Version))
		if cur, err := os.Readlink(link); err == nil && cur == src {
			continue
		}
		os.Remove(link)
		if err := os.Symlink(src, link); err != nil {
			return "", err
		}
	}
	if len(models) == 1 {
		return filepath.Join(root, models[0].Name, fmt.Sprint(models[0].Version)), nil
	}
	return root, nil
}
