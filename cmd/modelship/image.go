package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/cli"
	"github.com/modelship/modelship/ociimage"
)

func init() { subcommands = append(subcommands, newImageCmd) }

func newImageCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Build the container image Kubernetes pods run",
		Long: `The image groups commands for the OCI image that runs modelship in
Kubernetes pods: model-server replicas (serve-model) and the in-cluster
front end (gateway). See docs/image.md.`,
	}
	cmd.AddCommand(newImageBuildCmd())
	return cmd
}

type imageBuildFlags struct {
	push, tarball, layout, tag string
	base, binary, onnxruntime  string
	platform, output           string
	insecure                   bool
}

func newImageBuildCmd() *cobra.Command {
	var f imageBuildFlags
	cmd := &cobra.Command{
		Use:   "build",
		Short: "Build the modelship image without Docker and push or save it",
		Long: `Build builds the OCI image that Kubernetes pods run, without Docker:
one layer with the modelship binary at /usr/local/bin/modelship, the
shared libraries it and ONNX Runtime need (from this machine, at the
paths the dynamic loader looks in), ONNX Runtime under
/usr/local/lib/modelship/onnxruntime/ (MODELSHIP_ORT_LIB points at it),
the CA certificates and /tmp; from scratch it also gets a non-root user
65532. With --base the layer goes on top of your image (a Python
environment for score.py services) and libraries the base already has are
left out. The same inputs give the same digest.

At least one output is needed: --push to a registry (credentials from the
Docker config and its credential helpers), --tarball for docker load or
kind load image-archive, --layout for an OCI image layout directory.`,
		Example: `  modelship image build --push registry.example.com/ml/modelship:1.0
  modelship image build --tarball modelship.tar --tag modelship:dev && kind load image-archive modelship.tar
  modelship image build --base python:3.11-slim-bookworm --push registry.example.com/ml/modelship-py:1.0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runImageBuild(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.push, "push", "", "push the image to this registry reference (REGISTRY/REPO[:TAG])")
	fl.StringVar(&f.tarball, "tarball", "", "write the image to this tarball file (docker load, kind load image-archive); needs --tag or --push")
	fl.StringVar(&f.layout, "layout", "", "add the image to this OCI image layout directory (created if missing)")
	fl.StringVar(&f.tag, "tag", "", "name of the image in the tarball and the layout (default: the --push reference)")
	fl.StringVar(&f.base, "base", "", "base image: a registry reference, oci-layout:DIR or tarball:FILE (default: scratch)")
	fl.StringVar(&f.binary, "binary", "", "modelship binary to put in the image (default: this one)")
	fl.StringVar(&f.onnxruntime, "onnxruntime", "", `ONNX Runtime library to include, or "none" (default: the one the server finds, MODELSHIP_ORT_LIB or scripts/setup.sh's)`)
	fl.StringVar(&f.platform, "platform", "", "image platform os/arch; the binary must match (default: linux and this machine's architecture)")
	fl.BoolVar(&f.insecure, "insecure", false, "allow plain HTTP and unverified TLS to the registries of --push and --base")
	fl.StringVarP(&f.output, "output", "o", "table", "output format: table or json")
	return cmd
}

func invalid(format string, args ...any) error {
	return modelship.Errorf(modelship.EINVALID, format, args...)
}

func runImageBuild(cmd *cobra.Command, f imageBuildFlags) error {
	if f.output != "table" && f.output != "json" {
		return invalid("--output %q is unknown; use table or json", f.output)
	}
	if f.push == "" && f.tarball == "" && f.layout == "" {
		return invalid("say where the image goes: --push REF, --tarball FILE or --layout DIR (at least one)")
	}
	if f.push != "" {
		if _, err := ociimage.ParseRef(f.push, f.insecure); err != nil {
			return invalid("--push %q is not a registry reference (REGISTRY/REPO[:TAG]): %v", f.push, err)
		}
	}
	tag := f.tag
	if tag != "" {
		if _, err := ociimage.ParseRef(tag, false); err != nil || strings.Contains(tag, "@") {
			return invalid("--tag %q is not an image name (REPO[:TAG]): %v", tag, err)
		}
	} else if f.push != "" && !strings.Contains(f.push, "@") {
		tag = f.push
	}
	if f.tarball != "" && tag == "" {
		return invalid("--tarball needs --tag NAME[:TAG] to name the image (or a --push reference with a tag)")
	}
	if f.base != "" {
		for _, p := range []string{ociimage.LayoutPrefix, ociimage.TarballPrefix} {
			if strings.HasPrefix(f.base, p) && strings.TrimPrefix(f.base, p) == "" {
				return invalid("--base %q names no path; use %sDIR or %sFILE", f.base, ociimage.LayoutPrefix, ociimage.TarballPrefix)
			}
		}
		if !strings.HasPrefix(f.base, ociimage.LayoutPrefix) && !strings.HasPrefix(f.base, ociimage.TarballPrefix) {
			if _, err := ociimage.ParseRef(f.base, f.insecure); err != nil {
				return invalid("--base %q is not a registry reference, %sDIR or %sFILE: %v", f.base, ociimage.LayoutPrefix, ociimage.TarballPrefix, err)
			}
		}
	}
	if f.binary != "" {
		if _, err := os.Stat(f.binary); err != nil {
			return invalid("--binary %s: %v", f.binary, err)
		}
	}
	if f.onnxruntime != "" && f.onnxruntime != ociimage.ONNXRuntimeNone {
		if _, err := os.Stat(f.onnxruntime); err != nil {
			return invalid("--onnxruntime %s: %v (give the path of libonnxruntime.so, or %q)", f.onnxruntime, err, ociimage.ONNXRuntimeNone)
		}
	}
	opts := ociimage.Options{Binary: f.binary, Base: f.base, ONNXRuntime: f.onnxruntime, Insecure: f.insecure}
	if f.binary == "" {
		opts.Version = cli.Version
	}
	if f.platform != "" {
		p, err := ociimage.ParsePlatform(f.platform)
		if err != nil {
			return invalid("--platform: %v", err)
		}
		opts.Platform = p
	}

	ctx := cmd.Context()
	res, err := ociimage.BuildReport(ctx, opts)
	if err != nil {
		return err
	}
	digest, err := res.Image.Digest()
	if err != nil {
		return err
	}
	size, err := imageSize(res.Image)
	if err != nil {
		return err
	}
	out := imageBuildOutput{Result: res, Digest: digest.String(), Size: size}
	if f.push != "" {
		d, err := ociimage.Push(ctx, res.Image, f.push, f.insecure, nil)
		if err != nil {
			return err
		}
		out.Pushed = d.String()
	}
	if f.tarball != "" {
		if err := ociimage.WriteTarball(f.tarball, tag, res.Image); err != nil {
			return err
		}
		out.Tarball, out.Tag = f.tarball, tag
	}
	if f.layout != "" {
		if err := ociimage.WriteLayout(f.layout, tag, res.Image); err != nil {
			return err
		}
		out.Layout, out.Tag = f.layout, tag
	}
	if f.output == "json" {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	printImageBuild(cmd.OutOrStdout(), out)
	return nil
}

// imageBuildOutput is what `image build -o json` prints.
type imageBuildOutput struct {
	*ociimage.Result
	Digest  string `json:"digest"`
	Size    int64  `json:"size"` // compressed: manifest, config and layers
	Pushed  string `json:"pushed,omitempty"`
	Tarball string `json:"tarball,omitempty"`
	Layout  string `json:"layout,omitempty"`
	Tag     string `json:"tag,omitempty"`
}

// imageSize is the image's compressed size: manifest, config and layers.
func imageSize(img v1.Image) (int64, error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return 0, err
	}
	n := int64(len(raw)) + m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n, nil
}

func mb(n int64) string {
	if n < 1e6 {
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%.1f MB", float64(n)/1e6)
}

func printImageBuild(w io.Writer, o imageBuildOutput) {
	base := "scratch"
	if o.Base != "" {
		base = o.Base + " (" + o.BaseDigest + ")"
	}
	fmt.Fprintf(w, "Built %s for %s, modelship %s\n", o.Digest, o.Platform, o.Version)
	fmt.Fprintf(w, "  size: %s compressed (modelship's layer: %s, %s uncompressed)\n", mb(o.Size), mb(o.LayerSize), mb(o.LayerUncompressed))
	fmt.Fprintf(w, "  base: %s\n", base)
	if o.ONNXRuntime == "" {
		fmt.Fprintln(w, "  ONNX Runtime: not included")
	}
	if o.Static {
		fmt.Fprintln(w, "  binary: statically linked, no shared libraries")
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  PATH\tKIND\tFROM\tSIZE")
	for _, f := range o.Files {
		from, size := f.Source, mb(f.Size)
		if f.Kind == "symlink" {
			from, size = "-> "+f.Target, ""
		} else if from == "" {
			from = "(generated)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", f.Path, f.Kind, from, size)
	}
	tw.Flush()
	for _, p := range o.FromBase {
		fmt.Fprintf(w, "  from the base image: %s\n", p)
	}
	for _, e := range o.Env {
		fmt.Fprintf(w, "  env: %s\n", e)
	}
	if o.Pushed != "" {
		fmt.Fprintf(w, "Pushed %s\n", o.Pushed)
	}
	if o.Tarball != "" {
		fmt.Fprintf(w, "Wrote %s (image %s)\n", o.Tarball, o.Tag)
	}
	if o.Layout != "" {
		fmt.Fprintf(w, "Wrote OCI layout %s\n", o.Layout)
	}
}
