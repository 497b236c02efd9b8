package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/cli"
	"github.com/modelship/modelship/compute/kubernetes"
	"github.com/modelship/modelship/gateway"
	"github.com/modelship/modelship/gateway/incluster"
	"github.com/modelship/modelship/tracing"
)

func init() { subcommands = append(subcommands, newGatewayCmd) }

// serviceAccountNamespaceFile holds the pod's namespace in a pod with a
// mounted service account token.
const serviceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// GatewayConfig is the configuration of `modelship gateway`.
type GatewayConfig struct {
	Listen        string
	Namespace     string
	Kubeconfig    string
	Context       string
	LogLevel      string
	LogFormat     string
	ShutdownGrace time.Duration
	ShutdownDelay time.Duration
}

func newGatewayCmd() *cobra.Command {
	cfg := GatewayConfig{}
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Run the in-cluster scoring front end of a Kubernetes compute target",
		Long: `gateway is the front end that runs inside a Kubernetes cluster, next to the model pods
of a Kubernetes compute target: it authenticates scoring requests, splits and mirrors
traffic, queues, balances, proxies to the pods and autoscales the versions, like the
gateway of modelship server, without talking to the control plane.

It reads the route table from the Secret ` + kubernetes.RoutesSecretName + ` (key ` + kubernetes.RoutesSecretKey + `) of its namespace,
finds each version's pods through the EndpointSlices of its Service, and scales a version
through the scale subresource of its Deployment. All of it is watched, not polled.

Probes: GET /healthz (liveness) and GET /readyz (ready once the watches are synced).
Prometheus metrics: GET /metrics.`,
		Example: `  # in a pod (namespace and credentials from the service account)
  modelship gateway
  # outside the cluster, for debugging
  modelship gateway --kubeconfig ~/.kube/config --namespace ml --listen 127.0.0.1:8641`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runGateway(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Listen, "listen", fmt.Sprintf("0.0.0.0:%d", kubernetes.FrontEndPort), "address to serve scoring, probes and metrics on")
	f.StringVar(&cfg.Namespace, "namespace", "", "namespace of the compute target (default $POD_NAMESPACE, else the service account's namespace)")
	f.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "kubeconfig file (default: the in-cluster service account)")
	f.StringVar(&cfg.Context, "context", "", "kubeconfig context (default: its current context)")
	f.StringVar(&cfg.LogLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&cfg.LogFormat, "log-format", "text", "text or json")
	f.DurationVar(&cfg.ShutdownGrace, "shutdown-grace", 30*time.Second, "how long in-flight requests may run after SIGTERM")
	f.DurationVar(&cfg.ShutdownDelay, "shutdown-delay", 0, "after SIGTERM, keep serving this long with /readyz failing before closing the listener")
	return cmd
}

// gatewayNamespace resolves --namespace: the flag, else $POD_NAMESPACE,
// else the service account's namespace file.
func gatewayNamespace(flag, nsFile string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if ns := strings.TrimSpace(os.Getenv("POD_NAMESPACE")); ns != "" {
		return ns, nil
	}
	b, err := os.ReadFile(nsFile)
	if err == nil && strings.TrimSpace(string(b)) != "" {
		return strings.TrimSpace(string(b)), nil
	}
	return "", errors.New("--namespace is required outside a pod (neither $POD_NAMESPACE nor " + nsFile + " gives one)")
}

// gatewayREST returns the REST config: the in-cluster service account, or
// a kubeconfig (--kubeconfig, else $KUBECONFIG or ~/.kube/config) when
// --kubeconfig or --context is given.
func gatewayREST(kubeconfig, kubeContext string) (*rest.Config, error) {
	if kubeconfig == "" && kubeContext == "" {
		rc, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster credentials: %w (outside a pod, give --kubeconfig)", err)
		}
		return rc, nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
		&clientcmd.ConfigOverrides{CurrentContext: kubeContext}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return rc, nil
}

// runGateway serves until ctx ends (SIGTERM), then drains.
func runGateway(ctx context.Context, cfg GatewayConfig) error {
	log, err := newLogger(cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = 30 * time.Second
	}
	ns, err := gatewayNamespace(cfg.Namespace, serviceAccountNamespaceFile)
	if err != nil {
		return err
	}
	rc, err := gatewayREST(cfg.Kubeconfig, cfg.Context)
	if err != nil {
		return err
	}
	rc.UserAgent = "modelship-gateway/" + cli.Version
	client, err := k8s.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", cfg.Listen, err)
	}
	defer ln.Close()
	stopTracing, err := tracing.Setup(ctx, "modelship-gateway")
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := stopTracing(sctx); err != nil {
			log.Warn("flushing trace spans", "err", err)
		}
	}()

	var disc *incluster.Discovery
	scaler := &incluster.Scaler{Client: client, Namespace: ns, Logger: log,
		Table: func() *modelship.RouteTable { return disc.Table() }}
	gw := gateway.New(gateway.Config{Scaler: scaler, Logger: log, Transport: gateway.NewConnTransport()})
	defer gw.Close()
	disc, err = incluster.NewDiscovery(incluster.Config{Client: client, Namespace: ns, Publish: gw.Update, Logger: log})
	if err != nil {
		return err
	}
	defer disc.Close()

	var draining atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		switch {
		case draining.Load():
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("shutting down\n"))
		case !disc.Synced():
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("waiting for the route Secret and EndpointSlice watches to sync\n"))
		default:
			_, _ = w.Write([]byte("ok\n"))
		}
	})
	mux.Handle("GET /metrics", gw.MetricsHandler())
	mux.Handle("/", gw)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- serveHTTP(srv, ln) }()
	log.Info("modelship gateway listening", "version", cli.Version, "listen", "http://"+ln.Addr().String(),
		"namespace", ns, "api_server", rc.Host)
	releaseStartupPages(log)

	// Probes answer while the watches sync; scoring sees no route until then.
	startCtx, cancelStart := context.WithCancel(ctx)
	defer cancelStart()
	syncc := make(chan error, 1)
	go func() {
		start := time.Now()
		err := disc.Start(startCtx)
		if err == nil {
			log.Info("modelship gateway ready: watches synced", "took", time.Since(start).Round(time.Millisecond),
				"routes", len(disc.Table().Routes))
		}
		syncc <- err
	}()

	var serveErr error
	started := false
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	case err := <-syncc:
		started = true
		if err != nil {
			if ctx.Err() == nil {
				serveErr = err
			}
		} else {
			select {
			case <-ctx.Done():
			case serveErr = <-errc:
			}
		}
	}
	draining.Store(true)
	if !started {
		cancelStart()
		<-syncc // Discovery.Start has returned: Close may run
	}
	if serveErr == nil && cfg.ShutdownDelay > 0 {
		log.Info("shutting down: not ready; serving for the shutdown delay", "delay", cfg.ShutdownDelay)
		time.Sleep(cfg.ShutdownDelay)
	}
	log.Info("shutting down: draining requests in flight", "grace", cfg.ShutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("requests still in flight at the end of the shutdown grace", "err", err)
	}
	log.Info("stopped")
	return serveErr
}
