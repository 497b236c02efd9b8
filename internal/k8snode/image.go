package k8snode

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/modelship/modelship/ociimage"
)

// StaticImage packs one static executable into an image from scratch: the
// file at bin becomes inImage (mode 0755) and the entrypoint, followed by
// args; env is KEY=VALUE. The image is for this machine's platform.
func StaticImage(bin, inImage string, args, env []string) (v1.Image, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	// Parent folders first.
	var parents []string
	for d := path.Dir(path.Clean("/" + inImage)); d != "/"; d = path.Dir(d) {
		parents = append([]string{strings.TrimPrefix(d, "/") + "/"}, parents...)
	}
	for _, d := range parents {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: epoch}); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(path.Clean("/"+inImage), "/"), Mode: 0o755, Size: int64(len(data)), ModTime: epoch}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(data); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.Entrypoint = append([]string{path.Clean("/" + inImage)}, args...)
	cf.Config.Env = env
	return mutate.ConfigFile(img, cf)
}

func writeImageTarball(file, ref string, img v1.Image) error {
	return ociimage.WriteTarball(file, ref, img)
}

// LoadImage imports img into the node's containerd (namespace k8s.io) named
// ref (e.g. "modelship.local/server:test"), for pods with
// imagePullPolicy Never or IfNotPresent.
func (n *Node) LoadImage(ctx context.Context, ref string, img v1.Image) error {
	f, err := os.CreateTemp(filepath.Join(n.Dir, "images"), "load-*.tar")
	if err != nil {
		return err
	}
	f.Close()
	defer os.Remove(f.Name())
	if err := writeImageTarball(f.Name(), ref, img); err != nil {
		return err
	}
	return n.importImage(ctx, f.Name())
}

// LoadImageTarball imports an image tarball (docker save / `modelship
// image build` / ociimage.WriteTarball format, or an OCI archive) into the
// node's containerd (namespace k8s.io) under the names it carries.
func (n *Node) LoadImageTarball(ctx context.Context, file string) error {
	return n.importImage(ctx, file)
}

func (n *Node) importImage(ctx context.Context, file string) error {
	_, err := n.ctr(ctx, "images", "import", file)
	if err != nil {
		return fmt.Errorf("importing %s: %w", file, err)
	}
	return nil
}
