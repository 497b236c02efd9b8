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
	body, err := json.Marshal(ep)
	if err != nil {
		return err
	}
	res, err := db.db.ExecContext(ctx, `UPDATE endpoints SET body = ? WHERE workspace = ? AND name = ?`, string(body), ep.Workspace, ep.Name)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return modelship.Errorf(modelship.ENOTFOUND, "endpoint %q not found in workspace %q", ep.Name, ep.Workspace)
	}
	return nil
}

// FindEndpoint implements modelship.EndpointStore.
func (db *DB) FindEndpoint(ctx context.Context, ws, name string) (*modelship.Endpoint, error) {
	var body string
	err := db.db.QueryRowContext(ctx, `SELECT body FROM endpoints WHERE workspace = ? AND name = ?`, ws, name).Scan(&body)
	if err != nil {
		return nil, notFound(err, "endpoint %q not found in workspace %q", name, ws)
	}
	var ep modelship.Endpoint
	return &ep, json.Unmarshal([]byte(body), &ep)
}

// ListEndpoints implements modelship.EndpointStore.
func (db *DB) ListEndpoints(ctx context.Context, ws string) ([]*modelship.Endpoint, error) {
	q := `SELECT body FROM endpoints`
	var args []any
	if ws != "" {
		if _, err := findWorkspace(ctx, db.db, ws); err != nil {
			return nil, err
		}
		q += ` WHERE workspace = ?`
		args = append(args, ws)
	}
	rows, err := db.db.QueryContext(ctx, q+` ORDER BY workspace, name`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*modelship.Endpoint{}
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return nil, err
		}
		var ep modelship.Endpoint
		if err := json.Unmarshal([]byte(body), &ep); err != nil {
			return nil, err
		}
		out = append(out, &ep)
	}
	return out, rows.Err()
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
