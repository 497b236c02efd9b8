package cli

import (
	"fmt"
	"strconv"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/httpapi"
	"github.com/spf13/cobra"
)

func newComputeTargetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "computetarget",
		Short: "List, show, create and delete compute targets",
		Long: `Compute targets are where services run. Every workspace has the built-in "local"
target: this machine, with its cores, memory and GPUs. "computetarget create local"
adds a local target with its own capacity budget; a deployment that does not fit the
free capacity stays Unschedulable.`,
	}
	list := &cobra.Command{
		Use:     "list",
		Short:   "List compute targets with their capacity",
		Example: "  modelship computetarget list",
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
			cts, err := c.ComputeTargets.List(cmd.Context(), workspaceFlag(cmd))
			if err != nil {
				return err
			}
			if format == "json" {
				return printJSON(cmd, cts)
			}
			t := newTable(cmd.OutOrStdout(), "NAME", "TYPE", "PURPOSE", "CPU (FREE/TOTAL)", "MEMORY GB (FREE/TOTAL)", "GPUS (FREE/TOTAL)", "SERVICES")
			for _, ct := range cts {
				t.row(ct.Name, ct.Type, ct.ClusterPurpose, fmt.Sprintf("%g/%g", ct.FreeCPU, ct.CPU), fmt.Sprintf("%g/%g", ct.FreeMemoryGB, ct.MemoryGB),
					fmt.Sprintf("%d/%d", ct.FreeGPUs, ct.GPUs), strconv.Itoa(ct.Services))
			}
			return t.flush()
		},
	}
	outputFlag(list)
	show := &cobra.Command{
		Use:     "show NAME",
		Short:   "Show a compute target",
		Example: "  modelship computetarget show local",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := outputFormat(cmd); err != nil {
				return err
			}
			c, err := newClient()
			if err != nil {
				return err
			}
			ct, err := c.ComputeTargets.Get(cmd.Context(), workspaceFlag(cmd), args[0])
			if err != nil {
				return err
			}
			return printTarget(cmd, ct)
		},
	}
	outputFlag(show)
	var name, purpose, description string
	var cpu, mem float64
	var gpus int
	create := &cobra.Command{
		Use:   "create local -n NAME --cpu N --memory-gb N [--gpus N] [--cluster-purpose DevTest|FastProd]",
		Short: "Create a local compute target with a capacity budget",
		Example: `  modelship computetarget create local -n dev --cluster-purpose DevTest --cpu 2 --memory-gb 8
  modelship computetarget create local -n prod --cluster-purpose FastProd --cpu 16 --memory-gb 64 --gpus 1`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != modelship.TargetLocal {
				return modelship.Errorf(modelship.EINVALID, "compute type %q cannot be created; use `computetarget create local` (Kubernetes clusters are attached)", args[0])
			}
			c, err := newClient()
			if err != nil {
				return err
			}
			res, err := c.ComputeTargets.CreateLocal(cmd.Context(), workspaceFlag(cmd), httpapi.CreateTargetRequest{Name: name, ClusterPurpose: purpose, CPU: cpu, MemoryGB: mem, GPUs: gpus, Description: description})
			if err != nil {
				return err
			}
			for _, w := range res.Warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			return printTarget(cmd, res.Target)
		},
	}
	f := create.Flags()
	f.StringVarP(&name, "name", "n", "", "target name: 3-24 letters, digits and '-' (required)")
	f.StringVar(&purpose, "cluster-purpose", modelship.PurposeFastProd, "FastProd (needs 12+ vCPU), DenseProd or DevTest")
	f.Float64Var(&cpu, "cpu", 0, "CPU cores of the budget (required)")
	f.Float64Var(&mem, "memory-gb", 0, "memory of the budget in GB (required)")
	f.IntVar(&gpus, "gpus", 0, "whole GPUs of the budget")
	f.StringVar(&description, "description", "", "description")
	create.MarkFlagRequired("name")
	create.MarkFlagRequired("cpu")
	create.MarkFlagRequired("memory-gb")
	outputFlag(create)
	del := &cobra.Command{
		Use:     "delete NAME",
		Short:   "Delete a compute target (refused while services use it)",
		Example: "  modelship computetarget delete dev",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			if err := c.ComputeTargets.Delete(cmd.Context(), workspaceFlag(cmd), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted compute target %s\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(list, show, create, del)
	return cmd
}

func printTarget(cmd *cobra.Command, ct *modelship.ComputeTarget) error {
	if f, _ := outputFormat(cmd); f == "json" {
		return printJSON(cmd, ct)
	}
	return kvList(cmd.OutOrStdout(), [][2]string{
		{"Name", ct.Name}, {"Type", ct.Type}, {"Cluster purpose", ct.ClusterPurpose}, {"State", ct.State},
		{"CPU", fmt.Sprintf("%g free of %g", ct.FreeCPU, ct.CPU)}, {"Memory", fmt.Sprintf("%g GB free of %g GB", ct.FreeMemoryGB, ct.MemoryGB)},
		{"GPUs", fmt.Sprintf("%d free of %d", ct.FreeGPUs, ct.GPUs)}, {"Services", strconv.Itoa(ct.Services)}, {"Description", dash(ct.Description)},
	})
}
