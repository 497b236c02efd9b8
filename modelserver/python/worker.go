package python

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/modelship/modelship/modelserver"
)

// initRequestID is the request id printed during init(), as in Azure.
const initRequestID = "00000000-0000-0000-0000-000000000000"

// frameMeta is the JSON meta of every frame a worker sends.
type frameMeta struct {
	T string `json:"t"` // "r" response, "c" collect, "ready", "fatal"

	// Response.
	S  int         `json:"s"`
	H  [][2]string `json:"h"`
	F  int         `json:"f"`
	NS int64       `json:"ns"`
	E  string      `json:"e"`
	O  int         `json:"o"`
	TO int         `json:"to"` // run() was interrupted at the deadline

	// Ready.
	Mode    string          `json:"mode"`
	Headers bool            `json:"headers"`
	In      json.RawMessage `json:"in"`
	Out     json.RawMessage `json:"out"`

	// Fatal.
	Message   string `json:"message"`
	Traceback string `json:"traceback"`

	// Collect.
	I           string   `json:"i"`
	Model       string   `json:"model"`
	Version     string   `json:"version"`
	Designation string   `json:"designation"`
	Collection  string   `json:"collection"`
	Features    []string `json:"features"`
	Workspace   string   `json:"workspace"`
	Service     string   `json:"service"`
	Corr        string   `json:"corr"`
}

// readyInfo is what a worker reports once init() succeeded.
type readyInfo struct {
	mode        string // "str", "schema" or "raw"
	wantHeaders bool   // run() needs all request headers
	in, out     json.RawMessage
}

// worker is one Python process. It serves one request at a time; only the
// goroutine holding it (taken from the pool) may call call().
type worker struct {
	rt      *Runtime
	cmd     *exec.Cmd
	pid     int
	toPy    *os.File
	fromPy  *os.File
	rd      *bufio.Reader
	done    chan struct{} // closed when the process has exited
	outDone chan struct{} // closed when its output is fully copied
	initOut chan struct{} // closed when init()'s output is copied
	exitErr error
	killed  atomic.Bool
	info    readyInfo
	wbuf    []byte
	mbuf    []byte

	tailMu sync.Mutex
	tail   []string // last output lines, for startup errors
}

// errWorkerDied wraps failures caused by a worker process exiting.
var errWorkerDied = errors.New("python worker exited")

// startWorker starts a process and waits for its ready frame (init() done).
func (r *Runtime) startWorker(ctx context.Context) (*worker, error) {
	reqR, reqW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pipe: %w", err)
	}
	respR, respW, err := os.Pipe()
	if err != nil {
		reqR.Close()
		reqW.Close()
		return nil, fmt.Errorf("pipe: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		reqR.Close()
		reqW.Close()
		respR.Close()
		respW.Close()
		return nil, fmt.Errorf("pipe: %w", err)
	}
	cmd := exec.Command(r.cfg.python, filepath.Join(r.shims, "_modelship_worker.py"))
	cmd.Dir = r.cfg.sourceDir
	cmd.Env = r.env
	cmd.Stdout = outW
	cmd.Stderr = outW
	cmd.ExtraFiles = []*os.File{reqR, respW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	reqR.Close()
	respW.Close()
	outW.Close()
	if err != nil {
		reqW.Close()
		respR.Close()
		outR.Close()
		return nil, fmt.Errorf("start %s: %w", r.cfg.python, err)
	}
	w := &worker{
		rt:      r,
		cmd:     cmd,
		pid:     cmd.Process.Pid,
		toPy:    reqW,
		fromPy:  respR,
		rd:      bufio.NewReaderSize(respR, 64<<10),
		done:    make(chan struct{}),
		outDone: make(chan struct{}),
		initOut: make(chan struct{}),
	}
	go w.copyOutput(outR)
	go func() {
		w.exitErr = cmd.Wait()
		close(w.done)
	}()

	stop := context.AfterFunc(ctx, w.kill)
	defer stop()
	for {
		meta, body, err := w.readFrame()
		if err != nil {
			w.kill()
			w.release()
			if ctx.Err() != nil {
				return nil, fmt.Errorf("python worker startup: %w", ctx.Err())
			}
			return nil, r.startupError(fmt.Sprintf("the Python worker exited during startup (%v)", w.exitErr), "", w.outputTail())
		}
		switch meta.T {
		case "ready":
			w.info = readyInfo{mode: meta.Mode, wantHeaders: meta.Headers, in: meta.In, out: meta.Out}
			// init()'s output is passed on before the worker counts as
			// ready, so logs show it in the replica's startup section.
			select {
			case <-w.initOut:
			case <-w.outDone:
			case <-time.After(2 * time.Second):
			}
			return w, nil
		case "fatal":
			w.kill()
			w.release()
			return nil, r.startupError(meta.Message, meta.Traceback, w.outputTail())
		case "c":
			r.collect(meta, body)
		default:
			w.kill()
			w.release()
			return nil, fmt.Errorf("python worker startup: unexpected frame %q", meta.T)
		}
	}
}

func (r *Runtime) startupError(msg, tb, output string) *StartupError {
	e := &StartupError{Message: msg, Traceback: tb, Output: output, ModelDir: r.cfg.modelDir}
	if e.ModelDir != "" {
		e.Listing = listDir(e.ModelDir)
	}
	return e
}

// initOutputEnd is the line a worker writes after init()'s output, just
// before its ready frame.
var initOutputEnd = []byte("\x1fmodelship: init output end\x1f\n")

// copyOutput copies the worker's stdout/stderr lines (already prefixed with
// the request id by the worker) to Config.Stdout and keeps the last lines.
func (w *worker) copyOutput(f *os.File) {
	defer close(w.outDone)
	defer f.Close()
	br := bufio.NewReaderSize(f, 16<<10)
	initEnded := false
	for {
		line, err := br.ReadSlice('\n')
		if !initEnded && bytes.Equal(line, initOutputEnd) {
			initEnded = true
			close(w.initOut)
			continue
		}
		if len(line) > 0 {
			if line[len(line)-1] != '\n' {
				line = append(append([]byte(nil), line...), '\n')
			}
			w.rt.writeOutput(line)
			w.tailMu.Lock()
			if len(w.tail) == 40 {
				w.tail = w.tail[1:]
			}
			w.tail = append(w.tail, string(line))
			w.tailMu.Unlock()
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

func (w *worker) outputTail() string {
	select {
	case <-w.outDone:
	case <-time.After(time.Second):
	}
	w.tailMu.Lock()
	defer w.tailMu.Unlock()
	return strings.Join(w.tail, "")
}

// kill ends the worker's whole process group at once.
// interrupt asks the worker to stop run() at the scoring deadline: its
// SIGALRM handler raises inside run(), as Azure's server's timer does, and
// the worker answers with a timeout and stays (its init() state too).
func (w *worker) interrupt() {
	if !w.killed.Load() {
		_ = syscall.Kill(w.pid, syscall.SIGALRM)
	}
}

func (w *worker) kill() {
	if w.killed.CompareAndSwap(false, true) {
		_ = syscall.Kill(-w.pid, syscall.SIGKILL)
	}
}

// release waits for the killed or exiting process and closes its pipes.
func (w *worker) release() {
	<-w.done
	w.toPy.Close()
	w.fromPy.Close()
	select {
	case <-w.outDone:
	case <-time.After(2 * time.Second):
		// A grandchild outside the process group still holds the output pipe.
	}
}

// stop asks the worker to exit (EOF on its request pipe), kills it after
// grace, and releases it.
func (w *worker) stop(grace time.Duration) {
	w.toPy.Close()
	select {
	case <-w.done:
	case <-time.After(grace):
	}
	w.kill()
	w.release()
}

// Frame size limits: a corrupt or hostile length never makes Go allocate
// more than this.
const (
	maxFrameMeta = 16 << 20
	maxFrameBody = 1 << 30
)

// readFrame reads one frame; the body is a fresh slice.
func (w *worker) readFrame() (*frameMeta, []byte, error) {
	return readFrame(w.rd, &w.mbuf)
}

// readFrame reads one frame from rd: an 8-byte header (meta and body
// lengths, little endian), the meta, then the body. mbuf is reused for
// the meta.
func readFrame(rd io.Reader, mbuf *[]byte) (*frameMeta, []byte, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(rd, hdr[:]); err != nil {
		return nil, nil, err
	}
	ml := binary.LittleEndian.Uint32(hdr[:4])
	bl := binary.LittleEndian.Uint32(hdr[4:])
	if ml > maxFrameMeta || bl > maxFrameBody {
		return nil, nil, fmt.Errorf("bad frame from python worker: meta %d bytes, body %d bytes (limits %d, %d)", ml, bl, maxFrameMeta, maxFrameBody)
	}
	if cap(*mbuf) < int(ml) {
		*mbuf = make([]byte, ml)
	}
	mb := (*mbuf)[:ml]
	if _, err := io.ReadFull(rd, mb); err != nil {
		return nil, nil, err
	}
	var body []byte
	if bl > 0 && bl <= 1<<20 {
		body = make([]byte, bl)
		if _, err := io.ReadFull(rd, body); err != nil {
			return nil, nil, err
		}
	} else if bl > 0 {
		// Large bodies grow with the data actually received, so a length
		// that promises more than arrives is not allocated up front.
		var buf bytes.Buffer
		if _, err := io.CopyN(&buf, rd, int64(bl)); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, nil, err
		}
		body = buf.Bytes()
	}
	if meta, ok := parseOKMeta(mb); ok {
		return meta, body, nil
	}
	meta := new(frameMeta)
	if err := json.Unmarshal(mb, meta); err != nil {
		return nil, nil, fmt.Errorf("bad frame from python worker: %w", err)
	}
	return meta, body, nil
}

// writeRequest sends one request frame. Its meta is NUL-separated fields:
// request id, method, path, raw query, content type, then header name/value
// pairs when run() needs the headers.
func (w *worker) writeRequest(req *modelserver.ScoreRequest) error {
	b := append(w.wbuf[:0], 0, 0, 0, 0, 0, 0, 0, 0)
	b = appendField(b, req.RequestID)
	b = appendField(append(b, 0), orDefault(req.Method, "POST"))
	b = appendField(append(b, 0), req.Path)
	b = appendField(append(b, 0), req.RawQuery)
	b = appendField(append(b, 0), req.Header.Get("Content-Type"))
	if w.info.wantHeaders {
		if req.Host != "" && req.Header.Get("Host") == "" {
			b = appendField(append(b, 0), "Host")
			b = appendField(append(b, 0), req.Host)
		}
		for k, vs := range req.Header {
			for _, v := range vs {
				b = appendField(append(b, 0), k)
				b = appendField(append(b, 0), v)
			}
		}
	}
	binary.LittleEndian.PutUint32(b[:4], uint32(len(b)-8))
	binary.LittleEndian.PutUint32(b[4:8], uint32(len(req.Body)))
	if len(req.Body) <= 64<<10 {
		b = append(b, req.Body...)
		w.wbuf = b
		_, err := w.toPy.Write(b)
		return err
	}
	w.wbuf = b
	if _, err := w.toPy.Write(b); err != nil {
		return err
	}
	_, err := w.toPy.Write(req.Body)
	return err
}

// appendField appends s with any NUL byte (the field separator) dropped.
func appendField(b []byte, s string) []byte {
	if strings.IndexByte(s, 0) < 0 {
		return append(b, s...)
	}
	return append(b, strings.ReplaceAll(s, "\x00", "")...)
}

// call sends a request and reads frames until its response. Any error means
// the worker is unusable (dead or killed) and must be replaced.
func (w *worker) call(req *modelserver.ScoreRequest) (*modelserver.ScoreResponse, error) {
	if err := w.writeRequest(req); err != nil {
		return nil, w.diedErr(err)
	}
	for {
		meta, body, err := w.readFrame()
		if err != nil {
			return nil, w.diedErr(err)
		}
		switch meta.T {
		case "r":
			if meta.TO != 0 {
				w.rt.log.Error("scoring timeout: run() interrupted", "request_id", req.RequestID, "error", meta.E)
				return nil, errInterrupted
			}
			return w.rt.response(req, meta, body), nil
		case "c":
			w.rt.collect(meta, body)
		default:
			return nil, fmt.Errorf("python worker pid %d: unexpected frame %q", w.pid, meta.T)
		}
	}
}

func (w *worker) diedErr(err error) error {
	if w.killed.Load() {
		return fmt.Errorf("%w (pid %d killed): %w", errWorkerDied, w.pid, err)
	}
	select {
	case <-w.done:
		return fmt.Errorf("%w (pid %d: %v) while scoring", errWorkerDied, w.pid, w.exitErr)
	case <-time.After(500 * time.Millisecond):
		return fmt.Errorf("%w (pid %d): %w", errWorkerDied, w.pid, err)
	}
}

// response turns a response frame into a ScoreResponse.
func (r *Runtime) response(req *modelserver.ScoreRequest, meta *frameMeta, body []byte) *modelserver.ScoreResponse {
	resp := &modelserver.ScoreResponse{
		Status: meta.S,
		Body:   body,
		// run() raised (F), or returned a response of status 500 or more
		// (O); a 500 of the worker's own (a result json.dumps cannot
		// encode) is not run()'s failure, as in Azure.
		RunFailed: meta.F != 0 || (meta.O != 0 && meta.S >= 500),
		ExecTime:  time.Duration(meta.NS),
	}
	if meta.O != 0 {
		resp.Header = make(http.Header, len(meta.H))
		for _, kv := range meta.H {
			if strings.EqualFold(kv[0], "x-ms-run-function-failed") {
				if strings.EqualFold(kv[1], "true") {
					resp.RunFailed = true
				}
				continue
			}
			resp.Header.Add(kv[0], kv[1])
		}
		if !resp.RunFailed {
			resp.Header.Set("x-ms-run-function-failed", "False")
		}
	} else {
		resp.Header = http.Header{"Content-Type": {"application/json"}}
	}
	if meta.E != "" {
		r.log.Error("run() failed", "request_id", req.RequestID, "status", meta.S, "error", meta.E)
	}
	return resp
}

// collect handles a ModelDataCollector frame.
func (r *Runtime) collect(meta *frameMeta, body []byte) {
	rec := CollectRecord{
		Time:           time.Now(),
		RequestID:      meta.I,
		CorrelationID:  meta.Corr,
		Model:          meta.Model,
		ModelVersion:   meta.Version,
		Designation:    meta.Designation,
		CollectionName: meta.Collection,
		FeatureNames:   meta.Features,
		Workspace:      meta.Workspace,
		Service:        meta.Service,
		Rows:           json.RawMessage(body),
	}
	r.log.Debug("model data collected", "request_id", rec.RequestID, "model", rec.Model,
		"designation", rec.Designation, "bytes", len(body))
	if r.cfg.Collect != nil {
		r.cfg.Collect(rec)
	}
}

// okPrefix starts the worker's fast-path response meta,
// {"t":"r","s":200,"ns":<int>}.
var (
	okPrefix = []byte(`{"t":"r","s":200,"ns":`)
)

// parseOKMeta decodes the fast-path response meta without reflection.
func parseOKMeta(mb []byte) (*frameMeta, bool) {
	if len(mb) < len(okPrefix)+2 || !bytes.HasPrefix(mb, okPrefix) || mb[len(mb)-1] != '}' {
		return nil, false
	}
	digits := mb[len(okPrefix) : len(mb)-1]
	var ns int64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return nil, false
		}
		ns = ns*10 + int64(c-'0')
	}
	return &frameMeta{T: "r", S: 200, NS: ns}, true
}
