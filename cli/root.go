// Package cli holds the modelship command-line verbs. It talks to the
// server only through the client package (the Go SDK).
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/client"
	"github.com/modelship/modelship/internal/tlsutil"
	"github.com/spf13/cobra"
)

// Version is the modelship version, set at build time with -ldflags.
var Version = "dev"

// Defaults shared by the server and the CLI.
const (
	DefaultListen        = "127.0.0.1:8640"
	DefaultGatewayListen = "127.0.0.1:8641"
)

// NewRootCmd returns the root command with every client verb attached.
func NewRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "modelship",
		Short: "Deploy machine-learning models as authenticated, autoscaled scoring services",
		Long: `modelship deploys machine-learning models as authenticated, autoscaled scoring web
services, on this machine or on Kubernetes. It runs Azure ML v1 score.py,
inferenceconfig.json and deploymentconfig.json unchanged.

The CLI finds the server and its admin token through MODELSHIP_URL and
MODELSHIP_TOKEN, else ~/.modelship/config.json ({"url": ..., "token": ...}),
else the local server's data dir (MODELSHIP_DATA_DIR or ~/.modelship).
Over https it verifies the server's certificate against the system's CAs
plus --ca-file (MODELSHIP_CA_FILE, or "caFile" in config.json; a local
server with --tls-self-signed publishes its own in server.json).`,
		Version:       Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringP("workspace", "w", envOr("MODELSHIP_WORKSPACE", modelship.DefaultWorkspace), "workspace to work in (env MODELSHIP_WORKSPACE)")
	root.PersistentFlags().StringVar(&caFileFlag, "ca-file", "", "PEM CA certificate(s) to verify the server's TLS certificate with (env MODELSHIP_CA_FILE)")
	// Azure CLI (az ml) spellings, so that scripted commands run unchanged:
	// --workspace-name is --workspace; the Azure addressing flags and
	// --verbose have no meaning here and are accepted and ignored.
	pf := root.PersistentFlags()
	pf.String("workspace-name", "", "the workspace, as az ml names the flag (same as --workspace)")
	pf.StringP("resource-group", "g", "", "accepted for az ml compatibility; ignored (there are no resource groups here)")
	pf.String("subscription-id", "", "accepted for az ml compatibility; ignored")
	pf.BoolP("verbose", "v", false, "accepted for az ml compatibility; ignored")
	for _, name := range []string{"workspace-name", "resource-group", "subscription-id", "verbose"} {
		pf.MarkHidden(name)
	}
	root.AddCommand(newModelCmd(), newWorkspaceCmd(), newServiceCmd(), newEndpointCmd(), newComputeTargetCmd())
	acceptNameFlag(root)
	return root
}

// acceptNameFlag lets every command that takes a service or endpoint as
// its argument ("show NAME", "delete ENDPOINT") take it as -n/--name too,
// as az ml does (az ml service show -n SVC).
func acceptNameFlag(c *cobra.Command) {
	for _, sub := range c.Commands() {
		acceptNameFlag(sub)
	}
	words := strings.Fields(c.Use)
	if len(words) < 2 || !strings.HasPrefix(words[1], "NAME") && words[1] != "ENDPOINT" || c.Flags().Lookup("name") != nil || c.RunE == nil {
		return
	}
	what := "endpoint"
	if words[1] != "ENDPOINT" {
		what = c.Parent().Name() // service, endpoint, model, ...
	}
	var name, modelID string
	var version int
	c.Flags().StringVarP(&name, "name", "n", "", "the "+what+"'s name, as az ml takes it (instead of the argument)")
	isModel := strings.HasPrefix(words[1], "NAME") && strings.Contains(words[1], "VERSION")
	if isModel {
		// az ml model show/download/update/delete: -i NAME:VERSION, or
		// -n NAME --version V.
		c.Flags().StringVarP(&modelID, "model-id", "i", "", "the model as NAME:VERSION, as az ml takes it (instead of the argument)")
		c.Flags().IntVar(&version, "version", 0, "the version, with --name")
	}
	given := func(a []string) ([]string, error) {
		flag := name
		if modelID != "" {
			if flag != "" {
				return nil, fmt.Errorf("give the model once: --model-id or --name, not both")
			}
			flag = modelID
		}
		if version != 0 {
			if flag == "" || strings.Contains(flag, ":") {
				return nil, fmt.Errorf("--version goes with --name NAME (or use --model-id NAME:VERSION)")
			}
			flag = fmt.Sprintf("%s:%d", flag, version)
		}
		if flag == "" {
			return a, nil
		}
		if len(a) > 0 {
			return nil, fmt.Errorf("give the name once: as the argument or with --name, not both")
		}
		return []string{flag}, nil
	}
	args, run := c.Args, c.RunE
	c.Args = func(cmd *cobra.Command, a []string) error {
		a, err := given(a)
		if err != nil {
			return err
		}
		if args == nil {
			return nil
		}
		return args(cmd, a)
	}
	c.RunE = func(cmd *cobra.Command, a []string) error {
		a, err := given(a)
		if err != nil {
			return err
		}
		return run(cmd, a)
	}
}

// caFileFlag is the value of the global --ca-file flag.
var caFileFlag string

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func workspaceFlag(cmd *cobra.Command) string {
	f := cmd.Flags()
	if !f.Changed("workspace") && f.Lookup("workspace-name") != nil && f.Changed("workspace-name") {
		if ws, _ := f.GetString("workspace-name"); ws != "" {
			return ws
		}
	}
	ws, _ := f.GetString("workspace")
	return ws
}

// DefaultDataDir is where the server keeps its state unless told otherwise:
// $MODELSHIP_DATA_DIR, else ~/.modelship.
func DefaultDataDir() string {
	if d := os.Getenv("MODELSHIP_DATA_DIR"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".modelship"
	}
	return filepath.Join(home, ".modelship")
}

// ClientConfig is the content of ~/.modelship/config.json and of the
// server's <data-dir>/server.json.
type ClientConfig struct {
	URL        string `json:"url"`
	Token      string `json:"token,omitempty"`
	GatewayURL string `json:"gatewayUrl,omitempty"`
	// CAFile is a PEM file of CA certificates that the server's TLS
	// certificate chains to (the self-signed certificate in server.json).
	CAFile string `json:"caFile,omitempty"`
}

// ResolveClientConfig finds the server URL, token and CA file: the
// --ca-file flag and the environment (MODELSHIP_URL, MODELSHIP_TOKEN,
// MODELSHIP_CA_FILE), then ~/.modelship/config.json (or $MODELSHIP_CONFIG),
// then the local data dir's server.json and admin-token. A caFile from a
// file is used only for the URL written next to it.
func ResolveClientConfig() ClientConfig {
	cfg := ClientConfig{URL: os.Getenv("MODELSHIP_URL"), Token: os.Getenv("MODELSHIP_TOKEN"), CAFile: caFileFlag}
	if cfg.CAFile == "" {
		cfg.CAFile = os.Getenv("MODELSHIP_CA_FILE")
	}
	fill := func(c ClientConfig) {
		if cfg.URL == "" {
			cfg.URL = c.URL
		}
		if cfg.Token == "" {
			cfg.Token = c.Token
		}
		if cfg.CAFile == "" && c.CAFile != "" && strings.TrimRight(cfg.URL, "/") == strings.TrimRight(c.URL, "/") {
			cfg.CAFile = c.CAFile
		}
	}
	path := os.Getenv("MODELSHIP_CONFIG")
	if path == "" {
		if home, err := os.UserHomeDir(); err == nil {
			path = filepath.Join(home, ".modelship", "config.json")
		}
	}
	if b, err := os.ReadFile(path); err == nil {
		var c ClientConfig
		if json.Unmarshal(b, &c) == nil {
			fill(c)
		}
	}
	dir := DefaultDataDir()
	if b, err := os.ReadFile(filepath.Join(dir, "server.json")); err == nil {
		var c ClientConfig
		if json.Unmarshal(b, &c) == nil {
			fill(ClientConfig{URL: c.URL, CAFile: c.CAFile})
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "admin-token")); err == nil {
		fill(ClientConfig{Token: strings.TrimSpace(string(b))})
	}
	fill(ClientConfig{URL: "http://" + DefaultListen})
	return cfg
}

func newClient() (*client.Client, error) {
	cfg := ResolveClientConfig()
	if cfg.Token == "" {
		return nil, modelship.Errorf(modelship.EUNAUTHORIZED, "no admin token found; set MODELSHIP_TOKEN, write it to ~/.modelship/config.json, or run the CLI as the user that runs `modelship server`")
	}
	opts := []client.Option{client.WithWarnings(func(w string) { fmt.Fprintln(os.Stderr, "warning:", w) })}
	if cfg.CAFile != "" {
		tc, err := tlsutil.ClientConfig(cfg.CAFile)
		if err != nil {
			return nil, modelship.Errorf(modelship.EINVALID, "%v (the CA file comes from --ca-file, MODELSHIP_CA_FILE or caFile in the config)", err)
		}
		opts = append(opts, client.WithTLSConfig(tc))
	}
	return client.New(cfg.URL, cfg.Token, opts...), nil
}

// FormatError renders an error for the terminal.
func FormatError(err error) string {
	var me *modelship.Error
	if errors.As(err, &me) {
		return me.Message
	}
	return err.Error()
}

// ExitCode maps an error to the process exit code: 2 for bad input, 3 for
// a failed startup of a model server, 1 otherwise.
func ExitCode(err error) int {
	var ec interface{ ExitCode() int }
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	switch modelship.ErrorCode(err) {
	case modelship.EINVALID:
		return 2
	}
	return 1
}

// outputFlag adds -o/--output json|table to a list or show command.
func outputFlag(cmd *cobra.Command) {
	cmd.Flags().StringP("output", "o", "table", "output format: table or json")
}

func outputFormat(cmd *cobra.Command) (string, error) {
	o, _ := cmd.Flags().GetString("output")
	switch o {
	case "table", "json":
		return o, nil
	}
	return "", modelship.Errorf(modelship.EINVALID, "output format %q is unknown; use table or json", o)
}

func printJSON(cmd *cobra.Command, v any) error {
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func contextWithTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}
