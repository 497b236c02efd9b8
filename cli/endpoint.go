package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/client"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func newEndpointCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "endpoint",
		Short: "Controlled rollout: endpoints with up to six versions, traffic split, control and treatments",
		Long: `An endpoint serves up to six versions behind one scoring URI. Each version has a traffic
percentile; whatever is not allocated goes to the default version. One version is the
control, the others treatments; 'endpoint show --metrics' compares each treatment with the
control. Send "azureml-model-deployment: <version>" to pin a request to a version.`,
	}
	version := &cobra.Command{Use: "version", Short: "Create, update, delete and promote endpoint versions"}
	version.AddCommand(newVersionCreateCmd(), newVersionUpdateCmd(), newVersionDeleteCmd(), newVersionPromoteCmd())
	cmd.AddCommand(newEndpointCreateCmd(), newEndpointListCmd(), newEndpointShowCmd(), newEndpointUpdateCmd(), newEndpointDeleteCmd(),
		newEndpointWaitCmd(), newEndpointKeysCmd(), newEndpointRegenKeyCmd(), newEndpointTokenCmd(), newEndpointLogsCmd(), newEndpointRunCmd(), version)
	return cmd
}

// versionFlags are the traffic flags of a version.
func versionFlags(f *pflag.FlagSet) {
	f.String("version-name", "", "version name: 3-32 lowercase letters, digits and '-', not the endpoint's name")
	f.Float64("traffic-percentile", 0, "share of traffic, 0-100 (unallocated traffic goes to the default version)")
	f.Float64("mirror-percentile", 0, "copy this share of live requests to the version (responses discarded; at most 50)")
	f.Bool("default", false, "make this the default version")
	f.Bool("control", false, "make this the control version (demotes the current one)")
	f.Bool("treatment", false, "make this a treatment version")
}

func readVersionFlags(cmd *cobra.Command, req *modelship.VersionRequest) error {
	f := cmd.Flags()
	req.Name, _ = f.GetString("version-name")
	if f.Changed("traffic-percentile") {
		v, _ := f.GetFloat64("traffic-percentile")
		req.TrafficPercentile = &v
	}
	if f.Changed("mirror-percentile") {
		v, _ := f.GetFloat64("mirror-percentile")
		req.MirrorPercentile = &v
	}
	if f.Changed("default") {
		v, _ := f.GetBool("default")
		req.IsDefault = &v
	}
	control, _ := f.GetBool("control")
	treatment, _ := f.GetBool("treatment")
	if control && treatment {
		return modelship.Errorf(modelship.EINVALID, "--control and --treatment exclude each other")
	}
	if f.Changed("control") || f.Changed("treatment") {
		v := control || (f.Changed("treatment") && !treatment)
		req.IsControl = &v
	}
	return nil
}

func deploymentFlags(f *pflag.FlagSet) {
	f.StringArrayP("model", "m", nil, "model NAME[:VERSION] (repeatable)")
	f.String("ic", "", "inference config file; alias --inference-config-file")
	f.String("inference-config-file", "", "inference config file")
	f.String("dc", "", "deployment config file; alias --deploy-config-file")
	f.String("deploy-config-file", "", "deployment config file")
	f.Bool("show-output", false, "stream the deployment's progress")
	f.Bool("no-wait", false, "return once the change is accepted")
	f.String("entry-script", "", "scoring script, instead of an inference config")
	f.String("source-directory", "", "folder shipped with --entry-script")
	f.String("python", "", "Python interpreter for the scoring script")
	addSettingFlags(f)
}

func fileFlag(cmd *cobra.Command, a, b string) string {
	v, _ := cmd.Flags().GetString(a)
	if v == "" {
		v, _ = cmd.Flags().GetString(b)
	}
	return v
}

// readDeployment reads -m, -ic, -dc and the setting flags.
func readDeployment(cmd *cobra.Command, ws string) (models []string, inf *modelship.InferenceSpec, dc []byte, err error) {
	models, _ = cmd.Flags().GetStringArray("model")
	if dc, err = buildDeploymentConfig(cmd, fileFlag(cmd, "dc", "deploy-config-file"), false); err != nil {
		return
	}
	var warnings []string
	inf, warnings, err = loadInference(cmd, ws, fileFlag(cmd, "ic", "inference-config-file"))
	for _, w := range warnings {
		fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
	}
	return
}

// finishEndpoint waits for a started operation and prints the endpoint.
func finishEndpoint(cmd *cobra.Command, c *client.Client, ws, name string, ch *client.EndpointChange) error {
	noWait, _ := cmd.Flags().GetBool("no-wait")
	showOutput, _ := cmd.Flags().GetBool("show-output")
	var werr error
	if ch.OperationID != "" {
		if noWait {
			fmt.Fprintf(cmd.OutOrStdout(), "Operation %s accepted; follow it with `modelship endpoint wait %s --show-output`\n", ch.OperationID, name)
			return nil
		}
		_, werr = c.WaitOperation(cmd.Context(), ws, ch.OperationID, showOutput, cmd.ErrOrStderr())
	}
	ep, err := c.Endpoints.Get(cmd.Context(), ws, name, false)
	if err != nil {
		if werr != nil {
			return werr
		}
		return err
	}
	if perr := printEndpoint(cmd, ep); perr != nil {
		return perr
	}
	return werr
}

func newEndpointCreateCmd() *cobra.Command {
	var name, target string
	cmd := &cobra.Command{
		Use:   "create -n NAME -m MODEL [-ic FILE] [-dc FILE] [--version-name V] [--traffic-percentile P]",
		Short: "Create an endpoint with its first version (the default and the control)",
		Example: `  modelship endpoint create -n fraud -ct local -m fraud:1 -ic ic.json -dc dc.json --version-name blue --traffic-percentile 20
  modelship model deploy -n fraud -m fraud:1 -ic ic.json -dc endpointconfig.json   # computeType AKSENDPOINT, as in Azure`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ws := workspaceFlag(cmd)
			models, inf, dc, err := readDeployment(cmd, ws)
			if err != nil {
				return err
			}
			req := &modelship.EndpointCreateRequest{Name: name, ComputeTarget: target, DeploymentConfig: dc}
			if err := readVersionFlags(cmd, &req.Version); err != nil {
				return err
			}
			req.Version.Models, req.Version.Inference = models, inf
			c, err := newClient()
			if err != nil {
				return err
			}
			ch, err := c.Endpoints.Create(cmd.Context(), ws, req)
			if err != nil {
				return err
			}
			return finishEndpoint(cmd, c, ws, name, ch)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&name, "name", "n", "", "endpoint name (required)")
	f.StringVar(&target, "ct", "", "compute target (default local); alias --compute-target")
	f.StringVar(&target, "compute-target", "", "compute target")
	deploymentFlags(f)
	versionFlags(f)
	cmd.MarkFlagRequired("name")
	outputFlag(cmd)
	return cmd
}

func newVersionCreateCmd() *cobra.Command {
	return newVersionChangeCmd("create ENDPOINT --version-name V -m MODEL [-ic FILE] [--traffic-percentile P] [--control|--treatment] [--default]",
		"Add a version (a treatment unless --control)",
		`  modelship endpoint version create fraud --version-name green -m fraud:2 -ic ic.json --traffic-percentile 10`,
		func(ctx context.Context, c *client.Client, ws, ep string, req *modelship.VersionRequest) (*client.EndpointChange, error) {
			return c.Endpoints.CreateVersion(ctx, ws, ep, req)
		})
}

func newVersionUpdateCmd() *cobra.Command {
	return newVersionChangeCmd("update ENDPOINT --version-name V [--traffic-percentile P] [--default] [--control|--treatment] [-m MODEL -ic FILE ...]",
		"Change a version's traffic or flags (at once) or its deployment (rolling)",
		`  modelship endpoint version update fraud --version-name green --traffic-percentile 40 --default --control
  modelship endpoint version update fraud --version-name green -m fraud:3 -ic ic.json --show-output`,
		func(ctx context.Context, c *client.Client, ws, ep string, req *modelship.VersionRequest) (*client.EndpointChange, error) {
			return c.Endpoints.UpdateVersion(ctx, ws, ep, req)
		})
}

// newVersionChangeCmd builds `endpoint version create|update`: both read
// the deployment flags and the traffic flags and then wait like a deploy.
func newVersionChangeCmd(use, short, example string, call func(context.Context, *client.Client, string, string, *modelship.VersionRequest) (*client.EndpointChange, error)) *cobra.Command {
	cmd := &cobra.Command{
		Use:     use,
		Short:   short,
		Example: example,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ws := workspaceFlag(cmd)
			models, inf, dc, err := readDeployment(cmd, ws)
			if err != nil {
				return err
			}
			req := &modelship.VersionRequest{Models: models, Inference: inf, DeploymentConfig: dc}
			if err := readVersionFlags(cmd, req); err != nil {
				return err
			}
			if req.Name == "" {
				// An AKSENDPOINT deployment config names its version.
				var named struct {
					VersionName string `json:"versionName"`
				}
				if len(dc) > 0 && json.Unmarshal(dc, &named) == nil {
					req.Name = named.VersionName
				}
				if req.Name == "" {
					return modelship.Errorf(modelship.EINVALID, "give the version's name with --version-name (or versionName in the deployment config)")
				}
			}
			c, err := newClient()
			if err != nil {
				return err
			}
			ch, err := call(cmd.Context(), c, ws, args[0], req)
			if err != nil {
				return err
			}
			return finishEndpoint(cmd, c, ws, args[0], ch)
		},
	}
	deploymentFlags(cmd.Flags())
	versionFlags(cmd.Flags())
	outputFlag(cmd)
	return cmd
}

func newVersionDeleteCmd() *cobra.Command {
	var version string
	var noWait bool
	cmd := &cobra.Command{
		Use:     "delete ENDPOINT --version-name V",
		Short:   "Delete a version: its traffic moves at once, then its replicas drain",
		Example: `  modelship endpoint version delete fraud --version-name blue`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			ws := workspaceFlag(cmd)
			ch, err := c.Endpoints.DeleteVersion(cmd.Context(), ws, args[0], version)
			if err != nil {
				return err
			}
			if !noWait {
				if _, err := c.WaitOperation(cmd.Context(), ws, ch.OperationID, false, nil); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted version %s of endpoint %s\n", version, args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&version, "version-name", "", "version to delete (required)")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the deletion is accepted")
	cmd.MarkFlagRequired("version-name")
	return cmd
}

func newVersionPromoteCmd() *cobra.Command {
	var version string
	cmd := &cobra.Command{
		Use:     "promote ENDPOINT --version-name V",
		Short:   "Make a version the control and the default in one step",
		Example: `  modelship endpoint version promote fraud --version-name green`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			ch, err := c.Endpoints.PromoteVersion(cmd.Context(), workspaceFlag(cmd), args[0], version)
			if err != nil {
				return err
			}
			return printEndpoint(cmd, ch.Endpoint)
		},
	}
	cmd.Flags().StringVar(&version, "version-name", "", "version to promote (required)")
	cmd.MarkFlagRequired("version-name")
	outputFlag(cmd)
	return cmd
}

func newEndpointListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List endpoints",
		Example: "  modelship endpoint list -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := outputFormat(cmd)
			if err != nil {
				return err
			}
			c, err := newClient()
			if err != nil {
				return err
			}
			list, err := c.Endpoints.List(cmd.Context(), workspaceFlag(cmd))
			if err != nil {
				return err
			}
			if format == "json" {
				return printJSON(cmd, list)
			}
			t := newTable(cmd.OutOrStdout(), "NAME", "STATE", "VERSIONS", "AUTH", "SCORING URI")
			for _, ep := range list {
				var vs []string
				for _, v := range ep.Versions {
					vs = append(vs, fmt.Sprintf("%s=%g%%", v.Name, v.EffectiveTrafficPercentile))
				}
				t.row(ep.Name, ep.State, strings.Join(vs, " "), ep.AuthMode, ep.ScoringURI)
			}
			return t.flush()
		},
	}
	outputFlag(cmd)
	return cmd
}

func newEndpointShowCmd() *cobra.Command {
	var metrics bool
	cmd := &cobra.Command{
		Use:     "show NAME [--metrics]",
		Short:   "Show an endpoint: versions, types, default, configured and effective traffic; with --metrics live stats and comparisons",
		Example: "  modelship endpoint show fraud --metrics",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := outputFormat(cmd); err != nil {
				return err
			}
			c, err := newClient()
			if err != nil {
				return err
			}
			ep, err := c.Endpoints.Get(cmd.Context(), workspaceFlag(cmd), args[0], metrics)
			if err != nil {
				return err
			}
			return printEndpoint(cmd, ep)
		},
	}
	cmd.Flags().BoolVar(&metrics, "metrics", false, "add live request statistics per version and the comparison of treatments with the control")
	outputFlag(cmd)
	return cmd
}

func printEndpoint(cmd *cobra.Command, ep *modelship.Endpoint) error {
	if f, _ := outputFormat(cmd); f == "json" {
		return printJSON(cmd, ep)
	}
	w := cmd.OutOrStdout()
	pairs := [][2]string{{"Name", ep.Name}, {"State", ep.State}, {"Scoring URI", ep.ScoringURI}, {"Swagger URI", ep.SwaggerURI},
		{"Compute", ep.ComputeTarget + " (" + ep.ComputeType + ")"}, {"Auth", ep.AuthMode}, {"Updated", formatTime(ep.UpdatedTime)}}
	if ep.Error != nil {
		pairs = append(pairs, [2]string{"Error", ep.Error.Code + ": " + ep.Error.Message})
	}
	if err := kvList(w, pairs); err != nil {
		return err
	}
	fmt.Fprintln(w)
	withStats := false
	for _, v := range ep.Versions {
		withStats = withStats || v.Stats != nil
	}
	headers := []string{"VERSION", "TYPE", "DEFAULT", "TRAFFIC", "EFFECTIVE", "MIRROR", "STATE", "REPLICAS", "MODELS"}
	if withStats {
		headers = append(headers, "REQUESTS", "5XX", "P50", "P95", "P99")
	}
	t := newTable(w, headers...)
	for _, v := range ep.Versions {
		ready := 0
		for _, r := range v.Replicas {
			if r.Ready {
				ready++
			}
		}
		row := []string{v.Name, v.VersionType, strconv.FormatBool(v.IsDefault), fmt.Sprintf("%g%%", v.TrafficPercentile),
			fmt.Sprintf("%g%%", v.EffectiveTrafficPercentile), fmt.Sprintf("%g%%", v.MirrorPercentile), dash(v.State),
			fmt.Sprintf("%d/%d", ready, v.DesiredReplicas), strings.Join(v.Models, ",")}
		if withStats {
			if s := v.Stats; s != nil {
				row = append(row, strconv.FormatUint(s.Total, 10), fmt.Sprintf("%.2f%%", 100*s.ErrorRate), roundDur(s.P50), roundDur(s.P95), roundDur(s.P99))
			} else {
				row = append(row, "-", "-", "-", "-", "-")
			}
		}
		t.row(row...)
	}
	if err := t.flush(); err != nil {
		return err
	}
	if len(ep.Comparisons) > 0 {
		fmt.Fprintln(w, "\nComparison with the control (95% confidence):")
		for _, c := range ep.Comparisons {
			fmt.Fprintf(w, "  %s vs %s: error rate %s (%.2f%% vs %.2f%%, p=%.3f); latency %s (p50 %s vs %s, p=%.3f); n=%d vs %d\n",
				c.Treatment, c.Control, c.ErrorRateVerdict, 100*c.TreatmentErrorRate, 100*c.ControlErrorRate, c.ErrorRateP,
				c.LatencyVerdict, roundDur(c.TreatmentP50), roundDur(c.ControlP50), c.LatencyP, c.TreatmentRequests, c.ControlRequests)
		}
	}
	return nil
}

func roundDur(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	default:
		return d.Round(10 * time.Microsecond).String()
	}
}

func newEndpointUpdateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "update NAME [--auth-enabled] [--token-auth-enabled] [--enable-app-insights] [--description D] [--tag k=v]",
		Short:   "Change endpoint-level settings",
		Example: "  modelship endpoint update fraud --token-auth-enabled --auth-enabled=false",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			req := &modelship.EndpointUpdateRequest{}
			boolFlag := func(name string) *bool {
				if !f.Changed(name) {
					return nil
				}
				v, _ := f.GetBool(name)
				return &v
			}
			req.AuthEnabled, req.TokenAuthEnabled, req.AppInsightsEnabled = boolFlag("auth-enabled"), boolFlag("token-auth-enabled"), boolFlag("enable-app-insights")
			if f.Changed("description") {
				d, _ := f.GetString("description")
				req.Description = &d
			}
			if tags, _ := f.GetStringArray("tag"); len(tags) > 0 {
				req.Tags = map[string]string{}
				for _, t := range tags {
					k, v, ok := cutKV(t)
					if !ok {
						return modelship.Errorf(modelship.EINVALID, "tag %q is invalid; use key=value", t)
					}
					req.Tags[k] = v
				}
			}
			c, err := newClient()
			if err != nil {
				return err
			}
			ch, err := c.Endpoints.Update(cmd.Context(), workspaceFlag(cmd), args[0], req)
			if err != nil {
				return err
			}
			return printEndpoint(cmd, ch.Endpoint)
		},
	}
	f := cmd.Flags()
	f.Bool("auth-enabled", false, "key auth")
	f.Bool("token-auth-enabled", false, "token auth")
	f.Bool("enable-app-insights", false, "request telemetry")
	f.String("description", "", "description")
	f.StringArray("tag", nil, "tag key=value (repeatable; replaces the tags)")
	outputFlag(cmd)
	return cmd
}

func newEndpointDeleteCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "delete NAME",
		Short:   "Delete an endpoint and every version",
		Example: "  modelship endpoint delete fraud",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			ws := workspaceFlag(cmd)
			ch, err := c.Endpoints.Delete(cmd.Context(), ws, args[0])
			if err != nil {
				return err
			}
			if _, err := c.WaitOperation(cmd.Context(), ws, ch.OperationID, false, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted endpoint %s\n", args[0])
			return nil
		},
	}
	return cmd
}

func newEndpointWaitCmd() *cobra.Command {
	var showOutput bool
	cmd := &cobra.Command{
		Use:     "wait NAME",
		Short:   "Wait for the endpoint's running operation to end",
		Example: "  modelship endpoint wait fraud --show-output",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			ws := workspaceFlag(cmd)
			ep, err := c.Endpoints.Get(cmd.Context(), ws, args[0], false)
			if err != nil {
				return err
			}
			if ep.LastOperation != "" {
				if _, err := c.WaitOperation(cmd.Context(), ws, ep.LastOperation, showOutput, cmd.ErrOrStderr()); err != nil {
					return err
				}
				if ep, err = c.Endpoints.Get(cmd.Context(), ws, args[0], false); err != nil {
					return err
				}
			}
			return printEndpoint(cmd, ep)
		},
	}
	cmd.Flags().BoolVar(&showOutput, "show-output", false, "stream progress")
	outputFlag(cmd)
	return cmd
}

func newEndpointKeysCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use: "get-keys NAME", Short: "Print the endpoint's keys", Example: "  modelship endpoint get-keys fraud -o json", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			keys, err := c.Endpoints.GetKeys(cmd.Context(), workspaceFlag(cmd), args[0])
			if err != nil {
				return err
			}
			return printKeys(cmd, keys)
		},
	}
	outputFlag(cmd)
	return cmd
}

func newEndpointRegenKeyCmd() *cobra.Command {
	var which, value string
	cmd := &cobra.Command{
		Use: "regen-key NAME --key Primary|Secondary [--value KEY]", Short: "Regenerate (or set) an endpoint key",
		Example: "  modelship endpoint regen-key fraud --key Secondary", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			keys, err := c.Endpoints.RegenKey(cmd.Context(), workspaceFlag(cmd), args[0], which, value)
			if err != nil {
				return err
			}
			return printKeys(cmd, keys)
		},
	}
	cmd.Flags().StringVar(&which, "key", "", "Primary or Secondary (required)")
	cmd.Flags().StringVar(&value, "value", "", "the new key (default: generated)")
	cmd.MarkFlagRequired("key")
	outputFlag(cmd)
	return cmd
}

func newEndpointTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use: "get-access-token NAME", Short: "Get an access token of a token-auth endpoint",
		Example: "  modelship endpoint get-access-token fraud -o json", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			tok, err := c.Endpoints.GetToken(cmd.Context(), workspaceFlag(cmd), args[0])
			if err != nil {
				return err
			}
			return printToken(cmd, tok)
		},
	}
	outputFlag(cmd)
	return cmd
}

func newEndpointLogsCmd() *cobra.Command {
	var version string
	var tail, replica int
	var initLogs bool
	cmd := &cobra.Command{
		Use: "get-logs NAME [--version-name V]", Short: "Print the replicas' logs of every version or one",
		Example: "  modelship endpoint get-logs fraud --version-name green --tail 50", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			lines, err := c.Endpoints.GetLogs(cmd.Context(), workspaceFlag(cmd), args[0], version, modelship.LogOptions{Tail: tail, Init: initLogs, Replica: replica})
			if err != nil {
				return err
			}
			for _, l := range lines {
				fmt.Fprintln(cmd.OutOrStdout(), l)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&version, "version-name", "", "only this version")
	cmd.Flags().IntVar(&tail, "tail", 5000, "number of lines")
	cmd.Flags().BoolVar(&initLogs, "init", false, "only startup output")
	cmd.Flags().IntVar(&replica, "replica", -1, "only this replica (index from 0)")
	return cmd
}
