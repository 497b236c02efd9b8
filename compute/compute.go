// Package compute defines what a compute driver does: run the replicas of a
// deployment (a service, or one version of an endpoint) as described by a
// Spec, report their status and logs, and scale them. Drivers: local (child
// processes on this machine) and kubernetes.
package compute

import (
	"context"
	"time"

	"github.com/modelship/modelship"
)

// Spec is the desired state of one deployment.
type Spec struct {
	// ID is unique per driver: "<workspace>/<service>" or
	// "<workspace>/<endpoint>/<version>".
	ID string
	// Revision identifies everything that needs new replicas when it
	// changes (models, code, environment, resources). A new revision is
	// rolled out replica by replica; the old one keeps serving until the
	// new replicas are ready.
	Revision string
	// Replicas is the desired number of replicas.
	Replicas int
	// Env is the environment of each replica's `modelship serve-model`.
	Env map[string]string
	// SecretEnv is more environment holding credentials (the fetch token):
	// kept out of Revision and, on Kubernetes, delivered through a Secret
	// rather than the pod template.
	SecretEnv map[string]string
	// Image, when set, is the container image of the replicas on drivers
	// that run containers (Kubernetes); "" means the target's image.
	Image string
	// Autoscaled: the front end's autoscaler owns the replica count once
	// the deployment exists, so Apply keeps the current count and uses
	// Replicas only to create it.
	Autoscaled bool
	// Resources requested per replica; counted against the target's
	// capacity. MemoryLimitGB (0 = none) is enforced.
	CPU, MemoryGB, MemoryLimitGB float64
	GPUs                         int
	Liveness                     Probe
	// StartTimeout bounds how long a new replica may take to become ready
	// during a rollout before the rollout is abandoned and rolled back.
	StartTimeout time.Duration
}

// Probe is a liveness probe (livenessProbeRequirements).
type Probe struct {
	Period, InitialDelay, Timeout      time.Duration
	SuccessThreshold, FailureThreshold int
}

// Replica states.
const (
	ReplicaStarting      = "Starting"
	ReplicaRunning       = "Running"
	ReplicaCrashLoop     = "CrashLoopBackOff"
	ReplicaTerminating   = "Terminating"
	ReplicaUnschedulable = "Unschedulable"
)

// ReplicaStatus describes one replica.
type ReplicaStatus struct {
	ID        string    `json:"id"`
	Revision  string    `json:"revision"`
	URL       string    `json:"url,omitempty"`
	State     string    `json:"state"`
	Ready     bool      `json:"ready"`
	Restarts  int       `json:"restarts"`
	LastExit  string    `json:"lastExit,omitempty"`
	StartedAt time.Time `json:"startedAt"`
	PID       int       `json:"pid,omitempty"`
}

// Status is the observed state of a deployment.
type Status struct {
	ID string `json:"id"`
	// Revision is the revision fully rolled out (every replica on it).
	Revision string `json:"revision"`
	// Desired is the revision being rolled out ("" when none is).
	Desired  string          `json:"desired,omitempty"`
	Replicas []ReplicaStatus `json:"replicas"`
	// Unschedulable explains why a replica cannot be placed ("" if all are).
	Unschedulable string `json:"unschedulable,omitempty"`
	// RolloutError is set when the last rollout failed and was rolled back.
	RolloutError string `json:"rolloutError,omitempty"`
	// CrashReason holds the last error output of a crashing replica.
	CrashReason string `json:"crashReason,omitempty"`
}

// ReadyCount returns the number of ready replicas.
func (s *Status) ReadyCount() int {
	n := 0
	for _, r := range s.Replicas {
		if r.Ready {
			n++
		}
	}
	return n
}

// LogOptions selects log lines.
type LogOptions = modelship.LogOptions

// Capacity is what a compute target offers.
type Capacity struct {
	CPU      float64 `json:"cpu"`
	MemoryGB float64 `json:"memoryGB"`
	GPUs     int     `json:"gpus"`
}

// Cluster is implemented by drivers of targets that run their own front end
// (Kubernetes): the control plane installs it when the target is attached,
// publishes the target's routes to it, and removes everything at detach.
type Cluster interface {
	// InstallFrontEnd creates or updates the in-cluster front end.
	InstallFrontEnd(ctx context.Context) error
	// FrontEnd returns the URL clients score at ("" and an error while it
	// is not known yet, e.g. a pending load balancer) and how many front-end
	// replicas are ready.
	FrontEnd(ctx context.Context) (url string, ready int, err error)
	// PublishRoutes hands the target's routes (replica lists are
	// discovered in the cluster) to the front end.
	PublishRoutes(ctx context.Context, table *modelship.RouteTable) error
	// Uninstall removes every object modelship created on the target;
	// without force it refuses while deployments exist.
	Uninstall(ctx context.Context, force bool) error
}

// Driver runs deployments on one compute target.
type Driver interface {
	// Apply records the desired state and returns; the driver converges
	// in the background. Applying the same spec again is a no-op.
	Apply(ctx context.Context, spec *Spec) error
	// Scale changes only the replica count.
	Scale(ctx context.Context, id string, replicas int) error
	// Delete drains and stops every replica and forgets the deployment;
	// it returns when they are gone.
	Delete(ctx context.Context, id string) error
	// Status returns the observed state. Returns ENOTFOUND.
	Status(ctx context.Context, id string) (*Status, error)
	// Logs returns replica output lines.
	Logs(ctx context.Context, id string, opts LogOptions) ([]string, error)
	// Capacity returns the target's total and free capacity.
	Capacity(ctx context.Context) (total, free Capacity, err error)
	// Close stops every replica.
	Close(ctx context.Context) error
}
