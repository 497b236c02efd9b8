package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/modelship/modelship"
)

// CreateEndpoint implements modelship.EndpointStore.
func (db *DB) CreateEndpoint(ctx context.Context, ep *modelship.Endpoint, sealed [2]string) error {
	body, err := json.Marshal(ep)
	if err != nil {
		return err
	}
	return db.withTx(ctx, func(tx *sql.Tx) error {
		if _, err := findWorkspace(ctx, tx, ep.Workspace); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO endpoints(workspace, name, body, created_time) VALUES (?, ?, ?, ?)`,
			ep.Workspace, ep.Name, string(body), formatTime(ep.CreatedTime))
		if isUniqueViolation(err) {
			return modelship.Errorf(modelship.ECONFLICT, "endpoint %q already exists in workspace %q", ep.Name, ep.Workspace)
		}
		if err != nil {
			return fmt.Errorf("storing endpoint %s: %w", ep.Name, err)
		}
		_, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO service_keys(workspace, name, primary_sealed, secondary_sealed) VALUES (?, ?, ?, ?)`,
			ep.Workspace, ep.Name, sealed[0], sealed[1])
		return err
	})
}

// PutEndpoint implements modelship.EndpointStore.
func (db *DB) PutEndpoint(ctx context.Context, ep *modelship.Endpoint) error {
	return putBody(ctx, db, "endpoints", ep.Workspace, ep.Name, "endpoint", ep)
}

// FindEndpoint implements modelship.EndpointStore.
func (db *DB) FindEndpoint(ctx context.Context, ws, name string) (*modelship.Endpoint, error) {
	return findBody[modelship.Endpoint](ctx, db, "endpoints", ws, name, "endpoint")
}

// ListEndpoints implements modelship.EndpointStore.
func (db *DB) ListEndpoints(ctx context.Context, ws string) ([]*modelship.Endpoint, error) {
	return listBodies[modelship.Endpoint](ctx, db, "endpoints", ws)
}

// DeleteEndpoint implements modelship.EndpointStore.
func (db *DB) DeleteEndpoint(ctx context.Context, ws, name string) error {
	return db.withTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM service_keys WHERE workspace = ? AND name = ?`, ws, name); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM endpoints WHERE workspace = ? AND name = ?`, ws, name)
		return err
	})
}
