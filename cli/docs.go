package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// WriteReference writes a Markdown reference of every command under root:
// usage, description, examples and flags, in command-tree order.
func WriteReference(w io.Writer, root *cobra.Command) error {
	fmt.Fprintln(w, "# CLI reference")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Generated from the command definitions by `make docs`; do not edit by hand.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Global flags: `-w, --workspace` (env `MODELSHIP_WORKSPACE`, default `default`), `--ca-file` (env `MODELSHIP_CA_FILE`), `-h, --help`, `--version`.")
	fmt.Fprintln(w)
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			return
		}
		if c != root {
			fmt.Fprintf(w, "## %s\n\n", c.CommandPath())
			fmt.Fprintf(w, "%s\n\n", c.Short)
			if c.Long != "" {
				fmt.Fprintf(w, "%s\n\n", c.Long)
			}
			if c.Runnable() {
				fmt.Fprintf(w, "```\n%s\n```\n\n", c.UseLine())
			}
			if c.Example != "" {
				fmt.Fprintf(w, "Examples:\n\n```\n%s\n```\n\n", strings.TrimRight(c.Example, "\n"))
			}
			if flags := c.NonInheritedFlags().FlagUsages(); strings.TrimSpace(flags) != "" && c.Runnable() {
				fmt.Fprintf(w, "Flags:\n\n```\n%s```\n\n", flags)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return nil
}

// NewDocsCmd returns the hidden command that prints the CLI reference.
func NewDocsCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "gen-docs",
		Short:  "Print the CLI reference in Markdown",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return WriteReference(cmd.OutOrStdout(), cmd.Root())
		},
	}
}
