package python

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Config configures a Runtime.
type Config struct {
	// Python is the interpreter to run; default: env MODELSHIP_PYTHON, else
	// DefaultInterpreter (the first python3 that has numpy). Point it at a virtualenv's or conda env's bin/python
	// to use that environment.
	Python string
	// EntryScript is the score.py path, relative to SourceDir unless
	// absolute. It must end in ".py". Leave it empty with NoCodeModel set.
	EntryScript string
	// SourceDir is the user's source directory (default: the entry script's
	// directory). It is the worker's working directory and is on sys.path.
	SourceDir string
	// ModelDir is the value of AZUREML_MODEL_DIR: <root>/<name>/<version>
	// for one model, <root> for several.
	ModelDir string
	// Workers is the number of worker processes (default 1).
	Workers int
	// ServiceName, ServiceVersion and WorkspaceName set SERVICE_NAME,
	// SERVICE_VERSION and WORKSPACE_NAME (defaults "ML service", "1.0", "").
	ServiceName, ServiceVersion, WorkspaceName string
	// Env holds extra environment variables for the workers, e.g.
	// SCORING_TIMEOUT_MS, AML_CORS_ORIGINS, AML_MODEL_DC_STORAGE_ENABLED. They
	// override the defaults set by the runtime.
	Env map[string]string
	// Logger receives the runtime's logs (default slog.Default()).
	Logger *slog.Logger
	// Stdout receives the user's print() output, each line prefixed with the
	// request id (default os.Stdout).
	Stdout io.Writer
	// NoCodeModel is a scikit-learn joblib/pickle file (relative to ModelDir
	// unless absolute) served by a built-in scoring script when EntryScript
	// is empty: it answers {"data": [[...]]} with predict()'s output.
	NoCodeModel string
	// Collect, when set, receives the rows sent by ModelDataCollector.collect
	// (only when AML_MODEL_DC_STORAGE_ENABLED=true, as in Azure).
	Collect func(rec CollectRecord)
}

// CollectRecord is one ModelDataCollector.collect call of a score.py.
type CollectRecord struct {
	Time           time.Time       // when the server received it
	RequestID      string          // request being scored (all zeros in init)
	CorrelationID  string          // returned by collect() to the script
	Model          string          // model_name given to the collector
	ModelVersion   string          // model_version given to the collector
	Designation    string          // inputs, predictions, labels, signals or general
	CollectionName string          // collection_name given to the collector
	FeatureNames   []string        // feature_names (or DataFrame columns), may be nil
	Workspace      string          // workspace name
	Service        string          // web service name
	Rows           json.RawMessage // JSON array of rows (arrays)
}

// StartupError reports why the workers could not start: a missing
// init()/run(), an import error or an exception in init(). Its Error() text
// is meant to be printed as is before exiting non-zero.
type StartupError struct {
	Message   string   // what went wrong
	Traceback string   // the Python traceback, may be empty
	Output    string   // the last lines the worker printed, may be empty
	ModelDir  string   // the model directory listed below
	Listing   []string // the first 200 entries of ModelDir (dirs end in "/")
}

func (e *StartupError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "score.py failed to start: %s", e.Message)
	if e.Traceback != "" {
		fmt.Fprintf(&b, "\n\n%s", strings.TrimRight(e.Traceback, "\n"))
	}
	if e.Output != "" {
		fmt.Fprintf(&b, "\n\nworker output:\n%s", strings.TrimRight(e.Output, "\n"))
	}
	if e.ModelDir != "" {
		fmt.Fprintf(&b, "\n\nmodel directory %s (AZUREML_MODEL_DIR):", e.ModelDir)
		if len(e.Listing) == 0 {
			b.WriteString("\n  (empty or unreadable)")
		}
		for _, l := range e.Listing {
			fmt.Fprintf(&b, "\n  %s", l)
		}
	}
	return b.String()
}

// maxListing bounds the model dir listing in a StartupError.
const maxListing = 200

// listDir returns up to maxListing entries under dir, relative, dirs with "/".
func listDir(dir string) []string {
	var out []string
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if len(out) >= maxListing {
			return filepath.SkipAll
		}
		if err != nil || p == dir {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			rel += "/"
		}
		out = append(out, rel)
		return nil
	})
	return out
}

// resolved is a validated Config with absolute paths.
type resolved struct {
	Config
	python    string
	script    string // absolute entry script (or the built-in no-code script)
	sourceDir string
	appRoot   string
	modelDir  string
	noCode    string
	timeoutMS string
}

func resolve(cfg Config, shimDir string) (*resolved, error) {
	r := &resolved{Config: cfg}
	if r.Workers <= 0 {
		r.Workers = 1
	}
	if r.Logger == nil {
		r.Logger = slog.Default()
	}
	if r.Stdout == nil {
		r.Stdout = os.Stdout
	}
	r.python = cfg.Python
	if r.python == "" {
		r.python = os.Getenv("MODELSHIP_PYTHON")
	}
	if r.python == "" {
		r.python = DefaultInterpreter()
	}
	py, err := exec.LookPath(r.python)
	if err != nil {
		return nil, fmt.Errorf("python interpreter %q not found (set --python or MODELSHIP_PYTHON): %w", r.python, err)
	}
	r.python = py
	if cfg.ModelDir != "" {
		if r.modelDir, err = filepath.Abs(cfg.ModelDir); err != nil {
			return nil, fmt.Errorf("model dir: %w", err)
		}
	}
	switch {
	case cfg.EntryScript != "":
		if !strings.HasSuffix(cfg.EntryScript, ".py") {
			return nil, fmt.Errorf("entry script %q: only Python drivers are supported (the file must end in .py)", cfg.EntryScript)
		}
		script := cfg.EntryScript
		if !filepath.IsAbs(script) && cfg.SourceDir != "" {
			script = filepath.Join(cfg.SourceDir, script)
		}
		if r.script, err = filepath.Abs(script); err != nil {
			return nil, fmt.Errorf("entry script: %w", err)
		}
		if st, err := os.Stat(r.script); err != nil || st.IsDir() {
			return nil, fmt.Errorf("entry script %s: not a readable file", r.script)
		}
		src := cfg.SourceDir
		if src == "" {
			src = filepath.Dir(r.script)
		}
		if r.sourceDir, err = filepath.Abs(src); err != nil {
			return nil, fmt.Errorf("source dir: %w", err)
		}
	case cfg.NoCodeModel != "":
		m := cfg.NoCodeModel
		if !filepath.IsAbs(m) && r.modelDir != "" {
			m = filepath.Join(r.modelDir, m)
		}
		if r.noCode, err = filepath.Abs(m); err != nil {
			return nil, fmt.Errorf("no-code model: %w", err)
		}
		if _, err := os.Stat(r.noCode); err != nil {
			return nil, fmt.Errorf("no-code model: %w", err)
		}
		r.script = filepath.Join(shimDir, "_modelship_nocode.py")
		src := cfg.SourceDir
		if src == "" {
			src = filepath.Dir(r.noCode)
		}
		if r.sourceDir, err = filepath.Abs(src); err != nil {
			return nil, fmt.Errorf("source dir: %w", err)
		}
	default:
		return nil, fmt.Errorf("no entry script: set an entry script (score.py) or a no-code model file")
	}
	r.appRoot = r.sourceDir
	if v := cfg.Env["AML_APP_ROOT"]; v != "" {
		r.appRoot = v
	}
	r.timeoutMS = "3600000"
	if v := cfg.Env["SCORING_TIMEOUT_MS"]; v != "" {
		r.timeoutMS = v
	}
	return r, nil
}

// environ builds the worker environment: the server's own, spec §9's
// variables, then Config.Env.
func (r *resolved) environ(shimDir string) []string {
	entry := r.script
	if rel, err := filepath.Rel(r.sourceDir, r.script); err == nil && !strings.HasPrefix(rel, "..") {
		entry = rel
	}
	vars := map[string]string{
		"AZUREML_MODEL_DIR":           r.modelDir,
		"AZUREML_ENTRY_SCRIPT":        entry,
		"AZUREML_SOURCE_DIRECTORY":    r.sourceDir,
		"AML_APP_ROOT":                r.appRoot,
		"SERVICE_NAME":                orDefault(r.ServiceName, "ML service"),
		"SERVICE_VERSION":             orDefault(r.ServiceVersion, "1.0"),
		"SERVICE_PATH_PREFIX":         "",
		"WORKSPACE_NAME":              r.WorkspaceName,
		"SCORING_TIMEOUT_MS":          r.timeoutMS,
		"WORKER_COUNT":                fmt.Sprint(r.Workers),
		"PYTHONUNBUFFERED":            "1",
		"MODELSHIP_ENTRY_SCRIPT_PATH": r.script,
	}
	if r.noCode != "" {
		vars["MODELSHIP_NOCODE_MODEL"] = r.noCode
	}
	for k, v := range r.Env {
		vars[k] = v
	}
	env := make([]string, 0, len(os.Environ())+len(vars))
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := vars[k]; !ok {
			env = append(env, kv)
		}
	}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return env
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
