package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/internal/tarutil"
)

// cache extracts stored blobs (models, source folders) into directories,
// once, atomically: <root>/<digest>/ for folders (a tar holds its names),
// <root>/<digest>-<hash of the file name>/ for file models, since two
// models may hold the same bytes under different file names.
type cache struct {
	root      string
	artifacts modelship.ArtifactStore
	mu        sync.Mutex
}

// modelDir returns the extracted directory of a model version: a file model
// as <dir>/<fileName>, a folder model as its tree.
func (c *cache) modelDir(ctx context.Context, mv *modelship.ModelVersion) (string, error) {
	key := mv.SHA256
	if mv.AssetType != modelship.AssetFolder {
		sum := sha256.Sum256([]byte(mv.FileName))
		key += "-" + hex.EncodeToString(sum[:8])
	}
	return c.extract(ctx, key, mv.SHA256, func(dst string, r io.Reader) error {
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
	return c.extract(ctx, digest, digest, func(dst string, r io.Reader) error {
		_, err := tarutil.Extract(r, dst)
		return err
	})
}

// extract fills <root>/<key> from the blob stored under digest.
func (c *cache) extract(ctx context.Context, key, digest string, fill func(dst string, r io.Reader) error) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	final := filepath.Join(c.root, key)
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

// privateCopyMax is the size up to which linkTree copies a file instead of
// hard-linking it: a deployment gets its own copy of small files (a script
// that rewrites its settings.json or appends to a small model file changes
// only its own), while large model files are shared with the cache.
const privateCopyMax = 4 << 20

// linkTree recreates the tree src at dst: files up to privateCopyMax are
// copied, larger ones hard-linked to src's (copied when linking fails, e.g.
// across file systems); symlinks inside the tree stay symlinks. The folders
// are real, so tools that walk the model directory see ordinary files.
func linkTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, target)
		default:
			if info, err := d.Info(); err == nil && info.Size() > privateCopyMax {
				if err := os.Link(p, target); err == nil {
					return nil
				}
			}
			return copyFile(p, target)
		}
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// appRoot lays out a deployment's app root at dir, as Azure's container
// has /var/azureml-app: the source folder's files (linkTree) and
// azureml-models/ (a link to the models laid out next to it), so scripts
// that open "azureml-models/<name>/<version>/..." relative to the working
// directory or to AML_APP_ROOT find them.
func (c *cache) appRoot(dir, src, models string) error {
	marker := dir + ".complete"
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	os.RemoveAll(dir)
	if err := linkTree(src, dir); err != nil {
		return err
	}
	if _, err := os.Lstat(filepath.Join(dir, "azureml-models")); os.IsNotExist(err) {
		rel, err := filepath.Rel(dir, models)
		if err != nil {
			return err
		}
		if err := os.Symlink(rel, filepath.Join(dir, "azureml-models")); err != nil {
			return err
		}
	}
	return os.WriteFile(marker, nil, 0o644)
}

// modelRoot lays out the models of a deployment as Azure does, under
// <dir>/azureml-models/<name>/<version> (hard links into the cache), and
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
		dst := filepath.Join(root, mv.Name, fmt.Sprint(mv.Version))
		// The marker lives outside the model folder, which must hold only
		// the model's own files (get_model_path counts them).
		marker := filepath.Join(dir, fmt.Sprintf(".complete-%s-%d", mv.Name, mv.Version))
		if _, err := os.Stat(marker); err == nil {
			continue
		}
		os.RemoveAll(dst)
		if err := linkTree(src, dst); err != nil {
			return "", fmt.Errorf("laying out model %s: %w", mv.ID(), err)
		}
		if err := os.WriteFile(marker, nil, 0o644); err != nil {
			return "", err
		}
	}
	if len(models) == 1 {
		return filepath.Join(root, models[0].Name, fmt.Sprint(models[0].Version)), nil
	}
	return root, nil
}
