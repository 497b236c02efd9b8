package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newWorkspaceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "workspace",
		Short: "Create, list, show and delete workspaces",
		Long: `Workspaces scope everything else: models, services, compute targets. The "default"
workspace always exists. Names: 1 to 63 lowercase letters, digits and '-'.
Select one for any command with -w/--workspace or MODELSHIP_WORKSPACE.`,
	}
	var description string
	create := &cobra.Command{
		Use:     "create NAME",
		Short:   "Create a workspace",
		Example: `  modelship workspace create team-risk --description "Risk models"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			ws, err := c.Workspaces.Create(cmd.Context(), args[0], description)
			if err != nil {
				return err
			}
			if f, _ := outputFormat(cmd); f == "json" {
				return printJSON(cmd, ws)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Created workspace %s\n", ws.Name)
			return nil
		},
	}
	create.Flags().StringVarP(&description, "description", "d", "", "description")
	outputFlag(create)

	list := &cobra.Command{
		Use:     "list",
		Short:   "List workspaces",
		Example: `  modelship workspace list -o json`,
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
			wss, err := c.Workspaces.List(cmd.Context())
			if err != nil {
				return err
			}
			if format == "json" {
				return printJSON(cmd, wss)
			}
			t := newTable(cmd.OutOrStdout(), "NAME", "CREATED", "DESCRIPTION")
			for _, ws := range wss {
				t.row(ws.Name, formatTime(ws.CreatedTime), dash(ws.Description))
			}
			return t.flush()
		},
	}
	outputFlag(list)

	show := &cobra.Command{
		Use:     "show NAME",
		Short:   "Show a workspace",
		Example: `  modelship workspace show default`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := outputFormat(cmd)
			if err != nil {
				return err
			}
			c, err := newClient()
			if err != nil {
				return err
			}
			ws, err := c.Workspaces.Get(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if format == "json" {
				return printJSON(cmd, ws)
			}
			return kvList(cmd.OutOrStdout(), [][2]string{{"Name", ws.Name}, {"Created", formatTime(ws.CreatedTime)}, {"Description", dash(ws.Description)}})
		},
	}
	outputFlag(show)

	del := &cobra.Command{
		Use:     "delete NAME",
		Short:   "Delete an empty workspace (the default workspace cannot be deleted)",
		Example: `  modelship workspace delete team-risk`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			if err := c.Workspaces.Delete(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted workspace %s\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(create, list, show, del)
	return cmd
}
