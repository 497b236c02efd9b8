package modelship

import (
	"context"
	"regexp"
	"time"
)

// Compute target types.
const (
	TargetLocal      = "local"
	TargetKubernetes = "kubernetes"
)

// Cluster purposes (spec §6.2).
const (
	PurposeFastProd  = "FastProd"
	PurposeDevTest   = "DevTest"
	PurposeDenseProd = "DenseProd"
)

// DefaultLocalTarget is the local target every workspace has.
const DefaultLocalTarget = "local"

// FastProdMinCPU is the least capacity a FastProd target must have.
const FastProdMinCPU = 12

// ComputeTarget is where services run.
type ComputeTarget struct {
	Workspace      string    `json:"workspace"`
	Name           string    `json:"name"`
	Type           string    `json:"computeType"`
	ClusterPurpose string    `json:"clusterPurpose"`
	CPU            float64   `json:"cpu"`
	MemoryGB       float64   `json:"memoryGB"`
	GPUs           int       `json:"gpus"`
	Description    string    `json:"description,omitempty"`
	CreatedTime    time.Time `json:"createdTime"`
	// Observed, filled on read.
	FreeCPU      float64 `json:"freeCpu"`
	FreeMemoryGB float64 `json:"freeMemoryGB"`
	FreeGPUs     int     `json:"freeGpus"`
	Services     int     `json:"services"`
	State        string  `json:"provisioningState"`
	// Kubernetes is the attachment of a kubernetes target.
	Kubernetes *KubernetesAttachment `json:"kubernetes,omitempty"`
}

// Front-end Service types of a Kubernetes target.
const (
	FrontEndNodePort     = "NodePort"
	FrontEndLoadBalancer = "LoadBalancer"
	FrontEndClusterIP    = "ClusterIP"
)

// KubernetesAttachment is how a kubernetes compute target reaches its
// cluster and what modelship installed there.
type KubernetesAttachment struct {
	// Server is the API server URL, Context the kubeconfig context.
	Server  string `json:"server"`
	Context string `json:"context,omitempty"`
	// Namespace holds every object of the target.
	Namespace string `json:"namespace"`
	// ClusterID is the UID of the cluster's kube-system namespace: one
	// cluster is attached at most once.
	ClusterID string `json:"clusterId"`
	// Version is the API server's version at attach time.
	Version string `json:"version,omitempty"`
	// ReadyNodes counts Ready, schedulable nodes (observed).
	ReadyNodes int `json:"readyNodes"`
	// Image runs `modelship serve-model` in replicas and `modelship
	// gateway` in the front end.
	Image string `json:"image"`
	// ImagePullPolicy: Always, IfNotPresent (default) or Never.
	ImagePullPolicy string `json:"imagePullPolicy,omitempty"`
	// FrontEndService is the Service type of the front end: NodePort
	// (default), LoadBalancer or ClusterIP.
	FrontEndService string `json:"frontEndService"`
	// FrontEndURL is the address clients score at (observed; "" while a
	// load balancer is pending).
	FrontEndURL string `json:"frontEndUrl,omitempty"`
	// FrontEndReady counts the front end's ready replicas (observed).
	FrontEndReady int `json:"frontEndReady"`
	// SealedKubeconfig is the kubeconfig, encrypted with the server's
	// master key. Never returned by the API.
	SealedKubeconfig string `json:"sealedKubeconfig,omitempty"`
}

// AttachRequest attaches a Kubernetes cluster as a compute target.
type AttachRequest struct {
	Name           string `json:"name"`
	Kubeconfig     string `json:"kubeconfig"` // the file's content
	Context        string `json:"context,omitempty"`
	Namespace      string `json:"namespace,omitempty"`
	ClusterPurpose string `json:"clusterPurpose,omitempty"`
	Image          string `json:"image,omitempty"`
	// ImagePullPolicy: Always, IfNotPresent or Never.
	ImagePullPolicy string `json:"imagePullPolicy,omitempty"`
	// FrontEndService: NodePort (default), LoadBalancer or ClusterIP.
	FrontEndService string `json:"frontEndService,omitempty"`
	Description     string `json:"description,omitempty"`
}

var computeNameRE = regexp.MustCompile(`^[A-Za-z]([A-Za-z0-9-]*[A-Za-z0-9])?$`)

// ValidateComputeName checks Azure's compute name rule: 3 to 24 letters,
// digits and dashes, starting with a letter and ending with a letter or
// digit. The built-in "local" target is exempt from the length rule.
func ValidateComputeName(name string) error {
	if name == DefaultLocalTarget {
		return nil
	}
	if len(name) < 3 || len(name) > 24 || !computeNameRE.MatchString(name) {
		return Errorf(EINVALID, "compute target name %q is invalid; use 3 to 24 letters, digits and '-', starting with a letter and ending with a letter or digit", name)
	}
	return nil
}

// ComputeTargetStore keeps compute targets.
type ComputeTargetStore interface {
	// CreateComputeTarget returns ECONFLICT if the name is taken.
	CreateComputeTarget(ctx context.Context, ct *ComputeTarget) error
	// FindComputeTarget returns ENOTFOUND.
	FindComputeTarget(ctx context.Context, ws, name string) (*ComputeTarget, error)
	// PutComputeTarget replaces a target record (observed fields);
	// ENOTFOUND if it does not exist.
	PutComputeTarget(ctx context.Context, ct *ComputeTarget) error
	// ListComputeTargets lists a workspace's targets ("" = all).
	ListComputeTargets(ctx context.Context, ws string) ([]*ComputeTarget, error)
	// DeleteComputeTarget removes a target record.
	DeleteComputeTarget(ctx context.Context, ws, name string) error
}
