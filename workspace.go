package modelship

import (
	"context"
	"time"
)

// DefaultWorkspace is the workspace that always exists.
const DefaultWorkspace = "default"

// Workspace scopes every other object: models, services, compute targets.
type Workspace struct {
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	CreatedTime time.Time `json:"createdTime"`
}

// Validate reports whether the workspace fields are acceptable.
func (w *Workspace) Validate() error {
	if err := ValidateWorkspaceName(w.Name); err != nil {
		return err
	}
	if len(w.Description) > MaxDescriptionLen {
		return Errorf(EINVALID, "description is %d characters long; at most %d are allowed", len(w.Description), MaxDescriptionLen)
	}
	return nil
}

// WorkspaceService manages workspaces.
type WorkspaceService interface {
	// CreateWorkspace creates a workspace. Returns EINVALID for a bad name
	// and ECONFLICT if it exists.
	CreateWorkspace(ctx context.Context, ws *Workspace) error
	// FindWorkspace returns a workspace by name. Returns ENOTFOUND.
	FindWorkspace(ctx context.Context, name string) (*Workspace, error)
	// ListWorkspaces returns all workspaces ordered by name.
	ListWorkspaces(ctx context.Context) ([]*Workspace, error)
	// DeleteWorkspace deletes an empty workspace. Returns ENOTFOUND, and
	// ECONFLICT for the default workspace or one that still holds objects.
	DeleteWorkspace(ctx context.Context, name string) error
}
