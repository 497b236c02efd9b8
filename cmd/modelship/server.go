package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/artifact"
	"github.com/modelship/modelship/auth"
	"github.com/modelship/modelship/cli"
	"github.com/modelship/modelship/compute"
	"github.com/modelship/modelship/compute/local"
	"github.com/modelship/modelship/controller"
	"github.com/modelship/modelship/gateway"
	"github.com/modelship/modelship/httpapi"
	"github.com/modelship/modelship/internal/tlsutil"
	"github.com/modelship/modelship/modelserver/onnx"
	"github.com/modelship/modelship/modelserver/python"
	"github.com/modelship/modelship/registry"
	"github.com/modelship/modelship/sqlite"
	"github.com/modelship/modelship/tracing"
	"github.com/spf13/cobra"
)

// ServerConfig is the configuration of `modelship server`.
type ServerConfig struct {
	DataDir        string
	Listen         string
	GatewayListen  string
	MaxUploadBytes int64
	LogLevel       string
	LogFormat      string
	ShutdownGrace  time.Duration
	// Capacity of the built-in local target; 0 means this machine's.
	LocalCPU             float64
	LocalMemoryGB        float64
	LocalGPUs            int
	UnschedulableTimeout time.Duration
	ScaleDownDelay       time.Duration
	// TLS: a PEM certificate and key for the API and the gateway, optionally
	// a separate pair for the gateway, or a self-signed pair in <data-dir>/tls.
	TLSCert, TLSKey               string
	GatewayTLSCert, GatewayTLSKey string
	TLSSelfSigned                 bool
	// AdvertiseURL is the API URL replicas running elsewhere (Kubernetes
	// pods, other machines) use to fetch their files; default: --listen.
	AdvertiseURL string
	// KubernetesImage is the image of Kubernetes targets attached without
	// --image.
	KubernetesImage string
}

// Server is the all-in-one control plane: API, store, registry, and the
// gateway listener.
type Server struct {
	cfg ServerConfig
	log *slog.Logger

	db       *sqlite.DB
	ctrl     *controller.Controller
	gw       *gateway.Gateway
	api      *http.Server
	gateway  *http.Server
	apiLn    net.Listener
	gwLn     net.Listener
	tokenLoc string

	apiURL, gwURL string // http:// or https:// base URLs of the listeners
	caFile        string // the self-signed certificate, for clients
	reloaders     []*tlsutil.Reloader
	stopTracing   func(context.Context) error // flushes exported spans
}

func newServerCmd() *cobra.Command {
	cfg := ServerConfig{}
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane (API, model registry) and the scoring gateway",
		Long: `server runs the modelship control plane: the REST API (--listen), the embedded SQLite
store and artifact store under --data-dir, and the scoring gateway (--gateway-listen).

At first start it creates an admin token in <data-dir>/admin-token (mode 0600);
every API call needs "Authorization: Bearer <token>". A CLI run by the same user on
the same machine finds the server and the token by itself.`,
		Example: `  modelship server
  modelship server --data-dir /var/lib/modelship --listen 127.0.0.1:9000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := NewServer(cfg)
			if err != nil {
				return err
			}
			return s.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", "", "where state lives: database, artifacts, admin token (default $MODELSHIP_DATA_DIR or ~/.modelship)")
	f.StringVar(&cfg.Listen, "listen", cli.DefaultListen, "address of the control-plane API")
	f.StringVar(&cfg.GatewayListen, "gateway-listen", cli.DefaultGatewayListen, "address of the scoring gateway (front end)")
	f.Int64Var(&cfg.MaxUploadBytes, "max-upload-bytes", httpapi.DefaultMaxUploadBytes, "largest accepted model upload in bytes")
	f.StringVar(&cfg.LogLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&cfg.LogFormat, "log-format", "text", "text or json")
	f.DurationVar(&cfg.ShutdownGrace, "shutdown-grace", 30*time.Second, "how long in-flight requests may run after SIGTERM")
	f.Float64Var(&cfg.LocalCPU, "local-cpu", 0, "CPU capacity of the built-in local target (default: this machine's cores)")
	f.Float64Var(&cfg.LocalMemoryGB, "local-memory-gb", 0, "memory capacity of the built-in local target in GB (default: this machine's memory)")
	f.IntVar(&cfg.LocalGPUs, "local-gpus", -1, "GPUs of the built-in local target (default: /dev/nvidia* devices found)")
	f.DurationVar(&cfg.UnschedulableTimeout, "unschedulable-timeout", 5*time.Minute, "how long a deployment may stay Unschedulable before it fails")
	f.StringVar(&cfg.AdvertiseURL, "advertise-url", "", "API URL that replicas running elsewhere use to fetch their files (default: the --listen address)")
	f.StringVar(&cfg.KubernetesImage, "kubernetes-image", "modelship:"+cli.Version, "image of Kubernetes targets attached without --image (build it with `modelship image build`)")
	f.DurationVar(&cfg.ScaleDownDelay, "scale-down-delay", 60*time.Second, "how long utilization must stay below target before the autoscaler removes a replica")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate (full chain) for HTTPS on the API and the gateway; reloaded when the file changes")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key of --tls-cert")
	f.StringVar(&cfg.GatewayTLSCert, "gateway-tls-cert", "", "PEM certificate for the gateway only (default --tls-cert)")
	f.StringVar(&cfg.GatewayTLSKey, "gateway-tls-key", "", "PEM private key of --gateway-tls-cert")
	f.BoolVar(&cfg.TLSSelfSigned, "tls-self-signed", false, "serve HTTPS with a self-signed certificate kept in <data-dir>/tls (development)")
	return cmd
}

func newLogger(level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q is invalid; use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q is invalid; use text or json", format)
}

// NewServer validates the configuration; it starts nothing.
func NewServer(cfg ServerConfig) (*Server, error) {
	log, err := newLogger(cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return nil, err
	}
	if cfg.DataDir == "" {
		cfg.DataDir = cli.DefaultDataDir()
	}
	if cfg.MaxUploadBytes <= 0 {
		return nil, fmt.Errorf("--max-upload-bytes must be positive, got %d", cfg.MaxUploadBytes)
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = 30 * time.Second
	}
	if err := validateTLS(cfg); err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, log: log}, nil
}

// Run opens the store, starts the listeners and serves until ctx ends, then
// shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	if err := s.open(ctx); err != nil {
		s.close()
		return err
	}
	errc := make(chan error, 2)
	go func() { errc <- serveHTTP(s.api, s.apiLn) }()
	go func() { errc <- serveHTTP(s.gateway, s.gwLn) }()
	s.log.Info("modelship server ready", "version", cli.Version, "api", s.apiURL,
		"gateway", s.gwURL, "data_dir", s.cfg.DataDir, "admin_token_file", s.tokenLoc)
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	s.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownGrace)
	defer cancel()
	s.api.Shutdown(sctx)
	s.gateway.Shutdown(sctx)
	s.close()
	s.log.Info("stopped")
	return err
}

func serveHTTP(srv *http.Server, ln net.Listener) error {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (s *Server) open(ctx context.Context) error {
	if err := os.MkdirAll(s.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("creating data dir: %w", err)
	}
	token, err := ensureAdminToken(filepath.Join(s.cfg.DataDir, "admin-token"))
	if err != nil {
		return err
	}
	s.tokenLoc = filepath.Join(s.cfg.DataDir, "admin-token")
	s.db, err = sqlite.Open(ctx, filepath.Join(s.cfg.DataDir, "modelship.db"))
	if err != nil {
		return err
	}
	art, err := artifact.OpenLocal(filepath.Join(s.cfg.DataDir, "artifacts"))
	if err != nil {
		return err
	}
	reg := registry.New(s.db, art, s.log)
	masterKey, err := auth.LoadOrCreateMasterKey(filepath.Join(s.cfg.DataDir, "master.key"))
	if err != nil {
		return err
	}
	sealer, err := auth.NewSealer(masterKey)
	if err != nil {
		return err
	}
	signer, err := auth.LoadOrCreateSigningKeys(filepath.Join(s.cfg.DataDir, "signing-keys"))
	if err != nil {
		return err
	}
	s.apiLn, err = net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", s.cfg.Listen, err)
	}
	s.gwLn, err = net.Listen("tcp", s.cfg.GatewayListen)
	if err != nil {
		return fmt.Errorf("--gateway-listen %s: %w", s.cfg.GatewayListen, err)
	}
	if err := s.setupTLS(); err != nil {
		return err
	}
	capacity := machineCapacity(s.cfg)
	logDir := filepath.Join(s.cfg.DataDir, "logs")
	var gw *gateway.Gateway
	s.ctrl = controller.New(controller.Config{
		Store: s.db, Models: reg, Artifacts: art, Sealer: sealer, Signer: signer,
		NewDriver: func(ct *modelship.ComputeTarget, onChange func(string)) (compute.Driver, error) {
			if ct.Type == modelship.TargetKubernetes {
				return newKubernetesDriver(ct, sealer, s.log, onChange)
			}
			if ct.Type != modelship.TargetLocal {
				return nil, fmt.Errorf("compute target %s has type %q, which this server cannot drive", ct.Name, ct.Type)
			}
			return local.New(local.Config{
				Capacity: compute.Capacity{CPU: ct.CPU, MemoryGB: ct.MemoryGB, GPUs: ct.GPUs},
				LogDir:   filepath.Join(logDir, ct.Workspace+"_"+ct.Name), Log: s.log, OnChange: onChange,
			})
		},
		Attach:               attachKubernetes,
		DefaultImage:         s.cfg.KubernetesImage,
		Publish:              func(t *modelship.RouteTable) { gw.Update(t) },
		DataDir:              s.cfg.DataDir,
		GatewayURL:           s.gwURL,
		AdvertiseURL:         cmp.Or(s.cfg.AdvertiseURL, s.apiURL),
		LocalCapacity:        capacity,
		ReplicaEnv:           replicaEnv,
		UnschedulableTimeout: s.cfg.UnschedulableTimeout,
		ScaleStatus: func(route, version string) string {
			st, ok := gw.ScaleStatus(route, version)
			if !ok {
				return ""
			}
			msg := fmt.Sprintf("%s at %s: %d replica(s), busy %.2f (%.0f%% utilization), desired %d", st.Action, st.At.Local().Format("15:04:05"), st.Replicas, st.Busy, st.Utilization, st.Desired)
			if st.Reason != "" {
				msg += " (" + st.Reason + ")"
			}
			if st.Err != "" {
				msg += "; error: " + st.Err
			}
			return msg
		},
		VersionStats: func(route, version string) (*modelship.VersionStats, bool) {
			st, ok := gw.Stats(route, version)
			if !ok {
				return nil, false
			}
			return versionStats(st), true
		},
		ScaleDownDelay: s.cfg.ScaleDownDelay,
		Log:            s.log,
	})
	if s.stopTracing, err = tracing.Setup(ctx, "modelship-gateway"); err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	gw = gateway.New(gateway.Config{Scaler: s.ctrl, Logger: s.log, Transport: gateway.NewConnTransport(),
		TelemetryDir: filepath.Join(s.cfg.DataDir, "telemetry")})
	s.gw = gw
	reg.InUse = s.ctrl.ModelInUse
	reg.Referenced = s.ctrl.SourceDigests
	if n, err := reg.CollectGarbage(ctx); err != nil {
		return fmt.Errorf("cleaning artifacts: %w", err)
	} else if n > 0 {
		s.log.Info("removed unreferenced blobs left by an earlier crash", "blobs", n)
	}
	if err := s.ctrl.Start(ctx); err != nil {
		return fmt.Errorf("restoring services: %w", err)
	}
	api := &httpapi.Server{Workspaces: s.db, Models: reg, Deployments: s.ctrl, Endpoints: s.ctrl, Sources: reg, AdminToken: token,
		MaxUploadBytes: s.cfg.MaxUploadBytes, Version: cli.Version, Log: s.log}
	s.api = &http.Server{Handler: api.Handler(), ReadHeaderTimeout: 30 * time.Second}
	gwMux := http.NewServeMux()
	gwMux.Handle("GET /metrics", gw.MetricsHandler())
	gwMux.Handle("/", gw)
	s.gateway = &http.Server{Handler: gwMux, ReadHeaderTimeout: 30 * time.Second}
	info, _ := json.Marshal(cli.ClientConfig{URL: s.apiURL, GatewayURL: s.gwURL, CAFile: s.caFile})
	if err := writeFileAtomic(filepath.Join(s.cfg.DataDir, "server.json"), info, 0o600); err != nil {
		return err
	}
	// Resolve what replicas inherit (the default Python is found by
	// starting interpreters, a few hundred ms) now, in the background,
	// rather than in the first deploy.
	go replicaEnv()
	releaseStartupPages(s.log)
	return nil
}

func (s *Server) close() {
	if s.ctrl != nil {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownGrace)
		s.ctrl.Close(ctx)
		cancel()
	}
	if s.gw != nil {
		s.gw.Close()
	}
	if s.stopTracing != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := s.stopTracing(ctx); err != nil {
			s.log.Warn("flushing trace spans", "err", err)
		}
		cancel()
	}
	if s.apiLn != nil {
		s.apiLn.Close()
	}
	if s.gwLn != nil {
		s.gwLn.Close()
	}
	if s.db != nil {
		s.db.Close()
	}
	for _, r := range s.reloaders {
		r.Close()
	}
}

// ensureAdminToken returns the token in path, creating it (mode 0600) with
// 32 random bytes on first start.
func ensureAdminToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return "", fmt.Errorf("admin token file %s is empty; delete it to have a new token created", path)
		}
		return tok, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("reading admin token: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	tok := "msa_" + base64.RawURLEncoding.EncodeToString(raw)
	if err := writeFileAtomic(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("writing admin token: %w", err)
	}
	return tok, nil
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	err = tmp.Chmod(mode)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// machineCapacity is the built-in local target's capacity: the flags, else
// this machine's cores, memory and NVIDIA devices.
func machineCapacity(cfg ServerConfig) compute.Capacity {
	c := compute.Capacity{CPU: cfg.LocalCPU, MemoryGB: cfg.LocalMemoryGB, GPUs: cfg.LocalGPUs}
	if c.CPU <= 0 {
		c.CPU = float64(runtime.NumCPU())
	}
	if c.MemoryGB <= 0 {
		c.MemoryGB = 4
		if b, err := os.ReadFile("/proc/meminfo"); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				f := strings.Fields(line)
				if len(f) >= 2 && f[0] == "MemTotal:" {
					if kb, err := strconv.ParseFloat(f[1], 64); err == nil {
						c.MemoryGB = float64(int(kb/1024/1024*10)) / 10
					}
				}
			}
		}
	}
	if c.GPUs < 0 {
		devs, _ := filepath.Glob("/dev/nvidia[0-9]*")
		c.GPUs = len(devs)
	}
	return c
}

// versionStats converts the front end's statistics to the API type.
func versionStats(st gateway.VersionStats) *modelship.VersionStats {
	out := &modelship.VersionStats{Total: st.Total, Requests: st.Requests, P50: st.P50, P95: st.P95, P99: st.P99, Mean: st.MeanLatency,
		ReadyReplicas: st.ReadyReplicas, BusyReplicas: st.BusyReplicas, InFlight: st.InFlight, Queued: st.Queued,
		MirrorSent: st.MirrorSent, MirrorDropped: st.MirrorDropped}
	if st.Total > 0 {
		out.ErrorRate = float64(st.Requests["5xx"]) / float64(st.Total)
	}
	for _, b := range st.Latency {
		out.Latency = append(out.Latency, modelship.LatencyBucket{UpperBound: b.UpperBound, Count: b.Count})
	}
	return out
}

// validateTLS checks that the TLS flags come in pairs and do not conflict.
func validateTLS(cfg ServerConfig) error {
	pairs := [][2]string{{"--tls-cert", cfg.TLSCert}, {"--tls-key", cfg.TLSKey},
		{"--gateway-tls-cert", cfg.GatewayTLSCert}, {"--gateway-tls-key", cfg.GatewayTLSKey}}
	for i := 0; i < len(pairs); i += 2 {
		cert, key := pairs[i], pairs[i+1]
		if cert[1] != "" && key[1] == "" {
			return fmt.Errorf("%s is set but %s is not; give the certificate's private key with %s", cert[0], key[0], key[0])
		}
		if key[1] != "" && cert[1] == "" {
			return fmt.Errorf("%s is set but %s is not; give the certificate with %s", key[0], cert[0], cert[0])
		}
	}
	if cfg.TLSSelfSigned && cfg.TLSCert != "" {
		return errors.New("--tls-self-signed and --tls-cert exclude each other; give one of them")
	}
	return nil
}

// setupTLS wraps the listeners in TLS as the flags ask and sets the base
// URLs (http:// or https://) the server publishes.
func (s *Server) setupTLS() error {
	cert, key := s.cfg.TLSCert, s.cfg.TLSKey
	if s.cfg.TLSSelfSigned {
		dir := filepath.Join(s.cfg.DataDir, "tls")
		var fp string
		var err error
		cert, key, fp, err = tlsutil.SelfSigned(tlsHosts(s.cfg.Listen, s.cfg.GatewayListen), dir)
		if err != nil {
			return fmt.Errorf("--tls-self-signed: %w", err)
		}
		s.caFile = cert
		s.log.Info("serving HTTPS with a self-signed certificate; clients trust it with --ca-file (curl --cacert)",
			"sha256", fp, "ca_file", cert)
	}
	apiTLS, err := s.tlsConfig(cert, key)
	if err != nil {
		return err
	}
	gwTLS := apiTLS
	if s.cfg.GatewayTLSCert != "" {
		if gwTLS, err = s.tlsConfig(s.cfg.GatewayTLSCert, s.cfg.GatewayTLSKey); err != nil {
			return err
		}
	}
	s.apiLn, s.apiURL = withTLS(s.apiLn, apiTLS)
	s.gwLn, s.gwURL = withTLS(s.gwLn, gwTLS)
	return nil
}

// tlsConfig returns the server TLS config of a (reloading) certificate and
// key pair, or nil when certFile is empty.
func (s *Server) tlsConfig(certFile, keyFile string) (*tls.Config, error) {
	if certFile == "" {
		return nil, nil
	}
	r, err := tlsutil.NewReloader(certFile, keyFile, s.log)
	if err != nil {
		return nil, err
	}
	s.reloaders = append(s.reloaders, r)
	return tlsutil.ServerConfig(r), nil
}

// withTLS returns ln serving TLS with cfg and its https:// URL, or ln and
// its http:// URL when cfg is nil.
func withTLS(ln net.Listener, cfg *tls.Config) (net.Listener, string) {
	if cfg == nil {
		return ln, "http://" + ln.Addr().String()
	}
	return tls.NewListener(ln, cfg), "https://" + ln.Addr().String()
}

// tlsHosts are the names a self-signed certificate must cover beyond
// loopback: the listen hosts, and this machine's name when listening on
// all interfaces.
func tlsHosts(addrs ...string) []string {
	var hosts []string
	for _, a := range addrs {
		h, _, err := net.SplitHostPort(a)
		if err != nil {
			continue
		}
		if ip := net.ParseIP(h); h == "" || (ip != nil && ip.IsUnspecified()) {
			if name, err := os.Hostname(); err == nil {
				hosts = append(hosts, name)
			}
			continue
		}
		hosts = append(hosts, h)
	}
	return hosts
}

// replicaEnv is what every replica gets from the server: the ONNX Runtime
// library the server resolved, so replicas find it whatever their HOME, and
// the default Python (the first python3 with numpy), found once.
var replicaEnv = sync.OnceValue(func() map[string]string {
	env := map[string]string{}
	if p := onnx.DefaultLibraryPath(); p != "" {
		if _, err := os.Stat(p); err == nil {
			env["MODELSHIP_ORT_LIB"] = p
		}
	}
	if os.Getenv("MODELSHIP_PYTHON") == "" {
		env["MODELSHIP_PYTHON"] = python.DefaultInterpreter()
	}
	return env
})
