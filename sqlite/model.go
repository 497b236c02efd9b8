package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/modelship/modelship"
)

const modelColumns = `workspace, name, version, tags, properties, description, framework, framework_version,
	asset_type, file_name, file_count, size_bytes, sha256, created_time`

type scanner interface{ Scan(dest ...any) error }

func scanModel(s scanner) (*modelship.ModelVersion, error) {
	var m modelship.ModelVersion
	var tags, props, created string
	if err := s.Scan(&m.Workspace, &m.Name, &m.Version, &tags, &props, &m.Description, &m.ModelFramework,
		&m.ModelFrameworkVersion, &m.AssetType, &m.FileName, &m.FileCount, &m.SizeBytes, &m.SHA256, &created); err != nil {
		return nil, err
	}
	m.Tags = map[string]string{}
	m.Properties = map[string]string{}
	if err := json.Unmarshal([]byte(tags), &m.Tags); err != nil {
		return nil, fmt.Errorf("decoding tags of %s:%d: %w", m.Name, m.Version, err)
	}
	if err := json.Unmarshal([]byte(props), &m.Properties); err != nil {
		return nil, fmt.Errorf("decoding properties of %s:%d: %w", m.Name, m.Version, err)
	}
	m.CreatedTime = parseTime(created)
	return &m, nil
}

func jsonMap(m map[string]string) string {
	if m == nil {
		m = map[string]string{}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// CreateModelVersion implements modelship.ModelStore.
func (db *DB) CreateModelVersion(ctx context.Context, mv *modelship.ModelVersion) error {
	return db.withTx(ctx, func(tx *sql.Tx) error {
		if _, err := findWorkspace(ctx, tx, mv.Workspace); err != nil {
			return err
		}
		var last int
		err := tx.QueryRowContext(ctx, `SELECT last_version FROM model_names WHERE workspace = ? AND name = ?`, mv.Workspace, mv.Name).Scan(&last)
		switch {
		case err == sql.ErrNoRows:
			_, err = tx.ExecContext(ctx, `INSERT INTO model_names(workspace, name, last_version) VALUES (?, ?, 1)`, mv.Workspace, mv.Name)
		case err == nil:
			_, err = tx.ExecContext(ctx, `UPDATE model_names SET last_version = ? WHERE workspace = ? AND name = ?`, last+1, mv.Workspace, mv.Name)
		}
		if err != nil {
			return fmt.Errorf("allocating a version of %q: %w", mv.Name, err)
		}
		mv.Version = last + 1
		mv.CreatedTime = db.Now().UTC()
		if mv.Tags == nil {
			mv.Tags = map[string]string{}
		}
		if mv.Properties == nil {
			mv.Properties = map[string]string{}
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO model_versions(`+modelColumns+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
			mv.Workspace, mv.Name, mv.Version, jsonMap(mv.Tags), jsonMap(mv.Properties), mv.Description, mv.ModelFramework,
			mv.ModelFrameworkVersion, mv.AssetType, mv.FileName, mv.FileCount, mv.SizeBytes, mv.SHA256, formatTime(mv.CreatedTime))
		if err != nil {
			return fmt.Errorf("storing %s:%d: %w", mv.Name, mv.Version, err)
		}
		return nil
	})
}

// FindModelVersion implements modelship.ModelStore.
func (db *DB) FindModelVersion(ctx context.Context, ws string, ref modelship.ModelRef) (*modelship.ModelVersion, error) {
	return findModel(ctx, db.db, ws, ref)
}

func findModel(ctx context.Context, q queryer, ws string, ref modelship.ModelRef) (*modelship.ModelVersion, error) {
	if _, err := findWorkspace(ctx, q, ws); err != nil {
		return nil, err
	}
	var row *sql.Row
	if ref.Version == 0 {
		row = q.QueryRowContext(ctx, `SELECT `+modelColumns+` FROM model_versions WHERE workspace = ? AND name = ? ORDER BY version DESC LIMIT 1`, ws, ref.Name)
	} else {
		row = q.QueryRowContext(ctx, `SELECT `+modelColumns+` FROM model_versions WHERE workspace = ? AND name = ? AND version = ?`, ws, ref.Name, ref.Version)
	}
	m, err := scanModel(row)
	if err != nil {
		if ref.Version == 0 {
			return nil, notFound(err, "model %q not found in workspace %q", ref.Name, ws)
		}
		return nil, notFound(err, "model %s not found in workspace %q", ref, ws)
	}
	return m, nil
}

// ListModelVersions implements modelship.ModelStore.
func (db *DB) ListModelVersions(ctx context.Context, ws string, f modelship.ModelFilter) ([]*modelship.ModelVersion, error) {
	if _, err := findWorkspace(ctx, db.db, ws); err != nil {
		return nil, err
	}
	q := `SELECT ` + modelColumns + ` FROM model_versions WHERE workspace = ?`
	args := []any{ws}
	if f.Name != "" {
		q += ` AND name = ?`
		args = append(args, f.Name)
	}
	rows, err := db.db.QueryContext(ctx, q+` ORDER BY name, version`, args...)
	if err != nil {
		return nil, fmt.Errorf("listing models: %w", err)
	}
	defer rows.Close()
	out := []*modelship.ModelVersion{}
	for rows.Next() {
		m, err := scanModel(rows)
		if err != nil {
			return nil, err
		}
		if matchTags(m.Tags, f.Tags) {
			out = append(out, m)
		}
	}
	return out, rows.Err()
}

func matchTags(have, want map[string]string) bool {
	for k, v := range want {
		got, ok := have[k]
		if !ok || (v != "" && got != v) {
			return false
		}
	}
	return true
}

// UpdateModelVersion implements modelship.ModelStore.
func (db *DB) UpdateModelVersion(ctx context.Context, ws string, ref modelship.ModelRef, upd *modelship.ModelUpdate) (*modelship.ModelVersion, error) {
	if err := upd.Validate(); err != nil {
		return nil, err
	}
	var out *modelship.ModelVersion
	err := db.withTx(ctx, func(tx *sql.Tx) error {
		m, err := findModel(ctx, tx, ws, ref)
		if err != nil {
			return err
		}
		var changed []string
		for k, v := range upd.AddProperties {
			if old, ok := m.Properties[k]; ok && old != v {
				changed = append(changed, k)
			}
		}
		if len(changed) > 0 {
			sort.Strings(changed)
			return modelship.Errorf(modelship.EINVALID, "properties are add-only; %s already set on %s with another value", strings.Join(changed, ", "), m.ID())
		}
		for k, v := range upd.AddProperties {
			m.Properties[k] = v
		}
		for _, k := range upd.RemoveTags {
			delete(m.Tags, k)
		}
		for k, v := range upd.AddTags {
			m.Tags[k] = v
		}
		if err := modelship.ValidateTags("tag", m.Tags); err != nil {
			return err
		}
		if err := modelship.ValidateTags("property", m.Properties); err != nil {
			return err
		}
		if upd.Description != nil {
			m.Description = *upd.Description
		}
		_, err = tx.ExecContext(ctx, `UPDATE model_versions SET tags = ?, properties = ?, description = ? WHERE workspace = ? AND name = ? AND version = ?`,
			jsonMap(m.Tags), jsonMap(m.Properties), m.Description, ws, m.Name, m.Version)
		if err != nil {
			return fmt.Errorf("updating %s: %w", m.ID(), err)
		}
		out = m
		return nil
	})
	return out, err
}

// DeleteModelVersion implements modelship.ModelStore.
func (db *DB) DeleteModelVersion(ctx context.Context, ws string, ref modelship.ModelRef) (*modelship.ModelVersion, bool, error) {
	var deleted *modelship.ModelVersion
	var inUse bool
	err := db.withTx(ctx, func(tx *sql.Tx) error {
		m, err := findModel(ctx, tx, ws, ref)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM model_versions WHERE workspace = ? AND name = ? AND version = ?`, ws, m.Name, m.Version); err != nil {
			return fmt.Errorf("deleting %s: %w", m.ID(), err)
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM model_versions WHERE sha256 = ?`, m.SHA256).Scan(&n); err != nil {
			return err
		}
		deleted, inUse = m, n > 0
		return nil
	})
	return deleted, inUse, err
}

// ModelDigests implements modelship.ModelStore.
func (db *DB) ModelDigests(ctx context.Context) ([]string, error) {
	rows, err := db.db.QueryContext(ctx, `SELECT DISTINCT sha256 FROM model_versions ORDER BY sha256`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}
