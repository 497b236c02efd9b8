// Command pause is the sandbox ("pause") container of the single-node test
// cluster (internal/k8snode): containerd's sandbox_image, built from this
// static program by scripts/k8s-binaries.sh and packed into an OCI image by
// the harness, so nothing is pulled. It holds the pod's namespaces, reaps
// orphaned children (it is PID 1 of pods that share a process namespace) and
// exits on SIGINT or SIGTERM, like Kubernetes' own pause.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
