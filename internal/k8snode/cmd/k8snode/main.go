// Command k8snode brings the single-node test cluster of internal/k8snode up
// or down; scripts/k8s-node.sh (make k8s-up / make k8s-down) runs it.
//
//	k8snode up RUN_DIR     start; the components outlive this command
//	k8snode down RUN_DIR   stop everything and check nothing is left
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/modelship/modelship/internal/k8snode"
)

func main() {
	if len(os.Args) != 3 || (os.Args[1] != "up" && os.Args[1] != "down") {
		fmt.Fprintln(os.Stderr, "usage: k8snode up|down RUN_DIR")
		os.Exit(2)
	}
	dir, err := filepath.Abs(os.Args[2])
	if err != nil {
		fail(err)
	}
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	start := time.Now()
	switch os.Args[1] {
	case "up":
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		n, err := k8snode.Up(ctx, k8snode.Options{Dir: dir, Detach: true, KeepLogs: true, Logf: logf})
		if err != nil {
			fail(err)
		}
		logf("k8snode: up in %s", time.Since(start).Round(time.Millisecond))
		fmt.Printf("KUBECONFIG=%s\nNODE_IP=%s\nNODE_NAME=%s\nAPI_SERVER=%s\nCONTAINERD_SOCKET=%s\nRUN_DIR=%s\n",
			n.KubeconfigPath, n.IP, n.Name, n.Server, n.ContainerdSocket, n.Dir)
	case "down":
		if err := k8snode.Down(dir, logf); err != nil {
			fail(err)
		}
		logf("k8snode: down in %s; nothing left behind (logs kept in %s)", time.Since(start).Round(time.Millisecond), filepath.Join(dir, "logs"))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "k8snode:", err)
	os.Exit(1)
}
