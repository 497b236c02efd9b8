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
	// Kubernetes holds the attachment of a kubernetes target (JSON, opaque
	// to the store).
	Kubernetes map[string]any `json:"kubernetes,omitempty"`
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
	// ListComputeTargets lists a workspace's targets ("" = all).
	ListComputeTargets(ctx context.Context, ws string) ([]*ComputeTarget, error)
	// DeleteComputeTarget removes a target record.
	DeleteComputeTarget(ctx context.Context, ws, name string) error
}
