package httpapi

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/modelship/modelship"
)

// Upload wire format: the body is the model's bytes, streamed. Metadata
// travels in the query string; the client may send the sha256 of the body
// in the query (sha256=) or, when it computes it while streaming, in the
// HTTP trailer named by DigestTrailer.
const (
	DigestTrailer   = "X-Content-Sha256"
	ContentTypeTar  = "application/x-tar"
	ContentTypeFile = "application/octet-stream"
	HeaderAssetType = "X-Modelship-Asset-Type"
	HeaderSHA256    = "X-Modelship-Sha256"
	HeaderFileName  = "X-Modelship-File-Name"
)

func modelRef(r *http.Request) (modelship.ModelRef, error) {
	name := r.PathValue("name")
	if err := modelship.ValidateModelName(name); err != nil {
		return modelship.ModelRef{}, err
	}
	ref := modelship.ModelRef{Name: name}
	if v := r.PathValue("version"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return ref, modelship.Errorf(modelship.EINVALID, "model version %q is invalid; use a whole number from 1", v)
		}
		ref.Version = n
	}
	return ref, nil
}

// ParseKeyValues parses repeated "k=v" values into a map.
func ParseKeyValues(kind string, values []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range values {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, modelship.Errorf(modelship.EINVALID, "%s %q is invalid; use key=value", kind, kv)
		}
		out[k] = v
	}
	return out, nil
}

func (s *Server) handleListModels(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := modelship.ModelFilter{Name: q.Get("name"), Tags: map[string]string{}}
	for _, t := range q["tag"] {
		k, v, _ := strings.Cut(t, "=")
		f.Tags[k] = v
	}
	list, err := s.Models.ListModels(r.Context(), r.PathValue("ws"), f)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) handleListModelVersions(w http.ResponseWriter, r *http.Request) {
	ref, err := modelRef(r)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	list, err := s.Models.ListModels(r.Context(), r.PathValue("ws"), modelship.ModelFilter{Name: ref.Name})
	if err == nil && len(list) == 0 {
		err = modelship.Errorf(modelship.ENOTFOUND, "model %q not found in workspace %q", ref.Name, r.PathValue("ws"))
	}
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) handleGetModel(w http.ResponseWriter, r *http.Request) {
	ref, err := modelRef(r)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	mv, err := s.Models.FindModel(r.Context(), r.PathValue("ws"), ref)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, mv)
}

// limitedBody turns the server's body-size error into ETOOLARGE.
type limitedBody struct {
	r     io.Reader
	limit int64
}

func (b limitedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return n, modelship.Errorf(modelship.ETOOLARGE, "model upload is larger than the server's limit of %d bytes; nothing was stored", b.limit)
	}
	return n, err
}

func (s *Server) handleRegisterModel(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := &modelship.RegisterRequest{
		Workspace:             r.PathValue("ws"),
		Name:                  r.PathValue("name"),
		Description:           q.Get("description"),
		ModelFramework:        q.Get("modelFramework"),
		ModelFrameworkVersion: q.Get("modelFrameworkVersion"),
		FileName:              q.Get("fileName"),
		ExpectedSHA256:        q.Get("sha256"),
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case ContentTypeTar:
		req.AssetType = modelship.AssetFolder
	case ContentTypeFile, "":
		req.AssetType = modelship.AssetFile
	default:
		writeError(w, r, s.Log, modelship.Errorf(modelship.EUNSUPPORTED, "content type %q is not accepted; send %s for a file or %s for a folder", ct, ContentTypeFile, ContentTypeTar))
		return
	}
	var err error
	if req.Tags, err = ParseKeyValues("tag", q["tag"]); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	if req.Properties, err = ParseKeyValues("property", q["property"]); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	if r.ContentLength > s.MaxUploadBytes {
		writeError(w, r, s.Log, modelship.Errorf(modelship.ETOOLARGE, "model upload of %d bytes is larger than the server's limit of %d bytes; nothing was stored", r.ContentLength, s.MaxUploadBytes))
		return
	}
	req.Content = limitedBody{r: http.MaxBytesReader(w, r.Body, s.MaxUploadBytes), limit: s.MaxUploadBytes}
	req.Verify = func(digest string) error {
		if want := r.Trailer.Get(DigestTrailer); want != "" && want != digest {
			return modelship.Errorf(modelship.EINVALID, "sha256 mismatch: the client sent %s but the server received content with %s; nothing was stored", want, digest)
		}
		return nil
	}
	mv, err := s.Models.RegisterModel(r.Context(), req)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	writeJSON(w, http.StatusCreated, mv)
}

func (s *Server) handleUpdateModel(w http.ResponseWriter, r *http.Request) {
	ref, err := modelRef(r)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	var upd modelship.ModelUpdate
	if err := decodeJSON(r, &upd); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	mv, err := s.Models.UpdateModel(r.Context(), r.PathValue("ws"), ref, &upd)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, mv)
}

func (s *Server) handleDeleteModel(w http.ResponseWriter, r *http.Request) {
	ref, err := modelRef(r)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	if err := s.Models.DeleteModel(r.Context(), r.PathValue("ws"), ref); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleModelContent(w http.ResponseWriter, r *http.Request) {
	ref, err := modelRef(r)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	mv, rc, err := s.Models.OpenModelContent(r.Context(), r.PathValue("ws"), ref)
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	defer rc.Close()
	h := w.Header()
	h.Set(HeaderAssetType, mv.AssetType)
	h.Set(HeaderSHA256, mv.SHA256)
	h.Set("ETag", `"`+mv.SHA256+`"`)
	if mv.AssetType == modelship.AssetFolder {
		h.Set("Content-Type", ContentTypeTar)
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": mv.Name + "-" + strconv.Itoa(mv.Version) + ".tar"}))
	} else {
		h.Set("Content-Type", ContentTypeFile)
		h.Set(HeaderFileName, mv.FileName)
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": mv.FileName}))
	}
	if rs, ok := rc.(io.ReadSeeker); ok {
		http.ServeContent(w, r, "", mv.CreatedTime, rs)
		return
	}
	io.Copy(w, rc)
}
