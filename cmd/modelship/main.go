// Command modelship is the one binary of the platform: the control-plane
// server, the model server every replica runs, and the CLI.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/modelship/modelship/cli"
)

// subcommands are the commands this package adds to the CLI's root; files
// that define one append its constructor in an init function.
var subcommands = []func() *cobra.Command{newServerCmd, newServeModelCmd, cli.NewDocsCmd}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := cli.NewRootCmd()
	for _, c := range subcommands {
		root.AddCommand(c())
	}
	root.SetArgs(cli.NormalizeArgs(os.Args[1:]))
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", cli.FormatError(err))
		os.Exit(cli.ExitCode(err))
	}
}
