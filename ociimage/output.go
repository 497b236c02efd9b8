package ociimage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// RefNameAnnotation names an image in an OCI layout's index.
const RefNameAnnotation = "org.opencontainers.image.ref.name"

// ParseRef parses a registry reference; insecure allows plain HTTP (and
// self-signed TLS) for that registry. Loopback registries (localhost:PORT,
// 127.0.0.1:PORT) are reached over HTTP without it.
func ParseRef(ref string, insecure bool) (name.Reference, error) {
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	return name.ParseReference(ref, opts...)
}

// Push writes img to the registry reference ref (a tag, or a digest equal
// to the image's) with credentials from kc (authn.DefaultKeychain when
// nil), and returns the pushed image's digest reference.
func Push(ctx context.Context, img v1.Image, ref string, insecure bool, kc authn.Keychain) (name.Digest, error) {
	r, err := ParseRef(ref, insecure)
	if err != nil {
		return name.Digest{}, err
	}
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	if err := remote.Write(r, img, remote.WithContext(ctx), remote.WithAuthFromKeychain(kc)); err != nil {
		return name.Digest{}, fmt.Errorf("pushing %s: %w", r.Name(), err)
	}
	d, err := img.Digest()
	if err != nil {
		return name.Digest{}, err
	}
	return r.Context().Digest(d.String()), nil
}

// WriteTarball writes img to file as a tarball `docker load` and
// `kind load image-archive` read, naming it tag.
func WriteTarball(file, tag string, img v1.Image) error {
	if tag == "" {
		return errors.New("a tarball needs a tag to name the image")
	}
	t, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("tag %q: %w", tag, err)
	}
	if err := tarball.WriteToFile(file, t, img); err != nil {
		os.Remove(file)
		return fmt.Errorf("writing %s: %w", file, err)
	}
	return nil
}

// WriteLayout adds img to the OCI image layout at dir, creating it if
// needed. With a tag the image is named by the ref.name annotation and
// replaces an image of that name; without one it replaces an equal image.
func WriteLayout(dir, tag string, img v1.Image) error {
	p, err := layout.FromPath(dir)
	if err == nil {
		var idx v1.ImageIndex
		if idx, err = p.ImageIndex(); err == nil {
			_, err = idx.IndexManifest()
		}
	}
	if err != nil {
		if _, serr := os.Stat(filepath.Join(dir, "index.json")); !os.IsNotExist(serr) {
			return fmt.Errorf("%s is not an OCI layout: %w", dir, err)
		}
		if p, err = layout.Write(dir, empty.Index); err != nil {
			return fmt.Errorf("creating OCI layout %s: %w", dir, err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	opts := []layout.Option{layout.WithPlatform(v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant})}
	var m match.Matcher
	if tag != "" {
		opts = append(opts, layout.WithAnnotations(map[string]string{RefNameAnnotation: tag}))
		m = match.Annotation(RefNameAnnotation, tag)
	} else {
		d, err := img.Digest()
		if err != nil {
			return err
		}
		m = match.Digests(d)
	}
	if err := p.ReplaceImage(img, m, opts...); err != nil {
		return fmt.Errorf("writing OCI layout %s: %w", dir, err)
	}
	return nil
}
