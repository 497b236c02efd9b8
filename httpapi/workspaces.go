package httpapi

import (
	"net/http"

	"github.com/modelship/modelship"
)

func (s *Server) handleListWorkspaces(w http.ResponseWriter, r *http.Request) {
	list, err := s.Workspaces.ListWorkspaces(r.Context())
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) handleCreateWorkspace(w http.ResponseWriter, r *http.Request) {
	var ws modelship.Workspace
	if err := decodeJSON(r, &ws); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	if err := s.Workspaces.CreateWorkspace(r.Context(), &ws); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	if s.Deployments != nil {
		if err := s.Deployments.EnsureLocalTarget(r.Context(), ws.Name); err != nil {
			writeError(w, r, s.Log, err)
			return
		}
	}
	writeJSON(w, http.StatusCreated, ws)
}

func (s *Server) handleGetWorkspace(w http.ResponseWriter, r *http.Request) {
	ws, err := s.Workspaces.FindWorkspace(r.Context(), r.PathValue("ws"))
	if err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, ws)
}

func (s *Server) handleDeleteWorkspace(w http.ResponseWriter, r *http.Request) {
	if err := s.Workspaces.DeleteWorkspace(r.Context(), r.PathValue("ws")); err != nil {
		writeError(w, r, s.Log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
