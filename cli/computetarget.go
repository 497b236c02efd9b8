package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

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
	cmd.AddCommand(list, show, create, del, newAttachCmd(), newDetachCmd())
	return cmd
}

func newAttachCmd() *cobra.Command {
	var req modelship.AttachRequest
	var kubeconfig string
	attach := &cobra.Command{
		Use:   "attach kubernetes -n NAME [--kubeconfig FILE] [--context C] [--namespace NS] [--cluster-purpose FastProd|DevTest]",
		Short: "Attach a Kubernetes cluster as a compute target",
		Long: `Attach a Kubernetes cluster (kind, AKS, EKS, GKE, ...) as a compute target. The server
validates the cluster before it saves anything: the API server is reachable with the
kubeconfig's credentials, they may do what modelship needs (each missing permission is
listed), FastProd clusters have at least 12 allocatable vCPU, and the cluster is not
attached already under another name. It then installs the in-cluster front end
(Deployment + Service "modelship-frontend") in the namespace; services deployed to the
target are scored through it.

The kubeconfig (default $KUBECONFIG, else ~/.kube/config) is reduced to the chosen
context with every referenced file inlined, sent to the server and stored encrypted.
Exec credential plugins (kubelogin, aws, gke-gcloud-auth-plugin) run on the server.`,
		Example: `  modelship computetarget attach kubernetes -n myaks --kubeconfig ~/.kube/config --namespace ml --cluster-purpose FastProd
  modelship computetarget attach kubernetes -n kind --kubeconfig kind.kubeconfig --cluster-purpose DevTest --image modelship:dev --image-pull-policy Never`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != modelship.TargetKubernetes {
				return modelship.Errorf(modelship.EINVALID, "compute type %q cannot be attached; use `computetarget attach kubernetes`", args[0])
			}
			data, err := loadKubeconfig(kubeconfig, req.Context)
			if err != nil {
				return err
			}
			req.Kubeconfig = string(data)
			c, err := newClient()
			if err != nil {
				return err
			}
			res, err := c.ComputeTargets.AttachKubernetes(cmd.Context(), workspaceFlag(cmd), req)
			if err != nil {
				return err
			}
			for _, w := range res.Warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			return printTarget(cmd, res.Target)
		},
	}
	f := attach.Flags()
	f.StringVarP(&req.Name, "name", "n", "", "target name: 3-24 letters, digits and '-' (required)")
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default $KUBECONFIG, else ~/.kube/config)")
	f.StringVar(&req.Context, "context", "", "kubeconfig context (default: its current context)")
	f.StringVar(&req.Namespace, "namespace", "default", "namespace for every object of the target (created if missing)")
	f.StringVar(&req.ClusterPurpose, "cluster-purpose", modelship.PurposeFastProd, "FastProd (needs 12+ allocatable vCPU), DenseProd or DevTest")
	f.StringVar(&req.Image, "image", "", "image with modelship that replicas and the front end run (default: the server's --kubernetes-image)")
	f.StringVar(&req.ImagePullPolicy, "image-pull-policy", "", "Always, IfNotPresent (default) or Never")
	f.StringVar(&req.FrontEndService, "frontend-service", modelship.FrontEndNodePort, "Service type of the in-cluster front end: NodePort, LoadBalancer or ClusterIP")
	f.StringVar(&req.Description, "description", "", "description")
	attach.MarkFlagRequired("name")
	outputFlag(attach)
	return attach
}

func newDetachCmd() *cobra.Command {
	var force bool
	detach := &cobra.Command{
		Use:   "detach NAME [--force]",
		Short: "Detach a Kubernetes target and remove everything modelship created in it",
		Long: `Detach removes the front end, every deployment, Service and Secret modelship created in
the target's namespace (and the namespace if modelship created it), then forgets the
target. It refuses while services or endpoints use the target unless --force, which
deletes them first.`,
		Example: `  modelship computetarget detach myaks
  modelship computetarget detach myaks --force`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			if err := c.ComputeTargets.Detach(cmd.Context(), workspaceFlag(cmd), args[0], force); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Detached compute target %s\n", args[0])
			return nil
		},
	}
	detach.Flags().BoolVar(&force, "force", false, "delete the services and endpoints on the target first")
	return detach
}

// loadKubeconfig reads a kubeconfig file and reduces it to one context
// (kubeContext, "" = current) with every referenced file inlined, so the
// server needs nothing but the bytes.
func loadKubeconfig(path, kubeContext string) ([]byte, error) {
	if path == "" {
		path = os.Getenv("KUBECONFIG")
		if i := strings.IndexByte(path, os.PathListSeparator); i >= 0 {
			path = path[:i]
		}
	}
	if path == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, modelship.Errorf(modelship.EINVALID, "no --kubeconfig given and no home directory: %v", err)
		}
		path = filepath.Join(home, ".kube", "config")
	}
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		return nil, modelship.Errorf(modelship.EINVALID, "reading kubeconfig %s: %v", path, err)
	}
	if kubeContext != "" {
		if _, ok := cfg.Contexts[kubeContext]; !ok {
			names := make([]string, 0, len(cfg.Contexts))
			for n := range cfg.Contexts {
				names = append(names, n)
			}
			sort.Strings(names)
			return nil, modelship.Errorf(modelship.EINVALID, "kubeconfig %s has no context %q; it has: %s", path, kubeContext, strings.Join(names, ", "))
		}
		cfg.CurrentContext = kubeContext
	}
	if cfg.CurrentContext == "" {
		return nil, modelship.Errorf(modelship.EINVALID, "kubeconfig %s has no current context; pass --context", path)
	}
	if err := clientcmdapi.MinifyConfig(cfg); err != nil {
		return nil, modelship.Errorf(modelship.EINVALID, "kubeconfig %s: %v", path, err)
	}
	if err := clientcmdapi.FlattenConfig(cfg); err != nil {
		return nil, modelship.Errorf(modelship.EINVALID, "kubeconfig %s: inlining the files it references: %v", path, err)
	}
	return clientcmd.Write(*cfg)
}

func printTarget(cmd *cobra.Command, ct *modelship.ComputeTarget) error {
	if f, _ := outputFormat(cmd); f == "json" {
		return printJSON(cmd, ct)
	}
	rows := [][2]string{
		{"Name", ct.Name}, {"Type", ct.Type}, {"Cluster purpose", ct.ClusterPurpose}, {"State", ct.State},
		{"CPU", fmt.Sprintf("%g free of %g", ct.FreeCPU, ct.CPU)}, {"Memory", fmt.Sprintf("%g GB free of %g GB", ct.FreeMemoryGB, ct.MemoryGB)},
		{"GPUs", fmt.Sprintf("%d free of %d", ct.FreeGPUs, ct.GPUs)}, {"Services", strconv.Itoa(ct.Services)}, {"Description", dash(ct.Description)},
	}
	if k := ct.Kubernetes; k != nil {
		rows = append(rows, [][2]string{
			{"API server", k.Server + " (" + dash(k.Version) + ")"}, {"Context", dash(k.Context)}, {"Namespace", k.Namespace},
			{"Cluster ID", k.ClusterID}, {"Ready nodes", strconv.Itoa(k.ReadyNodes)}, {"Image", k.Image},
			{"Front end", fmt.Sprintf("%s (%s, %d ready)", dash(k.FrontEndURL), k.FrontEndService, k.FrontEndReady)},
		}...)
	}
	return kvList(cmd.OutOrStdout(), rows)
}
