package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/auth"
	"github.com/modelship/modelship/compute"
	"github.com/modelship/modelship/compute/kubernetes"
)

// driverStartTimeout bounds connecting to a cluster and filling the
// driver's watch caches.
const driverStartTimeout = 30 * time.Second

// newKubernetesDriver starts the driver of an attached cluster.
func newKubernetesDriver(ct *modelship.ComputeTarget, sealer *auth.Sealer, log *slog.Logger, onChange func(string)) (compute.Driver, error) {
	k := ct.Kubernetes
	if k == nil {
		return nil, fmt.Errorf("compute target %s has no attachment", ct.Name)
	}
	kubeconfig, err := sealer.Open(k.SealedKubeconfig)
	if err != nil {
		return nil, fmt.Errorf("opening the kubeconfig of %s: %w", ct.Name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), driverStartTimeout)
	defer cancel()
	return kubernetes.New(ctx, kubernetes.Config{
		Kubeconfig: []byte(kubeconfig), Context: k.Context, Namespace: k.Namespace,
		Image: k.Image, ImagePullPolicy: corev1.PullPolicy(k.ImagePullPolicy),
		FrontEnd: kubernetes.FrontEndOptions{ServiceType: corev1.ServiceType(k.FrontEndService)},
		Log:      log.With("target", ct.Workspace+"/"+ct.Name), OnChange: onChange,
	})
}

// attachKubernetes validates a cluster for a new target (controller.AttachFunc).
func attachKubernetes(ctx context.Context, ct *modelship.ComputeTarget, kubeconfig []byte) ([]string, error) {
	k := ct.Kubernetes
	info, err := kubernetes.Attach(ctx, kubeconfig, k.Context, k.Namespace, ct.ClusterPurpose)
	if err != nil {
		return nil, err
	}
	k.ClusterID, k.Server, k.Context, k.Version, k.ReadyNodes = info.ClusterID, info.Server, info.Context, info.Version, info.ReadyNodes
	ct.CPU, ct.MemoryGB, ct.GPUs = info.Allocatable.CPU, info.Allocatable.MemoryGB, info.Allocatable.GPUs
	return info.Warnings, nil
}
