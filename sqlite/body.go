package sqlite

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/modelship/modelship"
)

// Services, endpoints and compute targets are stored as JSON bodies keyed
// by (workspace, name); these helpers are the shared read and write paths.

// findBody decodes the body of one row. Returns ENOTFOUND with notFoundMsg.
func findBody[T any](ctx context.Context, db *DB, table, ws, name, kind string) (*T, error) {
	var body string
	err := db.db.QueryRowContext(ctx, `SELECT body FROM `+table+` WHERE workspace = ? AND name = ?`, ws, name).Scan(&body)
	if err != nil {
		return nil, notFound(err, "%s %q not found in workspace %q", kind, name, ws)
	}
	var v T
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		return nil, fmt.Errorf("decoding %s %s: %w", kind, name, err)
	}
	return &v, nil
}

// listBodies decodes every row of a workspace ("" = all), ordered by
// workspace and name.
func listBodies[T any](ctx context.Context, db *DB, table, ws string) ([]*T, error) {
	q := `SELECT body FROM ` + table
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
		return nil, fmt.Errorf("listing %s: %w", table, err)
	}
	defer rows.Close()
	out := []*T{}
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return nil, err
		}
		var v T
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			return nil, fmt.Errorf("decoding a row of %s: %w", table, err)
		}
		out = append(out, &v)
	}
	return out, rows.Err()
}

// putBody replaces the body of an existing row. Returns ENOTFOUND.
func putBody(ctx context.Context, db *DB, table, ws, name, kind string, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	res, err := db.db.ExecContext(ctx, `UPDATE `+table+` SET body = ? WHERE workspace = ? AND name = ?`, string(body), ws, name)
	if err != nil {
		return fmt.Errorf("updating %s %s: %w", kind, name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return modelship.Errorf(modelship.ENOTFOUND, "%s %q not found in workspace %q", kind, name, ws)
	}
	return nil
}
