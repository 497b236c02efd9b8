package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/modelship/modelship"
	"github.com/spf13/cobra"
)

func newServiceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "service",
		Short: "Show, update, wait for, scale and delete deployed services; keys, tokens and logs",
	}
	cmd.AddCommand(newServiceListCmd(), newServiceShowCmd(), newServiceWaitCmd(), newServiceGetKeysCmd(), newServiceRegenKeyCmd(),
		newServiceTokenCmd(), newServiceLogsCmd(), newServiceUpdateCmd(), newServiceDeleteCmd(), newServiceCollectedDataCmd(), newServiceRunCmd(), newServiceFetchAccessCmd())
	return cmd
}

func newServiceListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List services",
		Example: "  modelship service list\n  modelship service list -o json",
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
			list, err := c.Services.List(cmd.Context(), workspaceFlag(cmd))
			if err != nil {
				return err
			}
			if format == "json" {
				return printJSON(cmd, list)
			}
			t := newTable(cmd.OutOrStdout(), "NAME", "STATE", "REPLICAS", "MODELS", "TARGET", "AUTH", "SCORING URI")
			for _, s := range list {
				t.row(s.Name, s.State, replicaSummary(s), strings.Join(s.Models, ","), s.ComputeTarget, s.Settings.AuthMode, s.ScoringURI)
			}
			return t.flush()
		},
	}
	outputFlag(cmd)
	return cmd
}

func replicaSummary(s *modelship.Service) string {
	ready := 0
	for _, r := range s.Replicas {
		if r.Ready {
			ready++
		}
	}
	return fmt.Sprintf("%d/%d", ready, s.DesiredReplicas)
}

func newServiceShowCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "show NAME",
		Short:   "Show a service: state, URIs, models, settings, replicas and errors",
		Example: "  modelship service show mysvc\n  modelship service show mysvc -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := outputFormat(cmd); err != nil {
				return err
			}
			c, err := newClient()
			if err != nil {
				return err
			}
			svc, err := c.Services.Get(cmd.Context(), workspaceFlag(cmd), args[0])
			if err != nil {
				return err
			}
			return printService(cmd, svc)
		},
	}
	outputFlag(cmd)
	return cmd
}

func printService(cmd *cobra.Command, s *modelship.Service) error {
	if format, _ := outputFormat(cmd); format == "json" {
		return printJSON(cmd, s)
	}
	st := s.Settings
	scaling := fmt.Sprintf("fixed, %d replica(s)", st.NumReplicas)
	if st.AutoscaleEnabled {
		scaling = fmt.Sprintf("autoscale %d..%d, target %d%%, refresh %s; now %d", st.MinReplicas, st.MaxReplicas, st.TargetUtilization, st.RefreshPeriod, s.DesiredReplicas)
	}
	pairs := [][2]string{
		{"Name", s.Name}, {"State", s.State}, {"Scoring URI", s.ScoringURI}, {"Swagger URI", s.SwaggerURI},
		{"Compute", s.ComputeTarget + " (" + s.ComputeType + ")"}, {"Models", strings.Join(s.Models, ", ")},
		{"Runtime", s.Inference.Runtime + entrySuffix(s)}, {"Auth", st.AuthMode}, {"Replicas", replicaSummary(s) + " ready"},
		{"Scaling", scaling},
		{"Autoscaler", dash(s.Scaling)},
		{"Resources", fmt.Sprintf("cpu %g, memory %g GB, gpus %d", st.CPU, st.MemoryGB, st.GPUs)},
		{"Limits", fmt.Sprintf("concurrency %d per replica, queue wait %s, scoring timeout %s", st.MaxConcurrentRequestsPerContainer, st.MaxQueueWait, st.ScoringTimeout)},
		{"Updated", formatTime(s.UpdatedTime)},
	}
	if s.Error != nil {
		pairs = append(pairs, [2]string{"Error", s.Error.Code + ": " + s.Error.Message})
	}
	if err := kvList(cmd.OutOrStdout(), pairs); err != nil {
		return err
	}
	if s.Error != nil && len(s.Error.Details) > 0 {
		fmt.Fprintln(cmd.OutOrStdout(), "Error details:")
		for _, d := range s.Error.Details {
			fmt.Fprintln(cmd.OutOrStdout(), "  "+d)
		}
	}
	if len(s.Replicas) > 0 {
		fmt.Fprintln(cmd.OutOrStdout())
		t := newTable(cmd.OutOrStdout(), "REPLICA", "STATE", "READY", "RESTARTS", "LAST EXIT", "STARTED")
		for _, r := range s.Replicas {
			t.row(r.ID, r.State, strconv.FormatBool(r.Ready), strconv.Itoa(r.Restarts), dash(r.LastExit), formatTime(r.Started))
		}
		return t.flush()
	}
	return nil
}

func entrySuffix(s *modelship.Service) string {
	if s.Inference.EntryScript != "" {
		return " (" + s.Inference.EntryScript + ")"
	}
	return ""
}

func newServiceWaitCmd() *cobra.Command {
	var showOutput bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:     "wait NAME",
		Short:   "Wait for the service's running operation to end (as wait_for_deployment)",
		Example: "  modelship service wait mysvc --show-output",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			ws := workspaceFlag(cmd)
			svc, err := c.Services.Get(cmd.Context(), ws, args[0])
			if err != nil {
				return err
			}
			if svc.LastOperation == "" {
				return printService(cmd, svc)
			}
			ctx := cmd.Context()
			if timeout > 0 {
				var cancel func()
				ctx, cancel = contextWithTimeout(ctx, timeout)
				defer cancel()
			}
			cmd.SetContext(ctx)
			return finishOperation(cmd, c, ws, svc.LastOperation, args[0], false, showOutput)
		},
	}
	cmd.Flags().BoolVar(&showOutput, "show-output", false, "stream the operation's progress")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "give up after this long (e.g. 10m)")
	outputFlag(cmd)
	return cmd
}

func newServiceGetKeysCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "get-keys NAME",
		Short:   "Print the service's primary and secondary keys",
		Example: "  modelship service get-keys mysvc\n  KEY=$(modelship service get-keys mysvc -o json | jq -r .primaryKey)",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := outputFormat(cmd); err != nil {
				return err
			}
			c, err := newClient()
			if err != nil {
				return err
			}
			keys, err := c.Services.GetKeys(cmd.Context(), workspaceFlag(cmd), args[0])
			if err != nil {
				return err
			}
			return printKeys(cmd, keys)
		},
	}
	outputFlag(cmd)
	return cmd
}

func printKeys(cmd *cobra.Command, keys *modelship.ServiceKeys) error {
	if f, _ := outputFormat(cmd); f == "json" {
		return printJSON(cmd, keys)
	}
	return kvList(cmd.OutOrStdout(), [][2]string{{"Primary key", keys.PrimaryKey}, {"Secondary key", keys.SecondaryKey}})
}

func newServiceRegenKeyCmd() *cobra.Command {
	var which, value string
	cmd := &cobra.Command{
		Use:     "regen-key NAME --key Primary|Secondary [--value KEY]",
		Short:   "Regenerate (or set) the primary or secondary key; the old key stops working at once",
		Example: "  modelship service regen-key mysvc --key Primary\n  modelship service regen-key mysvc --key Secondary --value my-own-secret-key",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			keys, err := c.Services.RegenKey(cmd.Context(), workspaceFlag(cmd), args[0], which, value)
			if err != nil {
				return err
			}
			return printKeys(cmd, keys)
		},
	}
	cmd.Flags().StringVar(&which, "key", "", "Primary or Secondary (required)")
	cmd.Flags().StringVar(&value, "value", "", "the new key (default: generated); alias --set-key")
	cmd.Flags().StringVar(&value, "set-key", "", "the new key")
	cmd.MarkFlagRequired("key")
	outputFlag(cmd)
	return cmd
}

func newServiceTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "get-access-token NAME",
		Short:   "Get an access token for a token-auth service",
		Example: "  modelship service get-access-token mysvc -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := outputFormat(cmd)
			if err != nil {
				return err
			}
			c, err := newClient()
			if err != nil {
				return err
			}
			tok, err := c.Services.GetToken(cmd.Context(), workspaceFlag(cmd), args[0])
			if err != nil {
				return err
			}
			return printToken(cmd, tok)
		},
	}
	outputFlag(cmd)
	return cmd
}

func newServiceLogsCmd() *cobra.Command {
	var tail, replica int
	var initLogs bool
	cmd := &cobra.Command{
		Use:     "get-logs NAME",
		Short:   "Print the replicas' logs (stdout/stderr of score.py and the model server)",
		Example: "  modelship service get-logs mysvc --tail 100\n  modelship service get-logs mysvc --init     # startup output, e.g. why init() failed",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			lines, err := c.Services.GetLogs(cmd.Context(), workspaceFlag(cmd), args[0], modelship.LogOptions{Tail: tail, Init: initLogs, Replica: replica})
			if err != nil {
				return err
			}
			for _, l := range lines {
				fmt.Fprintln(cmd.OutOrStdout(), l)
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&tail, "tail", 5000, "number of lines")
	cmd.Flags().BoolVar(&initLogs, "init", false, "only the startup output of each replica")
	cmd.Flags().IntVar(&replica, "replica", -1, "only this replica (index from 0)")
	return cmd
}

func newServiceUpdateCmd() *cobra.Command {
	var ic, dc string
	var models []string
	var showOutput, noWait bool
	cmd := &cobra.Command{
		Use:   "update NAME [-m MODEL] [-ic FILE] [-dc FILE] [--cpu-cores N ...]",
		Short: "Update models, code or settings; replicas are replaced with zero downtime",
		Example: `  modelship service update mysvc -m diabetes:2 -ic inferenceconfig.json --show-output
  modelship service update mysvc --autoscale-enabled --autoscale-max-replicas 4
  modelship service update mysvc --token-auth-enabled --auth-enabled=false`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ws := workspaceFlag(cmd)
			dcRaw, err := buildDeploymentConfig(cmd, dc, false)
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
			c, err := newClient()
			if err != nil {
				return err
			}
			d, err := c.Services.Update(cmd.Context(), ws, args[0], &modelship.UpdateRequest{Models: models, Inference: inf, DeploymentConfig: dcRaw})
			if err != nil {
				return err
			}
			return finishOperation(cmd, c, ws, d.OperationID, args[0], noWait, showOutput)
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&models, "model", "m", nil, "model NAME[:VERSION] (repeatable; replaces the model list)")
	f.StringVar(&ic, "ic", "", "inference config file; alias --inference-config-file")
	f.StringVar(&ic, "inference-config-file", "", "inference config file")
	f.StringVar(&dc, "dc", "", "deployment config file with the fields to change; alias --deploy-config-file")
	f.StringVar(&dc, "deploy-config-file", "", "deployment config file")
	f.BoolVar(&showOutput, "show-output", false, "stream the update's progress")
	f.BoolVar(&noWait, "no-wait", false, "return once the update is accepted")
	f.String("entry-script", "", "scoring script, instead of an inference config")
	f.String("source-directory", "", "folder shipped with --entry-script")
	f.String("python", "", "Python interpreter for the scoring script")
	addSettingFlags(f)
	outputFlag(cmd)
	return cmd
}

func newServiceDeleteCmd() *cobra.Command {
	var noWait bool
	cmd := &cobra.Command{
		Use:     "delete NAME",
		Short:   "Delete a service: drain and stop its replicas, remove its routes and keys",
		Example: "  modelship service delete mysvc",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			ws := workspaceFlag(cmd)
			d, err := c.Services.Delete(cmd.Context(), ws, args[0])
			if err != nil {
				return err
			}
			if noWait {
				fmt.Fprintf(cmd.OutOrStdout(), "Deleting %s (operation %s)\n", args[0], d.OperationID)
				return nil
			}
			if _, err := c.WaitOperation(cmd.Context(), ws, d.OperationID, false, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted service %s\n", args[0])
			return nil
		},
	}
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the deletion is accepted")
	return cmd
}

func newServiceCollectedDataCmd() *cobra.Command {
	var designation, model, since string
	cmd := &cobra.Command{
		Use:   "collected-data NAME --designation inputs|predictions|labels|signals|general [--since 1h] [--model M]",
		Short: "Print the rows score.py's ModelDataCollector stored (CSV, with the $aml_* columns)",
		Example: `  modelship service collected-data mysvc --designation inputs --since 1h
  modelship service collected-data mysvc --designation predictions --model diabetes > predictions.csv`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			data, err := c.Services.CollectedData(cmd.Context(), workspaceFlag(cmd), args[0], designation, model, since)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(data)
			return err
		},
	}
	cmd.Flags().StringVar(&designation, "designation", "", "inputs, predictions, labels, signals or general (required)")
	cmd.Flags().StringVar(&model, "model", "", "only rows of this model")
	cmd.Flags().StringVar(&since, "since", "", "only rows scored since: a duration (1h, 30m) or an RFC 3339 time")
	cmd.MarkFlagRequired("designation")
	return cmd
}

// printToken prints an access token (Azure's field names with -o json).
func printToken(cmd *cobra.Command, tok *modelship.AccessToken) error {
	if f, _ := outputFormat(cmd); f == "json" {
		return printJSON(cmd, tok)
	}
	return kvList(cmd.OutOrStdout(), [][2]string{{"Access token", tok.AccessToken}, {"Token type", tok.TokenType},
		{"Refresh after", tok.RefreshAfter.Local().Format(time.RFC3339)}, {"Expires on", tok.ExpiryOn.Local().Format(time.RFC3339)}})
}
