package modelship

import (
	"context"
	"encoding/json"
	"io"
	"time"
)

// Service states (spec §3.2).
const (
	StateTransitioning = "Transitioning"
	StateHealthy       = "Healthy"
	StateUnhealthy     = "Unhealthy"
	StateUnschedulable = "Unschedulable"
	StateFailed        = "Failed"
	StateDeleting      = "Deleting"
)

// Operation states (spec §3.2).
const (
	OpRunning   = "Running"
	OpSucceeded = "Succeeded"
	OpFailed    = "Failed"
	OpCancelled = "Cancelled"
	OpTimedOut  = "TimedOut"
)

// Operation kinds.
const (
	OpCreate    = "Create"
	OpUpdate    = "Update"
	OpDelete    = "Delete"
	OpRegenKeys = "RegenerateKeys"
)

// Runtimes a deployment can run.
const (
	RuntimePython  = "python"
	RuntimeONNX    = "onnx"
	RuntimeSklearn = "sklearn"
)

// InferenceSpec is the resolved inference configuration of a service: what
// code runs and how. The source folder is stored in the artifact store as a
// tar under SourceDigest.
type InferenceSpec struct {
	EntryScript          string            `json:"entryScript,omitempty"`
	SourceDigest         string            `json:"sourceDigest,omitempty"`
	Runtime              string            `json:"runtime"`
	PythonInterpreter    string            `json:"pythonInterpreter,omitempty"`
	EnvironmentVariables map[string]string `json:"environmentVariables,omitempty"`
	BaseImage            string            `json:"baseImage,omitempty"`
	Description          string            `json:"description,omitempty"`
}

// ServiceError is the error of a failed or unhealthy service, with
// details (e.g. the last log lines of a crashing replica).
type ServiceError struct {
	Code    string   `json:"code"`
	Message string   `json:"message"`
	Details []string `json:"details,omitempty"`
}

// ReplicaInfo is a replica as shown to users.
type ReplicaInfo struct {
	ID       string    `json:"id"`
	State    string    `json:"state"`
	Ready    bool      `json:"ready"`
	Restarts int       `json:"restarts"`
	LastExit string    `json:"lastExit,omitempty"`
	Started  time.Time `json:"startedTime"`
	Revision string    `json:"revision,omitempty"`
}

// Service is a deployed model web service (Azure's AksWebservice).
type Service struct {
	Workspace     string          `json:"workspace"`
	Name          string          `json:"name"`
	ComputeType   string          `json:"computeType"`   // AKS, ACI or LOCAL: the deployment config's, as Azure reports it
	ComputeTarget string          `json:"computeTarget"` // target name
	Models        []string        `json:"models"`        // "name:version"
	Inference     InferenceSpec   `json:"inference"`
	Settings      ServiceSettings `json:"settings"`
	State         string          `json:"state"`
	Error         *ServiceError   `json:"error"`
	ScoringURI    string          `json:"scoringUri"`
	SwaggerURI    string          `json:"swaggerUri"`
	Replicas      []ReplicaInfo   `json:"replicas"`
	// Generation increases with every change of the desired state.
	Generation int64 `json:"generation"`
	// Revision identifies the replica spec last applied.
	Revision    string            `json:"revision,omitempty"`
	Description string            `json:"description"`
	Tags        map[string]string `json:"tags"`
	Properties  map[string]string `json:"properties"`
	CreatedTime time.Time         `json:"createdTime"`
	UpdatedTime time.Time         `json:"updatedTime"`
	// LastOperation is the id of the newest operation on the service.
	LastOperation string `json:"lastOperationId,omitempty"`
	// DesiredReplicas is the replica count the service runs with now: the
	// fixed count, or the autoscaler's latest decision.
	DesiredReplicas int `json:"desiredReplicas"`
	// Scaling is the autoscaler's last decision, for display.
	Scaling string `json:"scaling,omitempty"`
	// Endpoint and Version are set when this deployment is a version of an
	// endpoint; such records are internal (named "<endpoint>.<version>").
	Endpoint string `json:"endpoint,omitempty"`
	Version  string `json:"version,omitempty"`
}

// ServiceKeys are a service's two keys (Azure's get_keys()).
type ServiceKeys struct {
	PrimaryKey   string `json:"primaryKey"`
	SecondaryKey string `json:"secondaryKey"`
}

// AccessToken is a service access token (Azure's get_access_token()).
type AccessToken struct {
	AccessToken  string    `json:"accessToken"`
	TokenType    string    `json:"tokenType"`
	RefreshAfter time.Time `json:"refreshAfter"`
	ExpiryOn     time.Time `json:"expiryOn"`
}

// Operation is an asynchronous change (deploy, update, delete) with a log
// that clients stream (`--show-output`).
type Operation struct {
	ID          string         `json:"id"`
	Workspace   string         `json:"workspace"`
	Target      string         `json:"target"` // service or endpoint name
	Kind        string         `json:"kind"`
	State       string         `json:"state"`
	Error       *ServiceError  `json:"error,omitempty"`
	Log         []OperationLog `json:"log,omitempty"`
	CreatedTime time.Time      `json:"createdTime"`
	EndTime     *time.Time     `json:"endTime,omitempty"`
}

// OperationLog is one progress line.
type OperationLog struct {
	Seq     int       `json:"seq"`
	Time    time.Time `json:"time"`
	Message string    `json:"message"`
}

// Done reports whether the operation has finished.
func (o *Operation) Done() bool { return o.State != OpRunning }

// DeployRequest creates a service (Model.deploy / az ml model deploy).
type DeployRequest struct {
	Name          string        `json:"name"`
	ComputeTarget string        `json:"computeTarget,omitempty"`
	Models        []string      `json:"models"`
	Inference     InferenceSpec `json:"inference"`
	// DeploymentConfig is the deploymentconfig.json object, as given.
	DeploymentConfig json.RawMessage `json:"deploymentConfig,omitempty"`
	Overwrite        bool            `json:"overwrite,omitempty"`
}

// UpdateRequest changes a service; empty fields stay as they are.
type UpdateRequest struct {
	Models           []string        `json:"models,omitempty"`
	Inference        *InferenceSpec  `json:"inference,omitempty"`
	DeploymentConfig json.RawMessage `json:"deploymentConfig,omitempty"`
}

// LogOptions selects replica log lines.
type LogOptions struct {
	Tail    int  // last N lines (0 = all kept)
	Init    bool // only the startup output (until the replica was ready)
	Replica int  // replica index, -1 for all
}

// DeploymentService deploys and manages services and compute targets.
type DeploymentService interface {
	// Deploy creates (or with Overwrite replaces) a service; the returned
	// operation runs asynchronously.
	Deploy(ctx context.Context, ws string, req *DeployRequest) (*Service, *Operation, error)
	// Update changes a service (rolling, zero downtime).
	Update(ctx context.Context, ws, name string, req *UpdateRequest) (*Service, *Operation, error)
	// Delete drains and removes a service.
	Delete(ctx context.Context, ws, name string) (*Operation, error)
	Get(ctx context.Context, ws, name string) (*Service, error)
	List(ctx context.Context, ws string) ([]*Service, error)
	Keys(ctx context.Context, ws, name string) (*ServiceKeys, error)
	// RegenKey replaces "Primary" or "Secondary" (with value if given).
	RegenKey(ctx context.Context, ws, name, which, value string) (*ServiceKeys, error)
	Token(ctx context.Context, ws, name string) (*AccessToken, error)
	Logs(ctx context.Context, ws, name string, opts LogOptions) ([]string, error)
	// FetchAccess issues a token with which a replica of the deployment
	// (a service, or "<endpoint>.<version>") can fetch its files.
	FetchAccess(ctx context.Context, ws, name string) (*FetchAccess, error)
	// CheckFetchToken verifies a fetch token (EUNAUTHORIZED).
	CheckFetchToken(ws, name, token string) error
	// FetchManifest lists a deployment's files.
	FetchManifest(ctx context.Context, ws, name string) (*FetchManifest, error)
	// OpenFetchBlob opens one of a deployment's files by digest.
	OpenFetchBlob(ctx context.Context, ws, name, digest string) (io.ReadCloser, error)
	// CollectedData writes the rows score.py's ModelDataCollector stored
	// for a designation (and optionally one model) since a time, as CSV.
	CollectedData(ctx context.Context, ws, name, designation, model string, since time.Time, w io.Writer) error
	// Operation returns an operation with log lines after afterSeq.
	Operation(ctx context.Context, id string, afterSeq int) (*Operation, error)

	Targets(ctx context.Context, ws string) ([]*ComputeTarget, error)
	Target(ctx context.Context, ws, name string) (*ComputeTarget, error)
	// CreateLocalTarget returns warnings.
	CreateLocalTarget(ctx context.Context, ct *ComputeTarget) ([]string, error)
	DeleteTarget(ctx context.Context, ws, name string) error
	// AttachKubernetes validates a cluster and saves it as a target;
	// returns warnings.
	AttachKubernetes(ctx context.Context, ws string, req *AttachRequest) (*ComputeTarget, []string, error)
	// Detach removes a kubernetes target and what modelship created in
	// the cluster; force deletes the services that use it first.
	Detach(ctx context.Context, ws, name string, force bool) error
	EnsureLocalTarget(ctx context.Context, ws string) error
}

// ServiceStore keeps services, their sealed keys and operations.
type ServiceStore interface {
	// CreateService stores a new service. Returns ECONFLICT if the name is
	// taken in the workspace.
	CreateService(ctx context.Context, svc *Service, sealedKeys [2]string) error
	// PutService replaces a service record (desired and observed state).
	PutService(ctx context.Context, svc *Service) error
	// FindService returns ENOTFOUND.
	FindService(ctx context.Context, ws, name string) (*Service, error)
	// ListServices lists a workspace's services ("" = every workspace).
	ListServices(ctx context.Context, ws string) ([]*Service, error)
	// DeleteService removes the record and its keys.
	DeleteService(ctx context.Context, ws, name string) error
	// ServiceKeys returns the sealed keys.
	ServiceKeys(ctx context.Context, ws, name string) (sealed [2]string, err error)
	// SetServiceKeys replaces the sealed keys.
	SetServiceKeys(ctx context.Context, ws, name string, sealed [2]string) error

	// CreateOperation stores a new operation.
	CreateOperation(ctx context.Context, op *Operation) error
	// AppendOperationLog adds a line.
	AppendOperationLog(ctx context.Context, id, message string) error
	// FinishOperation sets the final state.
	FinishOperation(ctx context.Context, id, state string, opErr *ServiceError) error
	// FindOperation returns an operation with its log lines after seq.
	FindOperation(ctx context.Context, id string, afterSeq int) (*Operation, error)
	// RunningOperations lists unfinished operations (for restart).
	RunningOperations(ctx context.Context) ([]*Operation, error)
}

// FetchManifest lists what a replica of a deployment needs, for replicas
// that fetch their files from the control plane (Kubernetes pods, or a
// replica started elsewhere with `serve-model --fetch-url`).
type FetchManifest struct {
	Workspace   string          `json:"workspace"`
	Deployment  string          `json:"deployment"`
	Models      []FetchModel    `json:"models"`
	Source      *FetchBlob      `json:"source,omitempty"` // tar of the source folder
	EntryScript string          `json:"entryScript,omitempty"`
	Runtime     string          `json:"runtime"`
	Settings    ServiceSettings `json:"settings"`
}

// FetchModel is one model version of a manifest.
type FetchModel struct {
	Name      string `json:"name"`
	Version   int    `json:"version"`
	AssetType string `json:"assetType"`
	FileName  string `json:"fileName,omitempty"`
	FetchBlob
}

// FetchBlob names stored bytes by digest.
type FetchBlob struct {
	SHA256    string `json:"sha256"`
	SizeBytes int64  `json:"sizeBytes"`
}

// FetchAccess is a fetch URL and the token that opens it.
type FetchAccess struct {
	URL        string    `json:"url"`
	Deployment string    `json:"deployment"` // "<workspace>/<name>"
	Token      string    `json:"token"`
	ExpiryOn   time.Time `json:"expiryOn"`
}
