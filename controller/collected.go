package controller

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/datacollect"
)

// Designations of ModelDataCollector (spec §7.2).
var designations = []string{"inputs", "predictions", "labels", "signals", "general"}

// CollectedData writes, as CSV, the rows a service's ModelDataCollector
// stored for one designation (all models, or one) scored at or after since.
// A header line is written before the first row and again whenever the
// columns change (another model with other feature names).
func (c *Controller) CollectedData(ctx context.Context, ws, name, designation, model string, since time.Time, w io.Writer) error {
	svc, err := c.store().FindService(ctx, ws, name)
	if err != nil {
		return err
	}
	if svc.Endpoint != "" {
		return modelship.Errorf(modelship.ENOTFOUND, "service %q not found in workspace %q", name, ws)
	}
	if designation == "default" {
		designation = "general"
	}
	known := false
	for _, d := range designations {
		known = known || d == designation
	}
	if !known {
		return modelship.Errorf(modelship.EINVALID, "designation %q is invalid; use one of %s", designation, strings.Join(designations, ", "))
	}
	root := filepath.Join(c.cfg.DataDir, "modeldata", datacollect.PathSegment(ws), datacollect.PathSegment(name))
	pattern := filepath.Join(root, "*", "*", datacollect.PathSegment(designation), "*", "*", "*", "data.csv")
	if model != "" {
		pattern = filepath.Join(root, datacollect.PathSegment(model), "*", datacollect.PathSegment(designation), "*", "*", "*", "data.csv")
	}
	files, err := filepath.Glob(pattern)
	if err != nil {
		return err
	}
	// Order by day, then by path; skip days before since.
	type file struct{ day, path string }
	var list []file
	sinceDay := since.UTC().Format("2006/01/02")
	for _, f := range files {
		rel, _ := filepath.Rel(root, f)
		parts := strings.Split(filepath.ToSlash(rel), "/")
		if len(parts) < 7 {
			continue
		}
		day := strings.Join(parts[3:6], "/")
		if !since.IsZero() && day < sinceDay {
			continue
		}
		list = append(list, file{day, f})
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].day != list[j].day {
			return list[i].day < list[j].day
		}
		return list[i].path < list[j].path
	})
	out := csv.NewWriter(w)
	defer out.Flush()
	var lastHeader string
	for _, f := range list {
		if err := copyRows(f.path, since, out, &lastHeader); err != nil {
			return fmt.Errorf("reading %s: %w", f.path, err)
		}
	}
	return out.Error()
}

func copyRows(path string, since time.Time, out *csv.Writer, lastHeader *string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := csv.NewReader(bufio.NewReader(f))
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err == io.EOF {
		return nil
	}
	if err != nil {
		return err
	}
	tsCol := -1
	for i, h := range header {
		if h == "$aml_dc_scoring_timestamp" {
			tsCol = i
		}
	}
	key := strings.Join(header, ",")
	for {
		row, err := r.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if !since.IsZero() && tsCol >= 0 && tsCol < len(row) {
			if t, err := time.Parse("2006-01-02T15:04:05.0000000Z", row[tsCol]); err == nil && t.Before(since) {
				continue
			}
		}
		if key != *lastHeader {
			if err := out.Write(header); err != nil {
				return err
			}
			*lastHeader = key
		}
		if err := out.Write(row); err != nil {
			return err
		}
	}
}
