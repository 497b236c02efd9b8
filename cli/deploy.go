package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/client"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// NormalizeArgs accepts Azure CLI's single-dash multi-letter flags
// (-ic, -dc, -ct) as their double-dash forms.
func NormalizeArgs(args []string) []string {
	aliases := map[string]bool{"-ic": true, "-dc": true, "-ct": true}
	out := make([]string, len(args))
	for i, a := range args {
		name, val, hasVal := strings.Cut(a, "=")
		if aliases[name] {
			a = "-" + name
			if hasVal {
				a += "=" + val
			}
		}
		out[i] = a
	}
	return out
}

// settingFlags are flags that set deploymentconfig.json fields; they
// override the file's values (Azure CLI's per-field flags).
type settingFlag struct {
	name, path, kind, usage string
}

var settingFlags = []settingFlag{
	{"cpu-cores", "containerResourceRequirements.cpu", "float", "CPU cores requested per replica"},
	{"memory-gb", "containerResourceRequirements.memoryInGB", "float", "memory requested per replica (GB)"},
	{"cpu-cores-limit", "containerResourceRequirements.cpuLimit", "float", "CPU limit per replica"},
	{"memory-gb-limit", "containerResourceRequirements.memoryInGBLimit", "float", "memory limit per replica (GB)"},
	{"gpu-cores", "gpuCores", "int", "whole GPUs per replica"},
	{"num-replicas", "numReplicas", "int", "fixed number of replicas (turns autoscaling off)"},
	{"autoscale-enabled", "autoScaler.autoscaleEnabled", "bool", "enable autoscaling"},
	{"autoscale-min-replicas", "autoScaler.minReplicas", "int", "autoscaler minimum replicas"},
	{"autoscale-max-replicas", "autoScaler.maxReplicas", "int", "autoscaler maximum replicas"},
	{"autoscale-refresh-seconds", "autoScaler.refreshPeriodInSeconds", "int", "autoscaler refresh period"},
	{"autoscale-target-utilization", "autoScaler.targetUtilization", "int", "autoscaler target utilization (percent)"},
	{"auth-enabled", "authEnabled", "bool", "key auth"},
	{"token-auth-enabled", "tokenAuthEnabled", "bool", "token auth"},
	{"enable-app-insights", "appInsightsEnabled", "bool", "request telemetry"},
	{"collect-model-data", "dataCollection.storageEnabled", "bool", "model data collection"},
	{"collect-requests", "dataCollection.collectRequests", "bool", "store sampled request/response payloads"},
	{"sampling-rate", "dataCollection.samplingRate", "float", "share of requests collected with --collect-requests, 0-1"},
	{"scoring-timeout-ms", "scoringTimeoutMs", "int", "scoring timeout (ms)"},
	{"replica-max-concurrent-requests", "maxConcurrentRequestsPerContainer", "int", "concurrent requests per replica"},
	{"max-request-wait-time", "maxQueueWaitMs", "int", "longest queue wait before 503 (ms)"},
	{"period-seconds", "livenessProbeRequirements.periodSeconds", "int", "liveness probe period"},
	{"initial-delay-seconds", "livenessProbeRequirements.initialDelaySeconds", "int", "liveness probe initial delay"},
	{"timeout-seconds", "livenessProbeRequirements.timeoutSeconds", "int", "liveness probe timeout"},
	{"success-threshold", "livenessProbeRequirements.successThreshold", "int", "liveness probe success threshold"},
	{"failure-threshold", "livenessProbeRequirements.failureThreshold", "int", "liveness probe failure threshold"},
	{"namespace", "namespace", "string", "Kubernetes namespace"},
	{"description", "description", "string", "service description"},
}

func addSettingFlags(f *pflag.FlagSet) {
	for _, s := range settingFlags {
		switch s.kind {
		case "float":
			f.Float64(s.name, 0, s.usage)
		case "int":
			f.Int(s.name, 0, s.usage)
		case "bool":
			f.Bool(s.name, false, s.usage)
		default:
			f.String(s.name, "", s.usage)
		}
	}
	f.StringArray("tag", nil, "tag key=value (repeatable)")
}

// buildDeploymentConfig reads the deployment config file (if any; JSON or
// YAML) and applies the setting flags that were given. It returns nil when
// neither a file nor a flag was given. requireComputeType makes a file
// without computeType an error, as Azure's CLI did when creating.
func buildDeploymentConfig(cmd *cobra.Command, file string, requireComputeType bool) (json.RawMessage, error) {
	obj := map[string]any{}
	given := false
	if file != "" {
		b, err := readConfigFile(file, "deployment config")
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, &obj); err != nil {
			return nil, modelship.Errorf(modelship.EINVALID, "deployment config %q is not a JSON or YAML object of settings: %v", file, err)
		}
		if _, ok := obj["computeType"]; !ok && requireComputeType {
			return nil, modelship.Errorf(modelship.EINVALID, "deployment config %q has no computeType; Azure requires it in the file too: add \"computeType\": \"aks\" (a service), \"AKSENDPOINT\" (an endpoint version), \"aci\" or \"local\"", file)
		}
		given = true
	}
	f := cmd.Flags()
	for _, s := range settingFlags {
		if !f.Changed(s.name) {
			continue
		}
		var v any
		switch s.kind {
		case "float":
			v, _ = f.GetFloat64(s.name)
		case "int":
			v, _ = f.GetInt(s.name)
		case "bool":
			v, _ = f.GetBool(s.name)
		default:
			v, _ = f.GetString(s.name)
		}
		setPath(obj, s.path, v)
		given = true
	}
	if tags, _ := f.GetStringArray("tag"); len(tags) > 0 {
		m := map[string]any{}
		for _, t := range tags {
			k, v, ok := cutKV(t)
			if !ok || k == "" {
				return nil, modelship.Errorf(modelship.EINVALID, "tag %q is invalid; use key=value", t)
			}
			m[k] = v
		}
		obj["tags"] = m
		given = true
	}
	if !given {
		return nil, nil
	}
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	// What has no effect here is said now, not only in the operation's
	// log; errors are the server's to report.
	if dc, err := modelship.ParseDeploymentConfig(raw); err == nil {
		for _, w := range dc.Warnings() {
			fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
		}
	}
	return raw, nil
}

func setPath(obj map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	for _, p := range parts[:len(parts)-1] {
		next, ok := obj[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			obj[p] = next
		}
		obj = next
	}
	obj[parts[len(parts)-1]] = v
}

// loadInference reads an inference config (and the --entry-script /
// --source-directory / --python flags), uploads the source folder and
// returns the spec to send. It returns nil when nothing was given.
func loadInference(cmd *cobra.Command, ws, file string) (*modelship.InferenceSpec, []string, error) {
	f := cmd.Flags()
	entry, _ := f.GetString("entry-script")
	srcDir, _ := f.GetString("source-directory")
	python, _ := f.GetString("python")
	if file == "" && entry == "" {
		if python != "" {
			return nil, nil, modelship.Errorf(modelship.EINVALID, "--python needs an inference config (-ic) or --entry-script")
		}
		return nil, nil, nil
	}
	var ic *modelship.InferenceConfig
	var err error
	if file != "" {
		b, rerr := readConfigFile(file, "inference config")
		if rerr != nil {
			return nil, nil, rerr
		}
		ic, err = modelship.ParseInferenceConfig(b, filepath.Dir(file))
	} else {
		raw, _ := json.Marshal(map[string]string{"entryScript": entry, "sourceDirectory": srcDir})
		if srcDir == "" {
			raw, _ = json.Marshal(map[string]string{"entryScript": entry})
		}
		ic, err = modelship.ParseInferenceConfig(raw, ".")
	}
	if err != nil {
		return nil, nil, err
	}
	spec := &modelship.InferenceSpec{
		EntryScript: ic.EntryScriptInSource(), PythonInterpreter: ic.PythonInterpreterPath(),
		EnvironmentVariables: ic.EnvironmentVariables(), BaseImage: ic.BaseImage, Description: ic.Description,
	}
	if python != "" {
		spec.PythonInterpreter = python
	}
	if spec.PythonInterpreter != "" && strings.ContainsRune(spec.PythonInterpreter, os.PathSeparator) {
		if abs, err := filepath.Abs(spec.PythonInterpreter); err == nil {
			spec.PythonInterpreter = abs
		}
	}
	src := ic.SourceDirPath()
	if src == "" {
		src = ic.EntryScriptPath()
	}
	c, err := newClient()
	if err != nil {
		return nil, nil, err
	}
	digest, err := c.Services.UploadSource(cmd.Context(), ws, src)
	if err != nil {
		return nil, nil, err
	}
	spec.SourceDigest = digest
	return spec, ic.Warnings(), nil
}

func newModelDeployCmd() *cobra.Command {
	var name, ic, dc, target string
	var models []string
	var overwrite, showOutput, noWait bool
	cmd := &cobra.Command{
		Use:   "deploy -n NAME -m MODEL[:VERSION] [-ic inferenceconfig.json] [-dc deploymentconfig.json]",
		Short: "Deploy models as a scoring web service",
		Long: `Deploy creates a service from registered models, an inference config (the score.py
and its environment) and a deployment config (resources, scaling, auth), in Azure ML's
file formats. Without an inference config a single Onnx or ScikitLearn model is served
with a built-in scoring script. Flags such as --cpu-cores override the config file.`,
		Example: `  modelship model deploy -ct local -m diabetes:1 -n mysvc -ic inferenceconfig.json -dc deploymentconfig.json --show-output
  modelship model deploy -n digits -m digits:1 --num-replicas 2      # no-code ONNX`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ws := workspaceFlag(cmd)
			dcRaw, err := buildDeploymentConfig(cmd, dc, true)
			if err != nil {
				return err
			}
			inf, warnings, err := loadInference(cmd, ws, ic)
			if err != nil {
				return err
			}
			for _, w := range warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			req := &modelship.DeployRequest{Name: name, ComputeTarget: target, Models: models, DeploymentConfig: dcRaw, Overwrite: overwrite}
			if inf != nil {
				req.Inference = *inf
			}
			c, err := newClient()
			if err != nil {
				return err
			}
			d, err := c.Services.Deploy(cmd.Context(), ws, req)
			if err != nil {
				return err
			}
			if d.Endpoint != nil {
				return finishEndpoint(cmd, c, ws, name, &client.EndpointChange{Endpoint: d.Endpoint, OperationID: d.OperationID, Workspace: ws})
			}
			return finishOperation(cmd, c, ws, d.OperationID, name, noWait, showOutput)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&name, "name", "n", "", "service name: 3-32 lowercase letters, digits and '-', starting with a letter (required)")
	f.StringArrayVarP(&models, "model", "m", nil, "model NAME[:VERSION] (repeatable; latest version when none)")
	f.StringVar(&ic, "ic", "", "inference config file (Azure's inferenceconfig.json); alias --inference-config-file")
	f.StringVar(&ic, "inference-config-file", "", "inference config file")
	f.StringVar(&dc, "dc", "", "deployment config file (Azure's deploymentconfig.json); alias --deploy-config-file")
	f.StringVar(&dc, "deploy-config-file", "", "deployment config file")
	f.StringVar(&target, "ct", "", "compute target (default: the config's computeTargetName, else local); alias --compute-target")
	f.StringVar(&target, "compute-target", "", "compute target")
	f.BoolVar(&overwrite, "overwrite", false, "replace an existing service of that name")
	f.BoolVar(&showOutput, "show-output", false, "stream the deployment's progress")
	f.BoolVar(&noWait, "no-wait", false, "return once the deployment is accepted")
	f.String("entry-script", "", "scoring script, instead of an inference config")
	f.String("source-directory", "", "folder shipped with --entry-script")
	f.String("python", "", "Python interpreter for the scoring script (e.g. your virtualenv's bin/python)")
	addSettingFlags(f)
	cmd.MarkFlagRequired("name")
	outputFlag(cmd)
	return cmd
}

// finishOperation waits for an operation (unless noWait) and prints the
// service.
func finishOperation(cmd *cobra.Command, c *client.Client, ws, opID, name string, noWait, showOutput bool) error {
	if noWait {
		fmt.Fprintf(cmd.OutOrStdout(), "Operation %s accepted; follow it with `modelship service wait %s --show-output`\n", opID, name)
		return nil
	}
	_, werr := c.WaitOperation(cmd.Context(), ws, opID, showOutput, cmd.ErrOrStderr())
	if name == "" {
		return werr
	}
	svc, err := c.Services.Get(cmd.Context(), ws, name)
	if err != nil {
		if werr != nil {
			return werr
		}
		return err
	}
	if perr := printService(cmd, svc); perr != nil {
		return perr
	}
	return werr
}
