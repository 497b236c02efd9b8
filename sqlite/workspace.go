package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/modelship/modelship"
)

// CreateWorkspace implements modelship.WorkspaceService.
func (db *DB) CreateWorkspace(ctx context.Context, ws *modelship.Workspace) error {
	if err := ws.Validate(); err != nil {
		return err
	}
	ws.CreatedTime = db.Now().UTC()
	_, err := db.db.ExecContext(ctx, `INSERT INTO workspaces(name, description, created_time) VALUES (?, ?, ?)`,
		ws.Name, ws.Description, formatTime(ws.CreatedTime))
	if isUniqueViolation(err) {
		return modelship.Errorf(modelship.ECONFLICT, "workspace %q already exists", ws.Name)
	}
	if err != nil {
		return fmt.Errorf("creating workspace: %w", err)
	}
	return nil
}

// FindWorkspace implements modelship.WorkspaceService.
func (db *DB) FindWorkspace(ctx context.Context, name string) (*modelship.Workspace, error) {
	return findWorkspace(ctx, db.db, name)
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func findWorkspace(ctx context.Context, q queryer, name string) (*modelship.Workspace, error) {
	var ws modelship.Workspace
	var created string
	err := q.QueryRowContext(ctx, `SELECT name, description, created_time FROM workspaces WHERE name = ?`, name).
		Scan(&ws.Name, &ws.Description, &created)
	if err != nil {
		return nil, notFound(err, "workspace %q not found", name)
	}
	ws.CreatedTime = parseTime(created)
	return &ws, nil
}

// ListWorkspaces implements modelship.WorkspaceService.
func (db *DB) ListWorkspaces(ctx context.Context) ([]*modelship.Workspace, error) {
	rows, err := db.db.QueryContext(ctx, `SELECT name, description, created_time FROM workspaces ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("listing workspaces: %w", err)
	}
	defer rows.Close()
	out := []*modelship.Workspace{}
	for rows.Next() {
		var ws modelship.Workspace
		var created string
		if err := rows.Scan(&ws.Name, &ws.Description, &created); err != nil {
			return nil, err
		}
		ws.CreatedTime = parseTime(created)
		out = append(out, &ws)
	}
	return out, rows.Err()
}

// DeleteWorkspace implements modelship.WorkspaceService.
func (db *DB) DeleteWorkspace(ctx context.Context, name string) error {
	if name == modelship.DefaultWorkspace {
		return modelship.Errorf(modelship.ECONFLICT, "the %q workspace cannot be deleted", name)
	}
	return db.withTx(ctx, func(tx *sql.Tx) error {
		if _, err := findWorkspace(ctx, tx, name); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM model_versions WHERE workspace = ?`, name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return modelship.Errorf(modelship.ECONFLICT, "workspace %q still holds %d model version(s); delete them first", name, n)
		}
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM services WHERE workspace = ?`, name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return modelship.Errorf(modelship.ECONFLICT, "workspace %q still holds %d service(s); delete them first", name, n)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM compute_targets WHERE workspace = ?`, name); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM model_names WHERE workspace = ?`, name); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM workspaces WHERE name = ?`, name)
		return err
	})
}
