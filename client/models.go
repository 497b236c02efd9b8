package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/httpapi"
	"github.com/modelship/modelship/internal/tarutil"
)

// ModelsClient is the model registry.
type ModelsClient struct{ c *Client }

// RegisterOptions describes a model to register.
type RegisterOptions struct {
	Name                  string
	Path                  string // a file or a folder
	Tags                  map[string]string
	Properties            map[string]string
	Description           string
	ModelFramework        string
	ModelFrameworkVersion string
}

func modelPath(ws, name string) string {
	return "/api/v1/workspaces/" + url.PathEscape(ws) + "/models/" + url.PathEscape(name)
}

func versionPath(ws string, ref modelship.ModelRef) string {
	if ref.Version == 0 {
		return modelPath(ws, ref.Name)
	}
	return modelPath(ws, ref.Name) + "/versions/" + strconv.Itoa(ref.Version)
}

func kv(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// Register uploads a file or folder as the next version of a model. The
// content is streamed (a folder as a deterministic tar), never held in
// memory, and its sha256 is sent in a trailer so the server can verify it.
func (m *ModelsClient) Register(ctx context.Context, ws string, opts RegisterOptions) (*modelship.ModelVersion, error) {
	if err := modelship.ValidateModelName(opts.Name); err != nil {
		return nil, err
	}
	if opts.Path == "" {
		return nil, modelship.Errorf(modelship.EINVALID, "no model path given; pass a file or a folder")
	}
	info, err := os.Stat(opts.Path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, modelship.Errorf(modelship.EINVALID, "model path %q does not exist", opts.Path)
		}
		return nil, modelship.Errorf(modelship.EINVALID, "model path %q cannot be read: %v", opts.Path, err)
	}
	q := url.Values{}
	contentType := httpapi.ContentTypeFile
	switch {
	case info.Mode().IsRegular():
		if info.Size() == 0 {
			return nil, modelship.Errorf(modelship.EINVALID, "model file %q is empty", opts.Path)
		}
		q.Set("fileName", filepath.Base(opts.Path))
		f, err := os.Open(opts.Path)
		if err != nil {
			return nil, modelship.Errorf(modelship.EINVALID, "model file %q cannot be read: %v", opts.Path, err)
		}
		f.Close()
	case info.IsDir():
		contentType = httpapi.ContentTypeTar
	default:
		return nil, modelship.Errorf(modelship.EINVALID, "model path %q is neither a file nor a folder", opts.Path)
	}
	setIf := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	setIf("description", opts.Description)
	setIf("modelFramework", opts.ModelFramework)
	setIf("modelFrameworkVersion", opts.ModelFrameworkVersion)
	q["tag"] = kv(opts.Tags)
	q["property"] = kv(opts.Properties)

	body := &uploadBody{path: opts.Path, dir: info.IsDir(), warn: m.c.warn}
	req, err := m.c.newRequest(ctx, http.MethodPost, modelPath(ws, opts.Name)+"/versions", q, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	req.ContentLength = -1
	req.Trailer = http.Header{httpapi.DigestTrailer: nil}
	body.trailer = req.Trailer
	var out modelship.ModelVersion
	err = m.c.doJSON(req, &out)
	body.Close()
	if body.err != nil {
		// Reading the model failed (not the server): say that.
		return nil, modelship.Errorf(modelship.EINVALID, "model %q cannot be uploaded: %v", opts.Path, body.err)
	}
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// uploadBody streams a model file or folder as a request body and sets the
// sha256 trailer when done. The transport copies it through WriteTo, so the
// content goes out in large writes; Read is there for other consumers.
type uploadBody struct {
	path    string
	dir     bool
	warn    func(string)
	trailer http.Header
	err     error // the content's own failure, if any

	pr *io.PipeReader
}

// WriteTo writes the whole content to w, then records its digest.
func (b *uploadBody) WriteTo(w io.Writer) (int64, error) {
	h := sha256.New()
	cw := &countingWriter{w: io.MultiWriter(w, h)}
	if err := writeContent(cw, b.path, b.dir, b.warn); err != nil {
		if cw.werr == nil {
			b.err = err // reading the content failed, not sending it
		}
		return cw.n, err
	}
	b.trailer.Set(httpapi.DigestTrailer, hex.EncodeToString(h.Sum(nil)))
	return cw.n, nil
}

func (b *uploadBody) Read(p []byte) (int, error) {
	if b.pr == nil {
		pr, pw := io.Pipe()
		b.pr = pr
		go func() {
			_, err := b.WriteTo(pw)
			pw.CloseWithError(err)
		}()
	}
	return b.pr.Read(p)
}

func (b *uploadBody) Close() error {
	if b.pr != nil {
		b.pr.CloseWithError(io.ErrClosedPipe)
	}
	return nil
}

type countingWriter struct {
	w    io.Writer
	n    int64
	werr error // the first write error (sending failed)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if err != nil && c.werr == nil {
		c.werr = err
	}
	return n, err
}

func writeContent(w io.Writer, path string, dir bool, warn func(string)) error {
	if dir {
		// As in Azure ML, a registered folder keeps its name: its files
		// are found under AZUREML_MODEL_DIR/<folder>/ once deployed.
		return tarutil.WriteDirAs(w, path, folderName(path), warn)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.CopyBuffer(w, f, make([]byte, 1<<20))
	return err
}

// Get returns one version, or the latest when ref.Version is 0.
func (m *ModelsClient) Get(ctx context.Context, ws string, ref modelship.ModelRef) (*modelship.ModelVersion, error) {
	var out modelship.ModelVersion
	return &out, m.c.getJSON(ctx, versionPath(ws, ref), nil, &out)
}

// List returns the model versions matching the filter.
func (m *ModelsClient) List(ctx context.Context, ws string, f modelship.ModelFilter) ([]*modelship.ModelVersion, error) {
	q := url.Values{}
	if f.Name != "" {
		q.Set("name", f.Name)
	}
	for k, v := range f.Tags {
		if v == "" {
			q.Add("tag", k)
		} else {
			q.Add("tag", k+"="+v)
		}
	}
	var out []*modelship.ModelVersion
	return out, m.c.getJSON(ctx, "/api/v1/workspaces/"+url.PathEscape(ws)+"/models", q, &out)
}

// Update changes tags, properties (add-only) or the description.
func (m *ModelsClient) Update(ctx context.Context, ws string, ref modelship.ModelRef, upd *modelship.ModelUpdate) (*modelship.ModelVersion, error) {
	if ref.Version == 0 {
		latest, err := m.Get(ctx, ws, ref)
		if err != nil {
			return nil, err
		}
		ref.Version = latest.Version
	}
	var out modelship.ModelVersion
	return &out, m.c.sendJSON(ctx, http.MethodPatch, versionPath(ws, ref), upd, &out)
}

// Delete deletes one version.
func (m *ModelsClient) Delete(ctx context.Context, ws string, ref modelship.ModelRef) error {
	if ref.Version == 0 {
		return modelship.Errorf(modelship.EINVALID, "give the version to delete, as in %s:1", ref.Name)
	}
	return m.c.sendJSON(ctx, http.MethodDelete, versionPath(ws, ref), nil, nil)
}

// Open returns a version's metadata and a reader of its raw stored bytes
// (the file, or a tar stream of the folder). The caller closes the reader.
func (m *ModelsClient) Open(ctx context.Context, ws string, ref modelship.ModelRef) (*modelship.ModelVersion, io.ReadCloser, error) {
	mv, err := m.Get(ctx, ws, ref)
	if err != nil {
		return nil, nil, err
	}
	req, err := m.c.newRequest(ctx, http.MethodGet, versionPath(ws, modelship.ModelRef{Name: mv.Name, Version: mv.Version})+"/content", nil, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := m.c.do(req)
	if err != nil {
		return nil, nil, err
	}
	return mv, resp.Body, nil
}

// Download writes a version into outDir: a file model as outDir/<fileName>,
// a folder model as its tree under outDir. The sha256 is verified; existing
// files are not overwritten unless overwrite is set.
func (m *ModelsClient) Download(ctx context.Context, ws string, ref modelship.ModelRef, outDir string, overwrite bool) (*modelship.ModelVersion, error) {
	mv, body, err := m.Open(ctx, ws, ref)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", outDir, err)
	}
	if !overwrite {
		if entries, _ := os.ReadDir(outDir); len(entries) > 0 && (mv.AssetType == modelship.AssetFolder || exists(filepath.Join(outDir, mv.FileName))) {
			return nil, modelship.Errorf(modelship.ECONFLICT, "output folder %q is not empty; choose another or pass --overwrite", outDir)
		}
	}
	h := sha256.New()
	src := io.TeeReader(body, h)
	if mv.AssetType == modelship.AssetFolder {
		if _, err := tarutil.Extract(src, outDir); err != nil {
			return nil, fmt.Errorf("extracting %s: %w", mv.ID(), err)
		}
		io.Copy(io.Discard, src) // tar padding, so the digest covers every byte
		if err := checkDigest(h, mv.SHA256); err != nil {
			return nil, fmt.Errorf("downloading %s: %w", mv.ID(), err)
		}
		return mv, nil
	}
	verify := func() error { return checkDigest(h, mv.SHA256) }
	if err := writeFileAtomic(filepath.Join(outDir, mv.FileName), src, verify); err != nil {
		return nil, fmt.Errorf("downloading %s: %w", mv.ID(), err)
	}
	return mv, nil
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

// writeFileAtomic writes r to dst through a temporary file that is renamed
// into place only if verify accepts what was written.
func writeFileAtomic(dst string, r io.Reader, verify func() error) error {
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".download-*")
	if err != nil {
		return err
	}
	_, err = io.CopyBuffer(tmp, r, make([]byte, 1<<20))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = verify()
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", dst, err)
	}
	return nil
}

func checkDigest(h hash.Hash, want string) error {
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return modelship.Errorf(modelship.EINTERNAL, "sha256 mismatch: expected %s, received %s", want, got)
	}
	return nil
}

// folderName is the name a registered folder keeps ("." and "./" resolve
// to the current folder's name).
func folderName(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	name := filepath.Base(filepath.Clean(path))
	if name == "/" || name == "." || name == "" {
		return "model"
	}
	return name
}
