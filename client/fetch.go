package client

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/internal/tarutil"
)

// Fetched is a deployment's files laid out on disk the way Azure ML lays
// them out in a container.
type Fetched struct {
	Manifest *modelship.FetchManifest
	// ModelDir is AZUREML_MODEL_DIR: the single model's folder
	// (<dir>/azureml-models/<name>/<version>) or the models' root.
	ModelDir string
	// SourceDir holds the source folder ("" without a scoring script).
	SourceDir string
}

// FetchDeployment downloads the manifest and files of a deployment
// ("<workspace>/<name>") from a control plane at baseURL with a fetch
// token, verifies every file's sha256 and lays them out under dir. Files
// already fetched (same digest) are not downloaded again.
func FetchDeployment(ctx context.Context, baseURL, token, deployment, dir string, tlsCfg *tls.Config) (*Fetched, error) {
	ws, name, ok := strings.Cut(deployment, "/")
	if !ok || ws == "" || name == "" {
		return nil, modelship.Errorf(modelship.EINVALID, "deployment %q is invalid; give <workspace>/<name>", deployment)
	}
	hc := &http.Client{Transport: newTransport(tlsCfg)}
	base := strings.TrimRight(baseURL, "/") + "/api/v1/fetch/" + url.PathEscape(ws) + "/" + url.PathEscape(name)
	get := func(path string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := hc.Do(req)
		if err != nil {
			return nil, modelship.Errorf(modelship.EUNAVAILABLE, "cannot reach the control plane at %s: %v", baseURL, unwrapURLError(err))
		}
		if resp.StatusCode >= 300 {
			defer resp.Body.Close()
			return nil, decodeError(resp)
		}
		return resp, nil
	}
	resp, err := get("/manifest")
	if err != nil {
		return nil, fmt.Errorf("fetching the manifest of %s: %w", deployment, err)
	}
	var m modelship.FetchManifest
	err = json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("decoding the manifest of %s: %w", deployment, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// fetchTo downloads a blob and lets fill write it under dst, once.
	fetchTo := func(digest, dst string, fill func(io.Reader, string) error) error {
		marker := filepath.Join(dir, ".fetched-"+digest+"-"+strings.ReplaceAll(strings.TrimPrefix(dst, dir), string(os.PathSeparator), "_"))
		if _, err := os.Stat(marker); err == nil {
			return nil
		}
		resp, err := get("/blobs/" + digest)
		if err != nil {
			return fmt.Errorf("fetching %s: %w", digest, err)
		}
		defer resp.Body.Close()
		os.RemoveAll(dst)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		h := sha256.New()
		tee := io.TeeReader(resp.Body, h)
		if err := fill(tee, dst); err != nil {
			return fmt.Errorf("writing %s: %w", digest, err)
		}
		io.Copy(io.Discard, tee)
		if got := hex.EncodeToString(h.Sum(nil)); got != digest {
			os.RemoveAll(dst)
			return modelship.Errorf(modelship.EINTERNAL, "sha256 mismatch for %s: received %s", digest, got)
		}
		return os.WriteFile(marker, nil, 0o644)
	}
	root := filepath.Join(dir, "azureml-models")
	for _, mv := range m.Models {
		dst := filepath.Join(root, mv.Name, strconv.Itoa(mv.Version))
		err := fetchTo(mv.SHA256, dst, func(r io.Reader, dst string) error {
			if mv.AssetType == modelship.AssetFolder {
				_, err := tarutil.Extract(r, dst)
				return err
			}
			if err := modelship.ValidateFileName(mv.FileName); err != nil {
				return err
			}
			f, err := os.Create(filepath.Join(dst, mv.FileName))
			if err != nil {
				return err
			}
			_, err = io.Copy(f, r)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("model %s:%d: %w", mv.Name, mv.Version, err)
		}
	}
	out := &Fetched{Manifest: &m, ModelDir: root}
	if len(m.Models) == 1 {
		out.ModelDir = filepath.Join(root, m.Models[0].Name, strconv.Itoa(m.Models[0].Version))
	}
	if m.Source != nil {
		out.SourceDir = filepath.Join(dir, "source")
		if err := fetchTo(m.Source.SHA256, out.SourceDir, func(r io.Reader, dst string) error {
			_, err := tarutil.Extract(r, dst)
			return err
		}); err != nil {
			return nil, fmt.Errorf("source folder: %w", err)
		}
		// The source folder is the app root, as Azure's /var/azureml-app:
		// azureml-models/ is found next to the script.
		link := filepath.Join(out.SourceDir, "azureml-models")
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			if err := os.Symlink(filepath.Join("..", "azureml-models"), link); err != nil {
				return nil, fmt.Errorf("source folder: %w", err)
			}
		}
	}
	return out, nil
}
