// Package telemetry writes a replica's request telemetry: one JSON line per
// request with the fields of Azure ML's App Insights "requests" and
// "model_data_collection" records (request id, client request id,
// workspace, service, models, status, duration, replica and, when model
// data collection is on, input and prediction up to 64 KB each), under
// <dir>/<workspace>/<service>/requests-YYYYMMDD-HH[.N].jsonl. The front
// end writes its own records (GatewayRecord) the same way, with FilePrefix
// "gateway".
//
// Files roll every hour (UTC) and when they reach MaxFileBytes (the next
// one gets the suffix .1, .2, ...); files older than MaxAge are deleted.
// Record never blocks: it enqueues into a bounded buffer and counts a drop
// when it is full. Lines are written in batches, fsynced at most every
// FlushInterval, and never torn (datacollect.AppendFile).
package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelship/modelship/datacollect"
	"github.com/prometheus/client_golang/prometheus"
)

// MaxPayload is the largest input or prediction kept in a record, as in
// Azure (larger payloads are not logged).
const MaxPayload = 64 << 10

// Record is one request as seen by the replica.
type Record struct {
	Time            time.Time     // when the request arrived
	Duration        time.Duration // time to serve it
	Method          string        // HTTP method
	Path            string        // URL path (the App Insights "name")
	RequestID       string        // x-request-id
	ClientRequestID string        // x-ms-client-request-id
	TraceParent     string        // W3C traceparent, when the caller sent one
	Status          int           // HTTP status answered
	Input           []byte        // request body, when model data collection is on (≤ MaxPayload)
	Prediction      []byte        // response body, likewise
}

// Config configures a Writer.
type Config struct {
	// Dir is the telemetry directory, <data-dir>/telemetry.
	Dir string
	// Workspace, Service, Models (name:version) and Replica are written in
	// every record.
	Workspace, Service string
	Models             []string
	Replica            string
	// BufferSize bounds the records waiting to be written (default 10000).
	BufferSize int
	// FlushInterval is how often records are written and fsynced (default 1 s).
	FlushInterval time.Duration
	// MaxFileBytes rolls a file over to the next suffix (default 64 MiB).
	MaxFileBytes int64
	// MaxAge deletes older files of the service (default 7 days; < 0 keeps all).
	MaxAge time.Duration
	// FilePrefix names the files, <prefix>-YYYYMMDD-HH[.N].jsonl: "requests"
	// (the default) for replicas, "gateway" for the front end.
	FilePrefix string
	// Logger receives write errors (default slog.Default()).
	Logger *slog.Logger
}

// Writer writes telemetry records. It is safe for concurrent use.
type Writer struct {
	cfg    Config
	log    *slog.Logger
	dir    string // <Dir>/<workspace>/<service>
	models []string
	queue  chan entry
	stop   chan struct{}
	done   chan struct{}

	mu     sync.RWMutex
	closed bool

	written atomic.Uint64
	dropped atomic.Uint64
	errors  atomic.Uint64

	// loop only
	hour    string
	index   int
	file    *datacollect.AppendFile
	buf     bytes.Buffer
	pending int
	dirty   bool
	cleaned time.Time // last cleanup
}

// New starts a Writer; Close stops it.
func New(cfg Config) (*Writer, error) {
	if cfg.Dir == "" {
		return nil, errors.New("telemetry: no directory")
	}
	if cfg.BufferSize <= 0 {
		cfg.BufferSize = 10000
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = time.Second
	}
	if cfg.MaxFileBytes <= 0 {
		cfg.MaxFileBytes = 64 << 20
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = 7 * 24 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.FilePrefix == "" {
		cfg.FilePrefix = "requests"
	}
	w := &Writer{
		cfg: cfg, log: cfg.Logger,
		dir:    filepath.Join(cfg.Dir, datacollect.PathSegment(cfg.Workspace), datacollect.PathSegment(cfg.Service)),
		models: cfg.Models,
		queue:  make(chan entry, cfg.BufferSize),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	if w.models == nil {
		w.models = []string{}
	}
	if err := os.MkdirAll(w.dir, 0o755); err != nil {
		return nil, fmt.Errorf("telemetry directory: %w", err)
	}
	go w.loop()
	return w, nil
}

// Record enqueues rec without blocking; it reports false (and counts a
// drop) when the buffer is full or the writer is closed. The Input and
// Prediction slices are kept: the caller must not reuse them.
func (w *Writer) Record(rec *Record) bool { return w.enqueue(rec) }

// RecordGateway enqueues a front-end record like Record.
func (w *Writer) RecordGateway(rec *GatewayRecord) bool { return w.enqueue(rec) }

func (w *Writer) enqueue(rec entry) bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		w.dropped.Add(1)
		return false
	}
	select {
	case w.queue <- rec:
		return true
	default:
		w.dropped.Add(1)
		return false
	}
}

// Close writes and fsyncs the buffered records and closes the file.
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
		return fmt.Errorf("flushing telemetry: %w", ctx.Err())
	}
}

// Written and Dropped count the records written and dropped so far.
func (w *Writer) Written() uint64 { return w.written.Load() }

// Dropped counts the records dropped (buffer full, write error, closed).
func (w *Writer) Dropped() uint64 { return w.dropped.Load() + w.errors.Load() }

// BufferDrops counts the records dropped because the buffer was full or
// the writer closed; WriteErrors those lost to write errors.
func (w *Writer) BufferDrops() uint64 { return w.dropped.Load() }

// WriteErrors counts the records lost to write errors.
func (w *Writer) WriteErrors() uint64 { return w.errors.Load() }

// Collectors returns the Writer's Prometheus metrics:
//
//	modelship_modelserver_telemetry_records_total
//	modelship_modelserver_telemetry_dropped_total{reason="buffer_full"|"write_error"}
func (w *Writer) Collectors() []prometheus.Collector {
	const dropHelp = "Telemetry records dropped: buffer full (scoring never waits) or write errors."
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "modelship", Subsystem: "modelserver", Name: "telemetry_records_total",
			Help: "Request telemetry records written.",
		}, func() float64 { return float64(w.written.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "modelship", Subsystem: "modelserver", Name: "telemetry_dropped_total",
			Help: dropHelp, ConstLabels: prometheus.Labels{"reason": "buffer_full"},
		}, func() float64 { return float64(w.dropped.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "modelship", Subsystem: "modelserver", Name: "telemetry_dropped_total",
			Help: dropHelp, ConstLabels: prometheus.Labels{"reason": "write_error"},
		}, func() float64 { return float64(w.errors.Load()) }),
	}
}

// line is the JSON form of a record.
type line struct {
	Time            string          `json:"time"`
	Name            string          `json:"name"`
	Method          string          `json:"httpMethod"`
	RequestID       string          `json:"requestId"`
	ClientRequestID string          `json:"clientRequestId,omitempty"`
	TraceParent     string          `json:"traceparent,omitempty"`
	Workspace       string          `json:"workspaceName"`
	Service         string          `json:"serviceName"`
	Models          []string        `json:"models"`
	Replica         string          `json:"containerId"`
	Status          int             `json:"resultCode"`
	Success         bool            `json:"success"`
	DurationMS      float64         `json:"durationMs"`
	Input           json.RawMessage `json:"input,omitempty"`
	Prediction      json.RawMessage `json:"prediction,omitempty"`
}

func (w *Writer) loop() {
	defer close(w.done)
	t := time.NewTicker(w.cfg.FlushInterval)
	defer t.Stop()
	w.cleanup(time.Now())
	for {
		select {
		case rec := <-w.queue:
			w.add(rec)
			if w.buf.Len() >= 1<<20 {
				w.write(false)
			}
		case now := <-t.C:
			w.write(true)
			if now.Sub(w.cleaned) >= time.Hour {
				w.cleanup(now)
			}
		case <-w.stop:
		drain:
			for {
				select {
				case rec := <-w.queue:
					w.add(rec)
				default:
					break drain
				}
			}
			w.write(true)
			if w.file != nil {
				w.file.Close()
			}
			return
		}
	}
}

// entry is a queued record: a replica's *Record or a front end's
// *GatewayRecord.
type entry interface {
	at() time.Time
	marshal(w *Writer, t time.Time) ([]byte, error)
}

func (rec *Record) at() time.Time { return rec.Time }

// add formats rec into the batch, writing the batch first when rec
// belongs to a new hour.
func (w *Writer) add(rec entry) {
	t := rec.at().UTC()
	if h := t.Format("20060102-15"); h != w.hour {
		w.write(true)
		if w.file != nil {
			w.file.Close()
			w.file = nil
		}
		w.hour, w.index = h, 0
	}
	b, err := rec.marshal(w, t)
	if err != nil {
		w.errors.Add(1)
		return
	}
	w.buf.Write(b)
	w.buf.WriteByte('\n')
	w.pending++
}

func (rec *Record) marshal(w *Writer, t time.Time) ([]byte, error) {
	l := line{
		Time: t.Format(time.RFC3339Nano), Name: rec.Path, Method: rec.Method,
		RequestID: rec.RequestID, ClientRequestID: rec.ClientRequestID, TraceParent: rec.TraceParent,
		Workspace: w.cfg.Workspace, Service: w.cfg.Service, Models: w.models, Replica: w.cfg.Replica,
		Status: rec.Status, Success: rec.Status > 0 && rec.Status < 400,
		DurationMS: float64(rec.Duration.Microseconds()) / 1000,
	}
	if len(rec.Input) > 0 && len(rec.Input) <= MaxPayload {
		l.Input = datacollect.Payload(rec.Input)
	}
	if len(rec.Prediction) > 0 && len(rec.Prediction) <= MaxPayload {
		l.Prediction = datacollect.Payload(rec.Prediction)
	}
	return json.Marshal(&l)
}

// write appends the batch to the current file (rolling it over when it
// is full) and, when sync, fsyncs it.
func (w *Writer) write(sync bool) {
	if w.buf.Len() > 0 {
		if err := w.appendBatch(); err != nil {
			w.log.Warn("telemetry records lost", "records", w.pending, "err", err)
			w.errors.Add(uint64(w.pending))
		} else {
			w.written.Add(uint64(w.pending))
			w.dirty = true
		}
		w.buf.Reset()
		w.pending = 0
	}
	if sync && w.dirty && w.file != nil {
		if err := w.file.Sync(); err != nil {
			w.log.Warn("syncing telemetry", "err", err)
		}
		w.dirty = false
	}
}

func (w *Writer) appendBatch() error {
	for range 1000 {
		if w.file == nil {
			f, _, err := datacollect.OpenAppend(w.path(), nil)
			if err != nil {
				return err
			}
			w.file = f
		}
		size, err := w.file.Size()
		if err != nil {
			return err
		}
		if size == 0 || size+int64(w.buf.Len()) <= w.cfg.MaxFileBytes {
			return w.file.Append(w.buf.Bytes())
		}
		// Full: move on to the next suffix (another replica may have
		// filled it too).
		if w.dirty {
			w.file.Sync()
			w.dirty = false
		}
		w.file.Close()
		w.file = nil
		w.index++
	}
	return errors.New("telemetry: too many rolled files this hour")
}

// path is the current file: <prefix>-YYYYMMDD-HH[.N].jsonl.
func (w *Writer) path() string {
	name := w.cfg.FilePrefix + "-" + w.hour
	if w.index > 0 {
		name += "." + strconv.Itoa(w.index)
	}
	return filepath.Join(w.dir, name+".jsonl")
}

// cleanup deletes the service's telemetry files older than MaxAge.
func (w *Writer) cleanup(now time.Time) {
	w.cleaned = now
	if w.cfg.MaxAge < 0 {
		return
	}
	entries, err := os.ReadDir(w.dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), w.cfg.FilePrefix+"-") || !strings.HasSuffix(e.Name(), ".jsonl") {
			continue
		}
		if info, err := e.Info(); err == nil && now.Sub(info.ModTime()) > w.cfg.MaxAge {
			os.Remove(filepath.Join(w.dir, e.Name()))
		}
	}
}
