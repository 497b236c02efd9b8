// Command modelship is the one binary of the platform: the control-plane
// server, the model server every replica runs, and the CLI.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/modelship/modelship/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := cli.NewRootCmd()
	root.AddCommand(newServerCmd(), newServeModelCmd(), cli.NewDocsCmd())
	root.SetArgs(cli.NormalizeArgs(os.Args[1:]))
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", cli.FormatError(err))
		os.Exit(cli.ExitCode(err))
	}
}
