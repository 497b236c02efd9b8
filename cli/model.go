package cli

import (
	"fmt"
	"strconv"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/client"
	"github.com/modelship/modelship/httpapi"
	"github.com/spf13/cobra"
)

func newModelCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "model",
		Short: "Register, list, show, download, update and delete models",
		Long: `Models are registered files or folders with a name and an auto-incrementing version.
Names: 1 to 255 letters, digits, '-', '_' and '.'. Refer to a version as name:version;
a bare name means the latest version.`,
	}
	cmd.AddCommand(newModelRegisterCmd(), newModelListCmd(), newModelShowCmd(), newModelDownloadCmd(), newModelUpdateCmd(), newModelDeleteCmd(), newModelDeployCmd())
	return cmd
}

func newModelRegisterCmd() *cobra.Command {
	var opts client.RegisterOptions
	var tags, props []string
	cmd := &cobra.Command{
		Use:   "register -n NAME -p PATH",
		Short: "Register a file or folder as the next version of a model",
		Long: `Register uploads a file or a folder as the next version of a model. As in Azure ML, the
file or folder keeps its name: once deployed, a file is at $AZUREML_MODEL_DIR/<file> and a
folder's files at $AZUREML_MODEL_DIR/<folder>/...`,
		Example: `  modelship model register -n diabetes -p ./model.onnx --tag team=risk --description "v1 of the risk model"
  modelship model register -n diabetes -p ./model_dir/ --model-framework ScikitLearn --model-framework-version 1.2.1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if opts.Tags, err = httpapi.ParseKeyValues("tag", tags); err != nil {
				return err
			}
			if opts.Properties, err = httpapi.ParseKeyValues("property", props); err != nil {
				return err
			}
			c, err := newClient()
			if err != nil {
				return err
			}
			mv, err := c.Models.Register(cmd.Context(), workspaceFlag(cmd), opts)
			if err != nil {
				return err
			}
			return printModel(cmd, mv)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.Name, "name", "n", "", "model name (required)")
	f.StringVarP(&opts.Path, "model-path", "p", "", "file or folder to register (required)")
	f.StringArrayVar(&tags, "tag", nil, "tag key=value (repeatable)")
	f.StringArrayVar(&props, "property", nil, "property key=value (repeatable; properties are add-only)")
	f.StringVarP(&opts.Description, "description", "d", "", "description")
	f.StringVar(&opts.ModelFramework, "model-framework", "", "Onnx, ScikitLearn, TensorFlow, PyTorch, Custom or Multi")
	f.StringVar(&opts.ModelFrameworkVersion, "model-framework-version", "", "framework version")
	cmd.MarkFlagRequired("name")
	cmd.MarkFlagRequired("model-path")
	outputFlag(cmd)
	return cmd
}

func newModelListCmd() *cobra.Command {
	var name string
	var tags []string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List model versions",
		Example: `  modelship model list
  modelship model list -n diabetes -o json
  modelship model list --tag stage=prod`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := outputFormat(cmd)
			if err != nil {
				return err
			}
			f := modelship.ModelFilter{Name: name, Tags: map[string]string{}}
			for _, t := range tags {
				k, v, _ := cutKV(t)
				f.Tags[k] = v
			}
			c, err := newClient()
			if err != nil {
				return err
			}
			list, err := c.Models.List(cmd.Context(), workspaceFlag(cmd), f)
			if err != nil {
				return err
			}
			if format == "json" {
				return printJSON(cmd, list)
			}
			t := newTable(cmd.OutOrStdout(), "NAME", "VERSION", "FRAMEWORK", "TYPE", "SIZE", "CREATED", "TAGS", "DESCRIPTION")
			for _, m := range list {
				t.row(m.Name, strconv.Itoa(m.Version), dash(m.ModelFramework), m.AssetType, formatBytes(m.SizeBytes),
					formatTime(m.CreatedTime), dash(truncate(formatMap(m.Tags), 40)), dash(truncate(m.Description, 40)))
			}
			return t.flush()
		},
	}
	cmd.Flags().StringVarP(&name, "name", "n", "", "only versions of this model")
	cmd.Flags().StringArrayVar(&tags, "tag", nil, "only versions with this tag (key or key=value; repeatable)")
	outputFlag(cmd)
	return cmd
}

func cutKV(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '=' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func parseRef(s string) (modelship.ModelRef, error) { return modelship.ParseModelRef(s) }

func newModelShowCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show NAME[:VERSION]",
		Short: "Show a model version (the latest when no version is given)",
		Example: `  modelship model show diabetes
  modelship model show diabetes:1 -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := outputFormat(cmd); err != nil {
				return err
			}
			ref, err := parseRef(args[0])
			if err != nil {
				return err
			}
			c, err := newClient()
			if err != nil {
				return err
			}
			mv, err := c.Models.Get(cmd.Context(), workspaceFlag(cmd), ref)
			if err != nil {
				return err
			}
			return printModel(cmd, mv)
		},
	}
	outputFlag(cmd)
	return cmd
}

func printModel(cmd *cobra.Command, mv *modelship.ModelVersion) error {
	if format, _ := outputFormat(cmd); format == "json" {
		return printJSON(cmd, mv)
	}
	pairs := [][2]string{
		{"Name", mv.Name}, {"Version", strconv.Itoa(mv.Version)}, {"Workspace", mv.Workspace},
		{"Framework", dash(mv.ModelFramework)}, {"Framework version", dash(mv.ModelFrameworkVersion)},
		{"Type", mv.AssetType},
	}
	if mv.FileName != "" {
		pairs = append(pairs, [2]string{"File name", mv.FileName})
	}
	pairs = append(pairs, [][2]string{
		{"Files", strconv.Itoa(mv.FileCount)}, {"Size", fmt.Sprintf("%s (%d bytes)", formatBytes(mv.SizeBytes), mv.SizeBytes)},
		{"SHA256", mv.SHA256}, {"Created", formatTime(mv.CreatedTime)},
		{"Tags", dash(formatMap(mv.Tags))}, {"Properties", dash(formatMap(mv.Properties))},
		{"Description", dash(mv.Description)},
	}...)
	return kvList(cmd.OutOrStdout(), pairs)
}

func newModelDownloadCmd() *cobra.Command {
	var out string
	var overwrite bool
	cmd := &cobra.Command{
		Use:   "download NAME[:VERSION] [-o DIR]",
		Short: "Download a model version's files",
		Long:  "Download writes a file model as DIR/<file name> and a folder model as its tree under DIR. The sha256 is verified.",
		Example: `  modelship model download diabetes:1 -o ./out
  modelship model download diabetes          # latest version into ./diabetes-<version>`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := parseRef(args[0])
			if err != nil {
				return err
			}
			c, err := newClient()
			if err != nil {
				return err
			}
			ws := workspaceFlag(cmd)
			if out == "" {
				mv, err := c.Models.Get(cmd.Context(), ws, ref)
				if err != nil {
					return err
				}
				ref.Version = mv.Version
				out = fmt.Sprintf("%s-%d", mv.Name, mv.Version)
			}
			mv, err := c.Models.Download(cmd.Context(), ws, ref, out, overwrite)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Downloaded %s (%s, sha256 %s) to %s\n", mv.ID(), formatBytes(mv.SizeBytes), mv.SHA256, out)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output-dir", "o", "", "folder to write into (default ./NAME-VERSION)")
	cmd.Flags().StringVarP(&out, "target-dir", "t", "", "the same as --output-dir, as az ml names it")
	cmd.Flags().BoolVar(&overwrite, "overwrite", false, "overwrite existing files")
	return cmd
}

func newModelUpdateCmd() *cobra.Command {
	var tags, props, removeTags []string
	var description string
	cmd := &cobra.Command{
		Use:   "update NAME[:VERSION]",
		Short: "Change a model version's tags, properties (add-only) or description",
		Example: `  modelship model update diabetes:2 --tag stage=prod --description "promoted after review"
  modelship model update diabetes:2 --remove-tag stage --property auc=0.91`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := parseRef(args[0])
			if err != nil {
				return err
			}
			upd := &modelship.ModelUpdate{RemoveTags: removeTags}
			if upd.AddTags, err = httpapi.ParseKeyValues("tag", tags); err != nil {
				return err
			}
			if upd.AddProperties, err = httpapi.ParseKeyValues("property", props); err != nil {
				return err
			}
			if cmd.Flags().Changed("description") {
				upd.Description = &description
			}
			if err := upd.Validate(); err != nil {
				return err
			}
			c, err := newClient()
			if err != nil {
				return err
			}
			mv, err := c.Models.Update(cmd.Context(), workspaceFlag(cmd), ref, upd)
			if err != nil {
				return err
			}
			return printModel(cmd, mv)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&tags, "tag", nil, "add or change a tag key=value (repeatable)")
	f.StringArrayVar(&removeTags, "remove-tag", nil, "remove a tag by key (repeatable)")
	f.StringArrayVar(&props, "property", nil, "add a property key=value (repeatable; existing properties cannot change)")
	f.StringVarP(&description, "description", "d", "", "new description")
	outputFlag(cmd)
	return cmd
}

func newModelDeleteCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "delete NAME:VERSION",
		Short:   "Delete a model version (its bytes go when no other version shares them)",
		Example: `  modelship model delete diabetes:1`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := parseRef(args[0])
			if err != nil {
				return err
			}
			c, err := newClient()
			if err != nil {
				return err
			}
			if err := c.Models.Delete(cmd.Context(), workspaceFlag(cmd), ref); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted %s\n", ref)
			return nil
		},
	}
	return cmd
}
