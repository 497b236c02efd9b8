// Package datacollect stores what a replica collects about its traffic:
// the rows score.py sends through azureml.monitoring.ModelDataCollector,
// appended as CSV in Azure ML's model data collection layout, and sampled
// request/response payloads (the v2 data collector) as JSON lines.
//
// Collection never blocks scoring: Collect and CollectRequest only enqueue
// into a bounded queue and count a drop when it is full. A background
// goroutine formats the records, writes them in batches and fsyncs at most
// every FlushInterval (1 s); Close flushes everything. After a kill -9 at
// most the last unflushed batch is missing, and no file ever holds a torn
// row (see AppendFile).
package datacollect

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Designations of ModelDataCollector; "default" is stored as general.
var Designations = []string{"inputs", "predictions", "labels", "signals", "general"}

// CorrelationColumns are appended to every collected row, after the
// feature columns, as in Azure.
var CorrelationColumns = []string{
	"$aml_dc_correlation_id", "$aml_dc_scoring_timestamp", "$aml_dc_boundary", "$aml_workspace",
	"$aml_service_name", "$aml_model_name", "$aml_model_version", "$aml_request_id",
}

// Record is one ModelDataCollector.collect call.
type Record struct {
	Time           time.Time       // when the rows were collected
	RequestID      string          // request being scored
	CorrelationID  string          // the id collect() returned to the script
	Workspace      string          // empty: Config.Workspace
	Service        string          // empty: Config.Service
	Model          string          // model_name of the collector
	ModelVersion   string          // empty or "default": Config.ModelVersions[Model]
	Designation    string          // inputs, predictions, labels, signals, general (or default)
	CollectionName string          // collection_name of the collector (unused in the path)
	FeatureNames   []string        // CSV header; nil: col0, col1, ...
	Rows           json.RawMessage // JSON array of rows; a row is an array of cells or one value
}

// Request is one scored request sampled by the request/response collector.
type Request struct {
	Time            time.Time // when the request arrived
	RequestID       string
	ClientRequestID string
	Status          int
	Duration        time.Duration
	Request         []byte // request body (JSON is stored as JSON, anything else as a string)
	Response        []byte // response body
}

// Config configures a Writer.
type Config struct {
	// Root is the directory of collected data, <data-dir>/modeldata.
	Root string
	// Workspace and Service fill records that lack them and name the
	// directory of request logs.
	Workspace, Service string
	// ModelVersions maps a model name to its deployed version; it fills
	// records whose model_version was not given ("default").
	ModelVersions map[string]string
	// Replica names this replica in request logs (MODELSHIP_REPLICA_ID).
	Replica string
	// QueueSize bounds the records waiting to be written (default 10000).
	QueueSize int
	// QueueBytes bounds the payload bytes waiting (default 64 MiB).
	QueueBytes int64
	// FlushInterval is how often batches are written and fsynced (default 1 s).
	FlushInterval time.Duration
	// Logger receives write errors (default slog.Default()).
	Logger *slog.Logger
}

// Stats are the Writer's counters since it started.
type Stats struct {
	Records       uint64 // collect calls written
	Rows          uint64 // CSV rows written
	Requests      uint64 // request log lines written
	DroppedFull   uint64 // records dropped because the queue was full
	DroppedError  uint64 // records lost to write errors (disk full, ...)
	DroppedClosed uint64 // records offered after Close
	Flushes       uint64 // fsync rounds
}

// item is one queued record.
type item struct {
	rec  *Record
	req  *Request
	size int64
}

// Writer appends collected data to files. It is safe for concurrent use.
type Writer struct {
	cfg   Config
	log   *slog.Logger
	queue chan item
	stop  chan struct{}
	done  chan struct{}

	mu     sync.RWMutex // guards closed against sends
	closed bool

	queued    atomic.Int64
	records   atomic.Uint64
	rows      atomic.Uint64
	requests  atomic.Uint64
	dropFull  atomic.Uint64
	dropError atomic.Uint64
	dropClose atomic.Uint64
	flushes   atomic.Uint64

	files map[string]*openFile // loop only
}

// openFile is one output file with its pending batch.
type openFile struct {
	af      *AppendFile
	buf     bytes.Buffer
	pending int // records in buf
	rows    int // CSV rows in buf
	dirty   bool
	used    time.Time
}

// New starts a Writer; Close stops it.
func New(cfg Config) (*Writer, error) {
	if cfg.Root == "" {
		return nil, errors.New("datacollect: no root directory")
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 10000
	}
	if cfg.QueueBytes <= 0 {
		cfg.QueueBytes = 64 << 20
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	w := &Writer{
		cfg: cfg, log: cfg.Logger,
		queue: make(chan item, cfg.QueueSize),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
		files: make(map[string]*openFile),
	}
	go w.loop()
	return w, nil
}

// Collect enqueues a ModelDataCollector record without blocking. It
// reports false when the record was dropped (queue full or closed).
func (w *Writer) Collect(rec Record) bool {
	return w.enqueue(item{rec: &rec, size: int64(len(rec.Rows))})
}

// CollectRequest enqueues a sampled request/response without blocking.
// The bodies are kept, so the caller must not reuse them.
func (w *Writer) CollectRequest(req Request) bool {
	return w.enqueue(item{req: &req, size: int64(len(req.Request) + len(req.Response))})
}

func (w *Writer) enqueue(it item) bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		w.dropClose.Add(1)
		return false
	}
	if w.queued.Add(it.size) > w.cfg.QueueBytes {
		w.queued.Add(-it.size)
		w.dropFull.Add(1)
		return false
	}
	select {
	case w.queue <- it:
		return true
	default:
		w.queued.Add(-it.size)
		w.dropFull.Add(1)
		return false
	}
}

// Close writes and fsyncs everything queued and closes the files. It
// returns ctx's error if ctx ends first (the rest is then lost).
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	already := w.closed
	w.closed = true
	w.mu.Unlock()
	if !already {
		close(w.stop)
	}
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("flushing collected data: %w", ctx.Err())
	}
}

// Stats returns the counters.
func (w *Writer) Stats() Stats {
	return Stats{
		Records: w.records.Load(), Rows: w.rows.Load(), Requests: w.requests.Load(),
		DroppedFull: w.dropFull.Load(), DroppedError: w.dropError.Load(), DroppedClosed: w.dropClose.Load(),
		Flushes: w.flushes.Load(),
	}
}

// maxPendingBytes makes the loop write (without fsync) before the tick.
const maxPendingBytes = 4 << 20

// loop formats queued records and flushes every FlushInterval.
func (w *Writer) loop() {
	defer close(w.done)
	t := time.NewTicker(w.cfg.FlushInterval)
	defer t.Stop()
	pending := 0
	for {
		select {
		case it := <-w.queue:
			pending += w.add(it)
			if pending >= maxPendingBytes {
				w.write(false)
				pending = 0
			}
		case <-t.C:
			w.write(true)
			pending = 0
			w.closeIdle(time.Now().Add(-time.Minute))
		case <-w.stop:
		drain:
			for {
				select {
				case it := <-w.queue:
					w.add(it)
				default:
					break drain
				}
			}
			w.write(true)
			w.closeIdle(time.Now().Add(time.Hour))
			return
		}
	}
}

// add formats one item into its file's batch and returns the bytes added.
func (w *Writer) add(it item) int {
	w.queued.Add(-it.size)
	if it.rec != nil {
		return w.addRecord(it.rec)
	}
	return w.addRequest(it.req)
}

func (w *Writer) addRecord(rec *Record) int {
	ws := orDefault(rec.Workspace, w.cfg.Workspace)
	svc := orDefault(rec.Service, w.cfg.Service)
	version := rec.ModelVersion
	if version == "" || version == "default" {
		version = orDefault(w.cfg.ModelVersions[rec.Model], orDefault(version, "default"))
	}
	designation := Designation(rec.Designation)
	t := rec.Time
	if t.IsZero() {
		t = time.Now()
	}
	t = t.UTC()
	rows, err := decodeRows(rec.Rows)
	if err != nil {
		w.log.Warn("model data collection: dropping a record with bad rows", "request_id", rec.RequestID, "err", err)
		w.dropError.Add(1)
		return 0
	}
	path := filepath.Join(w.cfg.Root, PathSegment(ws), PathSegment(svc), PathSegment(rec.Model), PathSegment(version),
		designation, t.Format("2006"), t.Format("01"), t.Format("02"), "data.csv")
	header := rec.FeatureNames
	if header == nil {
		width := 0
		if len(rows) > 0 {
			width = len(rows[0])
		}
		header = make([]string, width)
		for i := range header {
			header[i] = fmt.Sprintf("col%d", i)
		}
	}
	of, err := w.open(path, func() []byte {
		var b bytes.Buffer
		cw := csv.NewWriter(&b)
		cw.Write(append(append([]string(nil), header...), CorrelationColumns...))
		cw.Flush()
		return b.Bytes()
	})
	if err != nil {
		w.log.Warn("model data collection: cannot open file", "err", err)
		w.dropError.Add(1)
		return 0
	}
	before := of.buf.Len()
	cw := csv.NewWriter(&of.buf)
	ts := t.Format("2006-01-02T15:04:05.0000000Z")
	var cells []string
	for i, row := range rows {
		cells = append(cells[:0], row...)
		cells = append(cells, rec.CorrelationID, ts, fmt.Sprint(i), ws, svc, rec.Model, version, rec.RequestID)
		cw.Write(cells)
	}
	cw.Flush()
	of.pending++
	of.rows += len(rows)
	return of.buf.Len() - before
}

func (w *Writer) addRequest(req *Request) int {
	t := req.Time
	if t.IsZero() {
		t = time.Now()
	}
	t = t.UTC()
	path := filepath.Join(w.cfg.Root, PathSegment(w.cfg.Workspace), PathSegment(w.cfg.Service), RequestsDir,
		t.Format("2006"), t.Format("01"), t.Format("02"), t.Format("15")+".jsonl")
	of, err := w.open(path, nil)
	if err != nil {
		w.log.Warn("request collection: cannot open file", "err", err)
		w.dropError.Add(1)
		return 0
	}
	line, _ := json.Marshal(struct {
		Time            string          `json:"time"`
		RequestID       string          `json:"requestId"`
		ClientRequestID string          `json:"clientRequestId,omitempty"`
		Workspace       string          `json:"workspace"`
		Service         string          `json:"service"`
		Replica         string          `json:"replica,omitempty"`
		Status          int             `json:"status"`
		DurationMS      float64         `json:"durationMs"`
		Request         json.RawMessage `json:"request"`
		Response        json.RawMessage `json:"response"`
	}{
		t.Format(time.RFC3339Nano), req.RequestID, req.ClientRequestID, w.cfg.Workspace, w.cfg.Service, w.cfg.Replica,
		req.Status, float64(req.Duration) / float64(time.Millisecond), Payload(req.Request), Payload(req.Response),
	})
	of.buf.Write(line)
	of.buf.WriteByte('\n')
	of.pending++
	return len(line) + 1
}

// RequestsDir is the directory, under <root>/<workspace>/<service>, of
// the request/response logs.
const RequestsDir = "_requests"

// open returns the file at path, opening it (with the header made by
// header, which may be nil) on first use.
func (w *Writer) open(path string, header func() []byte) (*openFile, error) {
	if of := w.files[path]; of != nil {
		of.used = time.Now()
		return of, nil
	}
	var h []byte
	if header != nil {
		h = header()
	}
	af, first, err := OpenAppend(path, h)
	if err != nil {
		return nil, err
	}
	if h != nil && !bytes.Equal(first, bytes.TrimRight(h, "\n")) {
		w.log.Warn("model data collection: the file's header differs from the collector's feature names; appending anyway",
			"path", path, "file_header", string(first))
	}
	of := &openFile{af: af, used: time.Now()}
	w.files[path] = of
	return of, nil
}

// write appends every pending batch and, when sync, fsyncs the files
// written since the last sync.
func (w *Writer) write(sync bool) {
	for path, of := range w.files {
		if of.buf.Len() > 0 {
			if err := of.af.Append(of.buf.Bytes()); err != nil {
				w.log.Warn("collected data lost", "path", path, "records", of.pending, "err", err)
				w.dropError.Add(uint64(of.pending))
			} else {
				w.countWritten(path, of.pending)
				w.rows.Add(uint64(of.rows))
				of.dirty = true
			}
			of.buf.Reset()
			of.pending, of.rows = 0, 0
		}
		if sync && of.dirty {
			if err := of.af.Sync(); err != nil {
				w.log.Warn("syncing collected data", "path", path, "err", err)
			}
			of.dirty = false
		}
	}
	if sync {
		w.flushes.Add(1)
	}
}

func (w *Writer) countWritten(path string, n int) {
	if strings.HasSuffix(path, ".jsonl") {
		w.requests.Add(uint64(n))
	} else {
		w.records.Add(uint64(n))
	}
}

// closeIdle closes the files not used since before.
func (w *Writer) closeIdle(before time.Time) {
	for path, of := range w.files {
		if of.used.Before(before) && of.buf.Len() == 0 && !of.dirty {
			of.af.Close()
			delete(w.files, path)
		}
	}
}

// Designation maps a designation to its directory: "default" and unknown
// values become "general".
func Designation(d string) string {
	switch d {
	case "inputs", "predictions", "labels", "signals", "general":
		return d
	}
	return "general"
}

// PathSegment makes s safe as one path element: characters other than
// letters, digits, '-', '_' and '.' become '_', and "", "." and ".." are
// replaced.
func PathSegment(s string) string {
	if s == "" || s == "." || s == ".." {
		return "_" + strings.Trim(s, ".") + "_"
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
}

// Payload returns b as JSON: itself when it is valid JSON, else a string.
func Payload(b []byte) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage(`null`)
	}
	if json.Valid(b) {
		var c bytes.Buffer
		if json.Compact(&c, b) == nil {
			return c.Bytes()
		}
	}
	s, _ := json.Marshal(string(b))
	return s
}

// decodeRows turns a JSON array of rows into CSV cells: strings as they
// are, null as empty, anything else as its JSON text. A row that is not
// an array is one cell.
func decodeRows(raw json.RawMessage) ([][]string, error) {
	var rows []json.RawMessage
	if err := json.Unmarshal(raw, &rows); err != nil {
		return nil, fmt.Errorf("rows are not a JSON array: %w", err)
	}
	out := make([][]string, len(rows))
	for i, r := range rows {
		r = bytes.TrimSpace(r)
		if len(r) > 0 && r[0] == '[' {
			var cells []json.RawMessage
			if err := json.Unmarshal(r, &cells); err != nil {
				return nil, fmt.Errorf("row %d: %w", i, err)
			}
			out[i] = make([]string, len(cells))
			for j, c := range cells {
				out[i][j] = cell(c)
			}
			continue
		}
		out[i] = []string{cell(r)}
	}
	return out, nil
}

func cell(c json.RawMessage) string {
	c = bytes.TrimSpace(c)
	switch {
	case len(c) == 0 || string(c) == "null":
		return ""
	case c[0] == '"':
		var s string
		if json.Unmarshal(c, &s) == nil {
			return s
		}
	}
	return string(c)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
