package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/modelship/modelship"
)

// CreateService implements modelship.ServiceStore.
func (db *DB) CreateService(ctx context.Context, svc *modelship.Service, sealed [2]string) error {
	body, err := json.Marshal(svc)
	if err != nil {
		return err
	}
	return db.withTx(ctx, func(tx *sql.Tx) error {
		if _, err := findWorkspace(ctx, tx, svc.Workspace); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO services(workspace, name, body, created_time) VALUES (?, ?, ?, ?)`,
			svc.Workspace, svc.Name, string(body), formatTime(svc.CreatedTime))
		if isUniqueViolation(err) {
			return modelship.Errorf(modelship.ECONFLICT, "service %q already exists in workspace %q; pass --overwrite to replace it", svc.Name, svc.Workspace)
		}
		if err != nil {
			return fmt.Errorf("storing service %s: %w", svc.Name, err)
		}
		_, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO service_keys(workspace, name, primary_sealed, secondary_sealed) VALUES (?, ?, ?, ?)`,
			svc.Workspace, svc.Name, sealed[0], sealed[1])
		return err
	})
}

// PutService implements modelship.ServiceStore.
func (db *DB) PutService(ctx context.Context, svc *modelship.Service) error {
	return putBody(ctx, db, "services", svc.Workspace, svc.Name, "service", svc)
}

// FindService implements modelship.ServiceStore.
func (db *DB) FindService(ctx context.Context, ws, name string) (*modelship.Service, error) {
	return findBody[modelship.Service](ctx, db, "services", ws, name, "service")
}

// ListServices implements modelship.ServiceStore.
func (db *DB) ListServices(ctx context.Context, ws string) ([]*modelship.Service, error) {
	return listBodies[modelship.Service](ctx, db, "services", ws)
}

// DeleteService implements modelship.ServiceStore.
func (db *DB) DeleteService(ctx context.Context, ws, name string) error {
	return db.withTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM service_keys WHERE workspace = ? AND name = ?`, ws, name); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM services WHERE workspace = ? AND name = ?`, ws, name)
		return err
	})
}

// ServiceKeys implements modelship.ServiceStore.
func (db *DB) ServiceKeys(ctx context.Context, ws, name string) ([2]string, error) {
	var k [2]string
	err := db.db.QueryRowContext(ctx, `SELECT primary_sealed, secondary_sealed FROM service_keys WHERE workspace = ? AND name = ?`, ws, name).Scan(&k[0], &k[1])
	if err != nil {
		return k, notFound(err, "keys of service %q not found", name)
	}
	return k, nil
}

// SetServiceKeys implements modelship.ServiceStore.
func (db *DB) SetServiceKeys(ctx context.Context, ws, name string, sealed [2]string) error {
	_, err := db.db.ExecContext(ctx, `INSERT OR REPLACE INTO service_keys(workspace, name, primary_sealed, secondary_sealed) VALUES (?, ?, ?, ?)`, ws, name, sealed[0], sealed[1])
	return err
}

// CreateOperation implements modelship.ServiceStore.
func (db *DB) CreateOperation(ctx context.Context, op *modelship.Operation) error {
	if op.CreatedTime.IsZero() {
		op.CreatedTime = db.Now().UTC()
	}
	_, err := db.db.ExecContext(ctx, `INSERT INTO operations(id, workspace, target, kind, state, created_time) VALUES (?, ?, ?, ?, ?, ?)`,
		op.ID, op.Workspace, op.Target, op.Kind, op.State, formatTime(op.CreatedTime))
	return err
}

// AppendOperationLog implements modelship.ServiceStore.
func (db *DB) AppendOperationLog(ctx context.Context, id, message string) error {
	_, err := db.db.ExecContext(ctx, `INSERT INTO operation_logs(op_id, seq, time, message)
		VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM operation_logs WHERE op_id = ?), ?, ?)`, id, id, formatTime(db.Now()), message)
	return err
}

// FinishOperation implements modelship.ServiceStore.
func (db *DB) FinishOperation(ctx context.Context, id, state string, opErr *modelship.ServiceError) error {
	errText := ""
	if opErr != nil {
		b, _ := json.Marshal(opErr)
		errText = string(b)
	}
	_, err := db.db.ExecContext(ctx, `UPDATE operations SET state = ?, error = ?, end_time = ? WHERE id = ?`, state, errText, formatTime(db.Now()), id)
	return err
}

// FindOperation implements modelship.ServiceStore.
func (db *DB) FindOperation(ctx context.Context, id string, afterSeq int) (*modelship.Operation, error) {
	var op modelship.Operation
	var errText, created, ended string
	err := db.db.QueryRowContext(ctx, `SELECT id, workspace, target, kind, state, error, created_time, end_time FROM operations WHERE id = ?`, id).
		Scan(&op.ID, &op.Workspace, &op.Target, &op.Kind, &op.State, &errText, &created, &ended)
	if err != nil {
		return nil, notFound(err, "operation %q not found", id)
	}
	op.CreatedTime = parseTime(created)
	if ended != "" {
		t := parseTime(ended)
		op.EndTime = &t
	}
	if errText != "" {
		op.Error = &modelship.ServiceError{}
		json.Unmarshal([]byte(errText), op.Error)
	}
	rows, err := db.db.QueryContext(ctx, `SELECT seq, time, message FROM operation_logs WHERE op_id = ? AND seq > ? ORDER BY seq`, id, afterSeq)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var l modelship.OperationLog
		var t string
		if err := rows.Scan(&l.Seq, &t, &l.Message); err != nil {
			return nil, err
		}
		l.Time = parseTime(t)
		op.Log = append(op.Log, l)
	}
	return &op, rows.Err()
}

// RunningOperations implements modelship.ServiceStore.
func (db *DB) RunningOperations(ctx context.Context) ([]*modelship.Operation, error) {
	rows, err := db.db.QueryContext(ctx, `SELECT id FROM operations WHERE state = ?`, modelship.OpRunning)
	if err != nil {
		return nil, err
	}
	var ids []string
	for rows.Next() {
		var id string
		rows.Scan(&id)
		ids = append(ids, id)
	}
	rows.Close()
	var out []*modelship.Operation
	for _, id := range ids {
		op, err := db.FindOperation(ctx, id, 0)
		if err != nil {
			return nil, err
		}
		out = append(out, op)
	}
	return out, nil
}

// CreateComputeTarget implements modelship.ComputeTargetStore.
func (db *DB) CreateComputeTarget(ctx context.Context, ct *modelship.ComputeTarget) error {
	if ct.CreatedTime.IsZero() {
		ct.CreatedTime = db.Now().UTC()
	}
	body, err := json.Marshal(ct)
	if err != nil {
		return err
	}
	return db.withTx(ctx, func(tx *sql.Tx) error {
		if _, err := findWorkspace(ctx, tx, ct.Workspace); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO compute_targets(workspace, name, body, created_time) VALUES (?, ?, ?, ?)`,
			ct.Workspace, ct.Name, string(body), formatTime(ct.CreatedTime))
		if isUniqueViolation(err) {
			return modelship.Errorf(modelship.ECONFLICT, "compute target %q already exists in workspace %q", ct.Name, ct.Workspace)
		}
		return err
	})
}

// FindComputeTarget implements modelship.ComputeTargetStore.
func (db *DB) FindComputeTarget(ctx context.Context, ws, name string) (*modelship.ComputeTarget, error) {
	return findBody[modelship.ComputeTarget](ctx, db, "compute_targets", ws, name, "compute target")
}

// PutComputeTarget implements modelship.ComputeTargetStore.
func (db *DB) PutComputeTarget(ctx context.Context, ct *modelship.ComputeTarget) error {
	return putBody(ctx, db, "compute_targets", ct.Workspace, ct.Name, "compute target", ct)
}

// ListComputeTargets implements modelship.ComputeTargetStore.
func (db *DB) ListComputeTargets(ctx context.Context, ws string) ([]*modelship.ComputeTarget, error) {
	return listBodies[modelship.ComputeTarget](ctx, db, "compute_targets", ws)
}

// DeleteComputeTarget implements modelship.ComputeTargetStore.
func (db *DB) DeleteComputeTarget(ctx context.Context, ws, name string) error {
	_, err := db.db.ExecContext(ctx, `DELETE FROM compute_targets WHERE workspace = ? AND name = ?`, ws, name)
	return err
}
