// Package artifact stores model bytes as content-addressed blobs in a local
// directory: <root>/blobs/sha256/<first two hex digits>/<digest>. Uploads go
// to <root>/tmp first and appear under their digest only on Commit (fsync +
// atomic rename), so a crash never leaves a partial blob in place.
package artifact

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/modelship/modelship"
)

var _ modelship.ArtifactStore = (*Local)(nil)

// Local is a modelship.ArtifactStore on a local directory.
type Local struct {
	root string
}

// OpenLocal opens (creating if needed) a store under root and removes
// temporary files left by an earlier crash.
func OpenLocal(root string) (*Local, error) {
	for _, d := range []string{filepath.Join(root, "blobs", "sha256"), filepath.Join(root, "tmp")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("creating artifact dir: %w", err)
		}
	}
	entries, err := os.ReadDir(filepath.Join(root, "tmp"))
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		os.RemoveAll(filepath.Join(root, "tmp", e.Name()))
	}
	return &Local{root: root}, nil
}

func (l *Local) path(digest string) (string, error) {
	if len(digest) != 64 || strings.Trim(digest, "0123456789abcdef") != "" {
		return "", modelship.Errorf(modelship.EINVALID, "digest %q is not a sha256 hex digest", digest)
	}
	return filepath.Join(l.root, "blobs", "sha256", digest[:2], digest), nil
}

// Put implements modelship.ArtifactStore.
func (l *Local) Put(ctx context.Context, r io.Reader) (modelship.PendingArtifact, error) {
	f, err := os.CreateTemp(filepath.Join(l.root, "tmp"), "upload-*")
	if err != nil {
		return nil, fmt.Errorf("creating temporary blob: %w", err)
	}
	p := &pending{store: l, tmp: f.Name(), h: sha256.New()}
	n, err := io.CopyBuffer(io.MultiWriter(f, p.h), contextReader{ctx, r}, make([]byte, 1<<20))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(p.tmp)
		return nil, err
	}
	p.size = n
	p.digest = hex.EncodeToString(p.h.Sum(nil))
	return p, nil
}

type contextReader struct {
	ctx context.Context
	r   io.Reader
}

func (c contextReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

type pending struct {
	store  *Local
	tmp    string
	h      hash.Hash
	size   int64
	digest string
	done   bool
}

func (p *pending) Digest() string { return p.digest }
func (p *pending) Size() int64    { return p.size }

func (p *pending) Commit() error {
	final, err := p.store.path(p.digest)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		return err
	}
	if _, err := os.Stat(final); err == nil {
		// Same content is already stored; keep the existing blob.
		p.done = true
		return os.Remove(p.tmp)
	}
	if err := os.Rename(p.tmp, final); err != nil {
		return fmt.Errorf("committing blob %s: %w", p.digest, err)
	}
	p.done = true
	return syncDir(filepath.Dir(final))
}

func (p *pending) Discard() error {
	if p.done {
		return nil
	}
	p.done = true
	if err := os.Remove(p.tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Open implements modelship.ArtifactStore.
func (l *Local) Open(ctx context.Context, digest string) (io.ReadCloser, error) {
	p, err := l.path(digest)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, modelship.Errorf(modelship.ENOTFOUND, "blob %s not found", digest)
	}
	return f, err
}

// Delete implements modelship.ArtifactStore.
func (l *Local) Delete(ctx context.Context, digest string) error {
	p, err := l.path(digest)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("deleting blob %s: %w", digest, err)
	}
	return nil
}

// List implements modelship.ArtifactStore.
func (l *Local) List(ctx context.Context) ([]string, error) {
	var out []string
	err := filepath.WalkDir(filepath.Join(l.root, "blobs", "sha256"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && len(d.Name()) == 64 {
			out = append(out, d.Name())
		}
		return nil
	})
	return out, err
}
