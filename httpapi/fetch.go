package httpapi

import (
	"io"
	"net/http"

	"github.com/modelship/modelship"
)

// The fetch routes serve a deployment's files to its replicas. They take a
// fetch token (POST .../services/{svc}/fetchaccess) instead of the admin
// token, scoped to that one deployment.

func (s *Server) requireFetch(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := bearer(r)
		if !ok || s.Deployments.CheckFetchToken(r.PathValue("ws"), r.PathValue("dep"), tok) != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="modelship-fetch"`)
			writeError(w, r, s.Log, modelship.Errorf(modelship.EUNAUTHORIZED, "missing or invalid fetch token for this deployment"))
			return
		}
		next(w, r)
	}
}

func (s *Server) handleFetchAccess(w http.ResponseWriter, r *http.Request) {
	fa, err := s.Deployments.FetchAccess(r.Context(), r.PathValue("ws"), r.PathValue("svc"))
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, fa)
}

func (s *Server) handleFetchManifest(w http.ResponseWriter, r *http.Request) {
	m, err := s.Deployments.FetchManifest(r.Context(), r.PathValue("ws"), r.PathValue("dep"))
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}

func (s *Server) handleFetchBlob(w http.ResponseWriter, r *http.Request) {
	rc, err := s.Deployments.OpenFetchBlob(r.Context(), r.PathValue("ws"), r.PathValue("dep"), r.PathValue("sha256"))
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", ContentTypeFile)
	w.Header().Set(HeaderSHA256, r.PathValue("sha256"))
	if rs, ok := rc.(io.ReadSeeker); ok {
		http.ServeContent(w, r, "", timeZero, rs)
		return
	}
	io.Copy(w, rc)
}
