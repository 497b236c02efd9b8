package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.opentelemetry.io/otel/attribute"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/client"
	"github.com/modelship/modelship/datacollect"
	"github.com/modelship/modelship/internal/tlsutil"
	"github.com/modelship/modelship/modelserver"
	"github.com/modelship/modelship/modelserver/onnx"
	"github.com/modelship/modelship/modelserver/python"
	"github.com/modelship/modelship/telemetry"
	"github.com/modelship/modelship/tracing"
)

// Runtime names of serve-model's --runtime flag.
const (
	runtimeAuto    = "auto"
	runtimePython  = "python"
	runtimeONNX    = "onnx"
	runtimeSklearn = "sklearn"
)

// startupExitCode is the exit status of a replica whose runtime failed to
// start, as Azure's inference server uses (a failing init() exits with 3).
const startupExitCode = 3

// serveModelOptions are the settings of one serve-model run.
type serveModelOptions struct {
	// Fetch the deployment's files from a control plane first.
	fetchURL, fetchToken, fetchDeployment, fetchDir string

	entryScript    string
	sourceDir      string
	modelDir       string
	modelName      string
	modelVersion   string
	host           string
	port           int
	runtime        string
	python         string
	workers        int
	scoringTimeout int // milliseconds
	ortLib         string
	intraOpThreads int
	maxConcurrency int
	corsOrigins    string
	serviceName    string
	serviceVersion string
	workspaceName  string
	shutdownGrace  time.Duration
	releaseAfter   time.Duration
	maxBodyBytes   int64

	// Model data collection and request telemetry.
	collectModelData bool    // AML_MODEL_DC_STORAGE_ENABLED
	appInsights      bool    // AML_APP_INSIGHTS_ENABLED
	modelDataDir     string  // root of collected data, <data-dir>/modeldata
	telemetryDir     string  // root of request telemetry, <data-dir>/telemetry
	collectRequests  bool    // v2 request/response payload collection
	samplingRate     float64 // share of requests collected
	replicaID        string  // MODELSHIP_REPLICA_ID
}

// envDefaults maps a flag to the environment variable that sets it when
// the flag is not given, so a replica can be configured by env alone.
var envDefaults = []struct{ flag, env string }{
	{"entry-script", "AZUREML_ENTRY_SCRIPT"},
	{"source-dir", "AZUREML_SOURCE_DIRECTORY"},
	{"model-dir", "AZUREML_MODEL_DIR"},
	{"model-name", "MODELSHIP_MODEL_NAME"},
	{"model-version", "MODELSHIP_MODEL_VERSION"},
	{"host", "MODELSHIP_HOST"},
	{"port", "MODELSHIP_PORT"},
	{"runtime", "MODELSHIP_RUNTIME"},
	{"python", "MODELSHIP_PYTHON"},
	{"workers", "WORKER_COUNT"},
	{"scoring-timeout-ms", "SCORING_TIMEOUT_MS"},
	{"onnxruntime-lib", "MODELSHIP_ORT_LIB"},
	{"cors-origins", "AML_CORS_ORIGINS"},
	{"fetch-url", "MODELSHIP_FETCH_URL"},
	{"fetch-token", "MODELSHIP_FETCH_TOKEN"},
	{"fetch-deployment", "MODELSHIP_FETCH_DEPLOYMENT"},
	{"fetch-dir", "MODELSHIP_FETCH_DIR"},
	{"service-name", "SERVICE_NAME"},
	{"service-version", "SERVICE_VERSION"},
	{"workspace-name", "WORKSPACE_NAME"},
	{"collect-model-data", "AML_MODEL_DC_STORAGE_ENABLED"},
	{"app-insights", "AML_APP_INSIGHTS_ENABLED"},
	{"modeldata-dir", "MODELSHIP_MODELDATA_DIR"},
	{"telemetry-dir", "MODELSHIP_TELEMETRY_DIR"},
	{"collect-requests", "MODELSHIP_COLLECT_REQUESTS"},
	{"sampling-rate", "MODELSHIP_SAMPLING_RATE"},
	{"replica-id", "MODELSHIP_REPLICA_ID"},
	{"release-memory-after", "MODELSHIP_RELEASE_MEMORY_AFTER"},
}

// newServeModelCmd returns `modelship serve-model`, the replica process.
func newServeModelCmd() *cobra.Command {
	o := &serveModelOptions{}
	cmd := &cobra.Command{
		Use:   "serve-model",
		Short: "Run a model server (one replica) for a scoring script or an ONNX model",
		Long: `Run one model server replica: an HTTP server with Azure ML's routes
(GET / -> Healthy, GET|POST|OPTIONS /score, GET /swagger.json) and the Open
Inference Protocol v2 (/v2/...), plus Prometheus metrics on /metrics.

The runtime is chosen with --runtime (default auto): an entry script means
the Python runtime (score.py with init() and run(), run in a pool of Python
worker processes); otherwise .onnx files in the model directory are served
natively by ONNX Runtime; otherwise a .pkl/.joblib scikit-learn model is
served with a built-in scoring script (no code).

Every flag not given falls back to an environment variable, as Azure ML's
inference server reads them: AZUREML_ENTRY_SCRIPT, AZUREML_SOURCE_DIRECTORY,
AZUREML_MODEL_DIR, SCORING_TIMEOUT_MS, AML_CORS_ORIGINS, WORKER_COUNT,
SERVICE_NAME, SERVICE_VERSION, WORKSPACE_NAME, and MODELSHIP_PYTHON,
MODELSHIP_ORT_LIB, MODELSHIP_HOST, MODELSHIP_PORT, MODELSHIP_RUNTIME,
MODELSHIP_MODEL_NAME, MODELSHIP_MODEL_VERSION.

A command line written for azmlinfsrv works as it is: --entry_script,
--model_dir, --port, --worker_count and --access_control_allow_origins are
read as --entry-script, --model-dir, --port, --workers and --cors-origins
(any flag may be spelled with "_" for "-").

Model data collection (AML_MODEL_DC_STORAGE_ENABLED, --collect-model-data)
appends the rows of score.py's ModelDataCollector.collect() as CSV under
--modeldata-dir (MODELSHIP_MODELDATA_DIR) in Azure's layout
<workspace>/<service>/<model>/<version>/<designation>/<yyyy>/<mm>/<dd>/data.csv.
--collect-requests (MODELSHIP_COLLECT_REQUESTS) with --sampling-rate
(MODELSHIP_SAMPLING_RATE) also stores a share of the /score request and
response bodies as hourly JSON lines there. Request telemetry
(AML_APP_INSIGHTS_ENABLED, --app-insights) writes one JSON line per request
under --telemetry-dir (MODELSHIP_TELEMETRY_DIR). See docs/data-collection.md.

To use your own virtualenv or conda environment, point --python (or
MODELSHIP_PYTHON) at its interpreter, e.g. ./venv/bin/python.

If the runtime cannot start (missing init() or run(), an import error, an
exception in init()), the error and traceback are printed to stderr and the
process exits with status 3. SIGTERM drains: the server stops accepting,
reports not ready, lets in-flight requests finish, then stops the runtime.`,
		Example: `  # Debug a scoring script locally, like Azure's azmlinfsrv:
  modelship serve-model --entry-script score.py --source-dir ./src --model-dir ./models
  curl -d '{"data": [[1,2,3]]}' -H 'Content-Type: application/json' 127.0.0.1:5001/score

  # Use a virtualenv's interpreter and four workers:
  modelship serve-model --entry-script score.py --python ./venv/bin/python --workers 4

  # Serve an ONNX model with no code:
  modelship serve-model --model-dir ./models/digits/1 --model-name digits --runtime onnx
  curl -d '{"inputs":[{"name":"input","shape":[1,64],"datatype":"FP32","data":[...]}]}' \
    127.0.0.1:5001/v2/models/digits/infer

  # Serve a scikit-learn model.pkl with the built-in scoring script:
  modelship serve-model --model-dir ./models/iris/1 --runtime sklearn`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnvDefaults(cmd); err != nil {
				return err
			}
			return runServeModel(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.entryScript, "entry-script", "", "scoring script with init() and run(), relative to --source-dir or absolute")
	f.StringVar(&o.sourceDir, "source-dir", "", "directory of the scoring script and its modules (default: the entry script's directory)")
	f.StringVar(&o.modelDir, "model-dir", "", "model directory (AZUREML_MODEL_DIR)")
	f.StringVar(&o.modelName, "model-name", "", "model name (default: from the model directory or file)")
	f.StringVar(&o.modelVersion, "model-version", "", "model version (default: from the model directory)")
	f.StringVar(&o.host, "host", "127.0.0.1", "address to listen on")
	f.IntVar(&o.port, "port", 5001, "port to listen on")
	f.StringVar(&o.runtime, "runtime", runtimeAuto, "runtime: auto, python, onnx or sklearn")
	f.StringVar(&o.python, "python", "", "Python interpreter for score.py workers (default: MODELSHIP_PYTHON, else the first python3 that has numpy)")
	f.IntVar(&o.workers, "workers", 1, "number of Python worker processes")
	f.IntVar(&o.scoringTimeout, "scoring-timeout-ms", int(modelserver.DefaultScoringTimeout/time.Millisecond), "timeout of one scoring call in milliseconds")
	f.StringVar(&o.ortLib, "onnxruntime-lib", "", "path of libonnxruntime.so (default: the copy installed by scripts/setup.sh)")
	f.IntVar(&o.intraOpThreads, "intra-op-threads", 1, "ONNX Runtime intra-op threads per session")
	f.IntVar(&o.maxConcurrency, "max-concurrency", 1, "ONNX inferences run at once")
	f.StringVar(&o.corsOrigins, "cors-origins", "", "comma-separated origins allowed by CORS on /score; * allows any")
	f.StringVar(&o.fetchURL, "fetch-url", "", "fetch the deployment's models and code from this control-plane API URL first (see `service fetch-access`)")
	f.StringVar(&o.fetchToken, "fetch-token", "", "the fetch token for --fetch-url")
	f.StringVar(&o.fetchDeployment, "fetch-deployment", "", "the deployment to fetch: <workspace>/<service> (or <workspace>/<endpoint>.<version>)")
	f.StringVar(&o.fetchDir, "fetch-dir", "", "where fetched files go (default: a folder under the temp dir)")
	f.StringVar(&o.serviceName, "service-name", "ML service", "service name shown in swagger")
	f.StringVar(&o.serviceVersion, "service-version", "1.0", "service version shown in swagger")
	f.StringVar(&o.workspaceName, "workspace-name", "", "workspace name passed to the scoring script")
	f.Int64Var(&o.maxBodyBytes, "max-body-bytes", modelserver.DefaultMaxBodyBytes, "largest request body accepted; larger bodies get 413")
	f.DurationVar(&o.shutdownGrace, "shutdown-grace", modelserver.DefaultShutdownGrace, "how long in-flight requests may run after SIGTERM")
	f.BoolVar(&o.collectModelData, "collect-model-data", false, "store the rows of ModelDataCollector.collect() (AML_MODEL_DC_STORAGE_ENABLED)")
	f.BoolVar(&o.appInsights, "app-insights", false, "write request telemetry records (AML_APP_INSIGHTS_ENABLED)")
	f.StringVar(&o.modelDataDir, "modeldata-dir", "", "directory of collected model data (without it, collected rows are only logged)")
	f.StringVar(&o.telemetryDir, "telemetry-dir", "", "directory of request telemetry (without it, no telemetry is written)")
	f.BoolVar(&o.collectRequests, "collect-requests", false, "store sampled /score request and response bodies under --modeldata-dir")
	f.Float64Var(&o.samplingRate, "sampling-rate", 1, "share of requests --collect-requests stores, 0 to 1")
	f.StringVar(&o.replicaID, "replica-id", "", "replica name written in telemetry (MODELSHIP_REPLICA_ID)")
	f.DurationVar(&o.releaseAfter, "release-memory-after", 30*time.Second, "after scoring traffic, give memory back to the system once no request came for this long (the next request then pays a few ms to fault code back in); 0 never")
	f.SetNormalizeFunc(azmlinfsrvFlagNames)
	return cmd
}

// azmlinfsrvAliases are the names Azure's azmlinfsrv gives flags that
// serve-model names differently (after "_" became "-").
var azmlinfsrvAliases = map[string]string{
	"worker-count":                 "workers",
	"access-control-allow-origins": "cors-origins",
}

// azmlinfsrvFlagNames lets a command line written for Azure's azmlinfsrv
// work unchanged: --entry_script, --model_dir, --worker_count and
// --access_control_allow_origins are read as --entry-script, --model-dir,
// --workers and --cors-origins.
func azmlinfsrvFlagNames(_ *pflag.FlagSet, name string) pflag.NormalizedName {
	name = strings.ReplaceAll(name, "_", "-")
	if alias, ok := azmlinfsrvAliases[name]; ok {
		name = alias
	}
	return pflag.NormalizedName(name)
}

// applyEnvDefaults sets every flag the user did not give from its
// environment variable, when that is set.
func applyEnvDefaults(cmd *cobra.Command) error {
	f := cmd.Flags()
	for _, d := range envDefaults {
		v, ok := os.LookupEnv(d.env)
		if !ok || v == "" || f.Changed(d.flag) {
			continue
		}
		if err := f.Set(d.flag, v); err != nil {
			return fmt.Errorf("environment variable %s=%q: %w", d.env, v, err)
		}
	}
	return nil
}

// runServeModel starts the runtime, then serves until ctx is canceled.
func runServeModel(ctx context.Context, o *serveModelOptions) error {
	if o.scoringTimeout <= 0 {
		return modelship.Errorf(modelship.EINVALID, "--scoring-timeout-ms must be positive, got %d", o.scoringTimeout)
	}
	if o.releaseAfter < 0 {
		return modelship.Errorf(modelship.EINVALID, "--release-memory-after must be 0 (never) or a positive duration such as 30s, got %v", o.releaseAfter)
	}
	if o.samplingRate < 0 || o.samplingRate > 1 {
		return modelship.Errorf(modelship.EINVALID, "--sampling-rate must be between 0 and 1, got %g", o.samplingRate)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel(os.Getenv("AZUREML_LOG_LEVEL"))}))
	if o.fetchURL != "" {
		if err := fetchFiles(ctx, o, log); err != nil {
			return err
		}
	}
	kind, err := chooseRuntime(o)
	if err != nil {
		return modelship.Errorf(modelship.EINVALID, "%v", err)
	}
	if o.collectRequests && o.modelDataDir == "" {
		return modelship.Errorf(modelship.EINVALID, "--collect-requests needs --modeldata-dir (or MODELSHIP_MODELDATA_DIR)")
	}
	col, err := newCollection(o, log)
	if err != nil {
		return err
	}
	defer col.close(ctx, log, o.shutdownGrace)
	addr := net.JoinHostPort(o.host, strconv.Itoa(o.port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	defer ln.Close()

	// Serve from the start: liveness answers while a slow init() runs, and
	// readiness turns true once the runtime is set.
	stopTracing, err := tracing.Setup(ctx, "modelship-replica", attribute.String("service.instance.id", o.replicaID),
		attribute.String("modelship.workspace", o.workspaceName), attribute.String("modelship.service", o.serviceName))
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	defer func() {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := stopTracing(tctx); err != nil {
			log.Warn("flushing trace spans", "err", err)
		}
	}()
	rt := &modelserver.Deferred{}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv := modelserver.NewServer(rt, modelserver.ServerConfig{
		ScoringTimeout: time.Duration(o.scoringTimeout) * time.Millisecond,
		CORSOrigins:    modelserver.ParseCORSOrigins(o.corsOrigins),
		ShutdownGrace:  o.shutdownGrace,
		MaxBodyBytes:   o.maxBodyBytes,
		Registry:       reg,
		Logger:         log,
		Version:        serverVersion(),
		OnRequest:      col.onRequest(),
	})
	col.register(reg)
	// Once draining, a second SIGINT/SIGTERM ends the process at once.
	stopReset := context.AfterFunc(ctx, func() { signal.Reset(os.Interrupt, syscall.SIGTERM) })
	defer stopReset()
	serveCtx, stopServing := context.WithCancel(ctx)
	defer stopServing()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(serveCtx, ln) }()
	if o.releaseAfter > 0 {
		go modelserver.ReleaseMemoryWhenIdle(serveCtx, srv, o.releaseAfter)
	}
	log.Info("serving", "addr", "http://"+ln.Addr().String(), "routes", "/ /score /swagger.json /v2 /metrics")

	log.Info("starting runtime", "runtime", kind, "model_dir", o.modelDir, "entry_script", o.entryScript)
	start := time.Now()
	real, err := newRuntime(ctx, kind, o, log, col.collect())
	if err != nil {
		stopServing()
		serveErr := <-served
		if ctx.Err() != nil {
			return serveErr // stopped while starting: not a startup failure
		}
		return &startupError{runtime: kind, err: err}
	}
	if rt.Set(real) {
		log.Info(modelserver.RuntimeReadyMessage, "runtime", kind, "took", time.Since(start).Round(time.Millisecond))
		releaseStartupPages(log)
	} else {
		// The server stopped while the runtime was starting.
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.shutdownGrace)
		defer cancel()
		if err := real.Close(closeCtx); err != nil {
			log.Warn("closing runtime", "err", err)
		}
	}
	return <-served
}

// chooseRuntime resolves --runtime auto: an entry script means python;
// otherwise .onnx files in the model directory mean onnx; otherwise a
// .pkl/.joblib file means sklearn.
func chooseRuntime(o *serveModelOptions) (string, error) {
	switch o.runtime {
	case runtimePython:
		if o.entryScript == "" {
			return "", errors.New("--runtime python needs --entry-script (or AZUREML_ENTRY_SCRIPT)")
		}
		return o.runtime, nil
	case runtimeONNX, runtimeSklearn:
		if o.modelDir == "" {
			return "", fmt.Errorf("--runtime %s needs --model-dir (or AZUREML_MODEL_DIR)", o.runtime)
		}
		return o.runtime, nil
	case runtimeAuto:
	default:
		return "", fmt.Errorf("--runtime %q is not one of auto, python, onnx, sklearn", o.runtime)
	}
	if o.entryScript != "" {
		return runtimePython, nil
	}
	if o.modelDir == "" {
		return "", errors.New("nothing to serve: give --entry-script or --model-dir (or AZUREML_ENTRY_SCRIPT / AZUREML_MODEL_DIR)")
	}
	onnxFiles, sklearnFiles, err := scanModelDir(o.modelDir)
	if err != nil {
		return "", err
	}
	switch {
	case len(onnxFiles) > 0:
		return runtimeONNX, nil
	case len(sklearnFiles) > 0:
		return runtimeSklearn, nil
	}
	return "", fmt.Errorf("model directory %s holds no .onnx, .pkl or .joblib file and no --entry-script was given", o.modelDir)
}

// scanModelDir lists the .onnx and .pkl/.joblib files under dir.
func scanModelDir(dir string) (onnxFiles, sklearnFiles []string, err error) {
	if real, rerr := filepath.EvalSymlinks(dir); rerr == nil {
		dir = real
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".onnx":
			onnxFiles = append(onnxFiles, p)
		case ".pkl", ".joblib":
			sklearnFiles = append(sklearnFiles, p)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("reading model directory: %w", err)
	}
	return onnxFiles, sklearnFiles, nil
}

// logLevel parses AZUREML_LOG_LEVEL; unknown values mean INFO.
func logLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(strings.TrimSpace(s)))); err != nil {
		return slog.LevelInfo
	}
	return l
}

// startupError is a runtime that failed to start. The process prints it
// in full and exits with status 3, as Azure's inference server does.
type startupError struct {
	runtime string
	err     error
}

func (e *startupError) Error() string {
	return fmt.Sprintf("the %s runtime failed to start: %v", e.runtime, e.err)
}

func (e *startupError) Unwrap() error { return e.err }

// ExitCode makes cli.ExitCode exit with startupExitCode.
func (e *startupError) ExitCode() int { return startupExitCode }

// newRuntime starts the runtime of the given kind.
// collect, when not nil, receives the rows of ModelDataCollector.
func newRuntime(ctx context.Context, kind string, o *serveModelOptions, log *slog.Logger, collect func(python.CollectRecord)) (modelserver.Runtime, error) {
	switch kind {
	case runtimePython, runtimeSklearn:
		cfg := python.Config{
			Python:         o.python,
			EntryScript:    o.entryScript,
			SourceDir:      o.sourceDir,
			ModelDir:       o.modelDir,
			Workers:        o.workers,
			ServiceName:    o.serviceName,
			ServiceVersion: o.serviceVersion,
			WorkspaceName:  o.workspaceName,
			Env:            map[string]string{"SCORING_TIMEOUT_MS": strconv.Itoa(o.scoringTimeout)},
			Logger:         log,
			Stdout:         os.Stdout,
			Collect:        collect,
		}
		cfg.Env["AML_MODEL_DC_STORAGE_ENABLED"] = strconv.FormatBool(o.collectModelData)
		cfg.Env["AML_APP_INSIGHTS_ENABLED"] = strconv.FormatBool(o.appInsights)
		if o.corsOrigins != "" {
			cfg.Env["AML_CORS_ORIGINS"] = o.corsOrigins
		}
		if kind == runtimeSklearn {
			model, err := findSklearnModel(o.modelDir)
			if err != nil {
				return nil, err
			}
			cfg.EntryScript, cfg.NoCodeModel = "", model
		}
		return python.New(ctx, cfg)
	case runtimeONNX:
		return newONNXRuntime(o, log)
	}
	return nil, fmt.Errorf("unknown runtime %q", kind)
}

// findSklearnModel returns the one .pkl/.joblib file under dir.
func findSklearnModel(dir string) (string, error) {
	_, files, err := scanModelDir(dir)
	if err != nil {
		return "", err
	}
	switch len(files) {
	case 0:
		return "", fmt.Errorf("no .pkl or .joblib file under %s", dir)
	case 1:
		return files[0], nil
	}
	return "", fmt.Errorf("several scikit-learn models under %s (%s); keep one, or write a score.py", dir, strings.Join(files, ", "))
}

// serverVersion is the version GET /v2 reports: the module version the
// binary was built from, or "dev".
func serverVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// newONNXRuntime serves the .onnx files of the model directory in process.
func newONNXRuntime(o *serveModelOptions, log *slog.Logger) (modelserver.Runtime, error) {
	models, err := onnxModels(o.modelDir, o.modelName, o.modelVersion)
	if err != nil {
		return nil, err
	}
	for _, m := range models {
		log.Info("loading ONNX model", "name", m.Name, "version", m.Version, "path", m.Path)
	}
	lib := o.ortLib
	if lib == "" {
		lib = onnx.DefaultLibraryPath()
	}
	return onnx.New(onnx.Config{
		Models:         models,
		LibraryPath:    lib,
		IntraOpThreads: o.intraOpThreads,
		MaxConcurrency: o.maxConcurrency,
	})
}

// onnxModels names the .onnx files under dir with onnx.FindModels. A
// single-model directory laid out as Azure's <name>/<version> takes that
// name and version unless --model-name / --model-version are given.
func onnxModels(dir, name, version string) ([]onnx.Model, error) {
	if abs, err := filepath.Abs(dir); err == nil && isVersion(filepath.Base(abs)) {
		name = cmp.Or(name, filepath.Base(filepath.Dir(abs)))
		version = cmp.Or(version, filepath.Base(abs))
	}
	return onnx.FindModels(dir, name, version)
}

// isVersion reports whether s is an Azure model version (a positive integer).
func isVersion(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n > 0
}

// collection is a replica's model data collection and request telemetry;
// its zero value (everything off) is usable.
type collection struct {
	data      *datacollect.Writer         // CSV rows and request payloads
	sampler   *datacollect.RequestSampler // nil: no request collection
	telemetry *telemetry.Writer           // nil: no telemetry
	payloads  bool                        // telemetry keeps input and prediction
	logOnly   bool                        // collection on, but nowhere to store it
}

// newCollection starts the writers the options ask for.
func newCollection(o *serveModelOptions, log *slog.Logger) (*collection, error) {
	c := &collection{payloads: o.collectModelData}
	models := deployedModels(o)
	if (o.collectModelData || o.collectRequests) && o.modelDataDir != "" {
		versions := make(map[string]string, len(models))
		for _, m := range models {
			versions[m[0]] = m[1]
		}
		w, err := datacollect.New(datacollect.Config{
			Root: o.modelDataDir, Workspace: o.workspaceName, Service: o.serviceName,
			ModelVersions: versions, Replica: o.replicaID, Logger: log,
		})
		if err != nil {
			return nil, fmt.Errorf("model data collection: %w", err)
		}
		c.data = w
		if o.collectRequests {
			c.sampler = &datacollect.RequestSampler{Writer: w, Rate: o.samplingRate}
		}
		log.Info("model data collection on", "dir", o.modelDataDir, "collect_requests", o.collectRequests, "sampling_rate", o.samplingRate)
	} else if o.collectModelData {
		c.logOnly = true
		log.Info("model data collection is on but no --modeldata-dir is set: collected rows are only logged")
	}
	if o.appInsights && o.telemetryDir != "" {
		names := make([]string, len(models))
		for i, m := range models {
			names[i] = m[0] + ":" + m[1]
		}
		tw, err := telemetry.New(telemetry.Config{
			Dir: o.telemetryDir, Workspace: o.workspaceName, Service: o.serviceName,
			Models: names, Replica: o.replicaID, Logger: log,
		})
		if err != nil {
			c.close(context.Background(), log, time.Second)
			return nil, fmt.Errorf("request telemetry: %w", err)
		}
		c.telemetry = tw
		log.Info("request telemetry on", "dir", o.telemetryDir)
	}
	return c, nil
}

// onRequest returns the server's request hook, nil when nothing is on.
func (c *collection) onRequest() func(*modelserver.RequestEvent) {
	tw, s, payloads := c.telemetry, c.sampler, c.payloads
	switch {
	case tw == nil && s == nil:
		return nil
	case s == nil:
		return func(ev *modelserver.RequestEvent) { tw.Observe(ev, payloads) }
	case tw == nil:
		return s.Observe
	}
	return func(ev *modelserver.RequestEvent) {
		tw.Observe(ev, payloads)
		s.Observe(ev)
	}
}

// collect returns the Python runtime's ModelDataCollector sink, nil when
// rows are only logged by the runtime.
func (c *collection) collect() func(python.CollectRecord) {
	if c.data == nil || c.logOnly {
		return nil
	}
	w := c.data
	return func(r python.CollectRecord) {
		w.Collect(datacollect.Record{
			Time: r.Time, RequestID: r.RequestID, CorrelationID: r.CorrelationID,
			Workspace: r.Workspace, Service: r.Service, Model: r.Model, ModelVersion: r.ModelVersion,
			Designation: r.Designation, CollectionName: r.CollectionName, FeatureNames: r.FeatureNames, Rows: r.Rows,
		})
	}
}

// register adds the writers' metrics to reg.
func (c *collection) register(reg *prometheus.Registry) {
	if c.data != nil {
		reg.MustRegister(c.data.Collectors()...)
	}
	if c.telemetry != nil {
		reg.MustRegister(c.telemetry.Collectors()...)
	}
}

// close flushes and closes the writers, waiting at most grace.
func (c *collection) close(ctx context.Context, log *slog.Logger, grace time.Duration) {
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), max(grace, 5*time.Second))
	defer cancel()
	if c.data != nil {
		if err := c.data.Close(closeCtx); err != nil {
			log.Warn("closing model data collection", "err", err)
		}
	}
	if c.telemetry != nil {
		if err := c.telemetry.Close(closeCtx); err != nil {
			log.Warn("closing request telemetry", "err", err)
		}
	}
}

// deployedModels lists the served models as {name, version}: the one of
// --model-name/--model-version, or of an Azure <name>/<version> model
// directory, or every <name>/<version> under a multi-model directory.
func deployedModels(o *serveModelOptions) [][2]string {
	if o.modelName != "" {
		return [][2]string{{o.modelName, cmp.Or(o.modelVersion, "default")}}
	}
	if o.modelDir == "" {
		return nil
	}
	abs, err := filepath.Abs(o.modelDir)
	if err != nil {
		return nil
	}
	if isVersion(filepath.Base(abs)) {
		return [][2]string{{filepath.Base(filepath.Dir(abs)), filepath.Base(abs)}}
	}
	var out [][2]string
	names, _ := os.ReadDir(abs)
	for _, n := range names {
		if !n.IsDir() {
			continue
		}
		versions, _ := os.ReadDir(filepath.Join(abs, n.Name()))
		for _, v := range versions {
			if v.IsDir() && isVersion(v.Name()) {
				out = append(out, [2]string{n.Name(), v.Name()})
			}
		}
	}
	return out
}

// fetchFiles downloads the deployment's models and source folder from the
// control plane and points the options at them.
func fetchFiles(ctx context.Context, o *serveModelOptions, log *slog.Logger) error {
	if o.fetchToken == "" || o.fetchDeployment == "" {
		return modelship.Errorf(modelship.EINVALID, "--fetch-url needs --fetch-token and --fetch-deployment (get them with `modelship service fetch-access NAME`)")
	}
	dir := o.fetchDir
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "modelship-fetch", strings.ReplaceAll(o.fetchDeployment, "/", "_"))
	}
	var tlsCfg *tls.Config
	if ca := os.Getenv("MODELSHIP_CA_FILE"); ca != "" {
		var err error
		if tlsCfg, err = tlsutil.ClientConfig(ca); err != nil {
			return err
		}
	}
	start := time.Now()
	f, err := client.FetchDeployment(ctx, o.fetchURL, o.fetchToken, o.fetchDeployment, dir, tlsCfg)
	if err != nil {
		return err
	}
	o.modelDir = f.ModelDir
	if f.SourceDir != "" {
		o.sourceDir = f.SourceDir
		if o.entryScript == "" {
			o.entryScript = f.Manifest.EntryScript
		}
	}
	if o.runtime == runtimeAuto && f.Manifest.Runtime != "" {
		o.runtime = f.Manifest.Runtime
	}
	if len(f.Manifest.Models) == 1 {
		if o.modelName == "" {
			o.modelName = f.Manifest.Models[0].Name
		}
		if o.modelVersion == "" {
			o.modelVersion = strconv.Itoa(f.Manifest.Models[0].Version)
		}
	}
	log.Info("fetched the deployment's files", "deployment", o.fetchDeployment, "models", len(f.Manifest.Models), "dir", dir, "took", time.Since(start).Round(time.Millisecond))
	return nil
}
