package main

import (
	"context"
	"crypto/rand"
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
	"strings"
	"time"

	"github.com/modelship/modelship/artifact"
	"github.com/modelship/modelship/cli"
	"github.com/modelship/modelship/httpapi"
	"github.com/modelship/modelship/registry"
	"github.com/modelship/modelship/sqlite"
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
}

// Server is the all-in-one control plane: API, store, registry, and the
// gateway listener.
type Server struct {
	cfg ServerConfig
	log *slog.Logger

	db       *sqlite.DB
	api      *http.Server
	gateway  *http.Server
	apiLn    net.Listener
	gwLn     net.Listener
	tokenLoc string
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
	s.log.Info("modelship server ready", "version", cli.Version, "api", "http://"+s.apiLn.Addr().String(),
		"gateway", "http://"+s.gwLn.Addr().String(), "data_dir", s.cfg.DataDir, "admin_token_file", s.tokenLoc)
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
	if n, err := reg.CollectGarbage(ctx); err != nil {
		return fmt.Errorf("cleaning artifacts: %w", err)
	} else if n > 0 {
		s.log.Info("removed unreferenced model bytes left by an earlier crash", "blobs", n)
	}
	api := &httpapi.Server{Workspaces: s.db, Models: reg, AdminToken: token, MaxUploadBytes: s.cfg.MaxUploadBytes, Version: cli.Version, Log: s.log}
	s.apiLn, err = net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", s.cfg.Listen, err)
	}
	s.gwLn, err = net.Listen("tcp", s.cfg.GatewayListen)
	if err != nil {
		return fmt.Errorf("--gateway-listen %s: %w", s.cfg.GatewayListen, err)
	}
	s.api = &http.Server{Handler: api.Handler(), ReadHeaderTimeout: 30 * time.Second}
	s.gateway = &http.Server{Handler: gatewayHandler(), ReadHeaderTimeout: 30 * time.Second}
	info, _ := json.Marshal(cli.ClientConfig{URL: "http://" + s.apiLn.Addr().String(), GatewayURL: "http://" + s.gwLn.Addr().String()})
	if err := writeFileAtomic(filepath.Join(s.cfg.DataDir, "server.json"), info, 0o600); err != nil {
		return err
	}
	return nil
}

func (s *Server) close() {
	if s.apiLn != nil {
		s.apiLn.Close()
	}
	if s.gwLn != nil {
		s.gwLn.Close()
	}
	if s.db != nil {
		s.db.Close()
	}
}

// gatewayHandler answers on the scoring gateway's address. Deployed services
// are routed here by the front end.
func gatewayHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("Healthy"))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(map[string]string{"message": "no service is deployed at " + r.URL.Path})
	})
	return mux
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
	if err := tmp.Chmod(mode); err == nil {
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
