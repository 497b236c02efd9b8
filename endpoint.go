package modelship

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
)

// Endpoint limits (spec §4).
const (
	MaxEndpointVersions = 6
	MaxMirrorPercent    = 50
)

// Version types (spec §4): exactly one Control, any number of Treatments.
// (VersionTypeControl and VersionTypeTreatment are declared with the
// deployment config.)

// Endpoint is a controlled-rollout endpoint (Azure's AksEndpoint): up to six
// versions behind one scoring URI, with traffic percentiles, a default
// version that takes unallocated traffic, one control and treatments.
type Endpoint struct {
	Workspace     string `json:"workspace"`
	Name          string `json:"name"`
	ComputeType   string `json:"computeType"` // "AKSENDPOINT"
	ComputeTarget string `json:"computeTarget"`
	// Endpoint-level settings.
	AuthMode              string `json:"authMode"`
	AppInsightsEnabled    bool   `json:"appInsightsEnabled"`
	DataCollectionEnabled bool   `json:"dataCollectionEnabled"`

	State      string        `json:"state"`
	Error      *ServiceError `json:"error"`
	ScoringURI string        `json:"scoringUri"`
	SwaggerURI string        `json:"swaggerUri"`

	Versions []EndpointVersion `json:"versions"`

	Description   string            `json:"description"`
	Tags          map[string]string `json:"tags"`
	Properties    map[string]string `json:"properties"`
	CreatedTime   time.Time         `json:"createdTime"`
	UpdatedTime   time.Time         `json:"updatedTime"`
	LastOperation string            `json:"lastOperationId,omitempty"`
	// Comparisons of each treatment against the control (with metrics).
	Comparisons []VersionComparison `json:"comparisons,omitempty"`
}

// EndpointVersion is one version of an endpoint: its traffic configuration
// (stored with the endpoint) and its deployment's live state (filled on read).
type EndpointVersion struct {
	Name string `json:"name"`
	// TrafficPercentile is the configured share (0-100).
	TrafficPercentile float64 `json:"trafficPercentile"`
	// EffectiveTrafficPercentile adds the unallocated share to the default.
	EffectiveTrafficPercentile float64 `json:"effectiveTrafficPercentile"`
	MirrorPercentile           float64 `json:"mirrorPercentile,omitempty"`
	IsDefault                  bool    `json:"isDefault"`
	VersionType                string  `json:"versionType"` // Control or Treatment

	State           string           `json:"state,omitempty"`
	Error           *ServiceError    `json:"error,omitempty"`
	Models          []string         `json:"models,omitempty"`
	Settings        *ServiceSettings `json:"settings,omitempty"`
	Replicas        []ReplicaInfo    `json:"replicas,omitempty"`
	DesiredReplicas int              `json:"desiredReplicas,omitempty"`
	ScoringURI      string           `json:"scoringUri,omitempty"`
	Stats           *VersionStats    `json:"stats,omitempty"`
}

// EffectiveTraffic returns each version's effective share: its own
// percentile plus, for the default version, whatever is not allocated.
func EffectiveTraffic(versions []EndpointVersion) map[string]float64 {
	out := make(map[string]float64, len(versions))
	sum := 0.0
	for _, v := range versions {
		out[v.Name] = v.TrafficPercentile
		sum += v.TrafficPercentile
	}
	rest := math.Max(0, 100-sum)
	for _, v := range versions {
		if v.IsDefault {
			out[v.Name] += rest
		}
	}
	return out
}

// ValidateEndpointVersions checks the rules of spec §4 on a complete set of
// versions: 1..6 versions, unique names that differ from the endpoint's,
// percentiles 0-100 summing to at most 100, exactly one default and one
// control, mirrors at most 50 in all.
func ValidateEndpointVersions(endpoint string, versions []EndpointVersion) error {
	if len(versions) == 0 {
		return Errorf(EINVALID, "endpoint %q needs at least one version", endpoint)
	}
	if len(versions) > MaxEndpointVersions {
		return Errorf(EINVALID, "endpoint %q would have %d versions; an endpoint holds at most %d", endpoint, len(versions), MaxEndpointVersions)
	}
	seen := map[string]bool{}
	sum, mirror := 0.0, 0.0
	defaults, controls := 0, 0
	for _, v := range versions {
		if err := ValidateVersionName(endpoint, v.Name); err != nil {
			return err
		}
		if seen[v.Name] {
			return Errorf(ECONFLICT, "endpoint %q already has a version named %q", endpoint, v.Name)
		}
		seen[v.Name] = true
		if v.TrafficPercentile < 0 || v.TrafficPercentile > 100 || math.IsNaN(v.TrafficPercentile) {
			return Errorf(EINVALID, "trafficPercentile %g of version %q is invalid; use 0 to 100", v.TrafficPercentile, v.Name)
		}
		if v.MirrorPercentile < 0 || v.MirrorPercentile > MaxMirrorPercent {
			return Errorf(EINVALID, "mirrorPercentile %g of version %q is invalid; use 0 to %d", v.MirrorPercentile, v.Name, MaxMirrorPercent)
		}
		sum += v.TrafficPercentile
		mirror += v.MirrorPercentile
		if v.IsDefault {
			defaults++
		}
		if v.VersionType == VersionTypeControl {
			controls++
		}
	}
	if sum > 100+1e-9 {
		return Errorf(EINVALID, "the traffic percentiles of endpoint %q add up to %g; at most 100 can be allocated (unallocated traffic goes to the default version)", endpoint, sum)
	}
	if mirror > MaxMirrorPercent+1e-9 {
		return Errorf(EINVALID, "the mirror percentiles of endpoint %q add up to %g; at most %d", endpoint, mirror, MaxMirrorPercent)
	}
	if defaults != 1 {
		return Errorf(EINVALID, "endpoint %q must have exactly one default version, has %d", endpoint, defaults)
	}
	if controls != 1 {
		return Errorf(EINVALID, "endpoint %q must have exactly one control version, has %d", endpoint, controls)
	}
	return nil
}

// ValidateVersionName applies the service-name rule to a version name and
// refuses the endpoint's own name (it broke endpoint updates in Azure).
func ValidateVersionName(endpoint, name string) error {
	if err := ValidateServiceName(name); err != nil {
		return Errorf(EINVALID, "%s", strings.Replace(ErrorMessage(err), "service name", "version name", 1))
	}
	if name == endpoint {
		return Errorf(EINVALID, "version name %q equals the endpoint's name; give the version its own name (e.g. blue, green)", name)
	}
	return nil
}

// EndpointCreateRequest creates an endpoint with its first version.
type EndpointCreateRequest struct {
	Name          string `json:"name"`
	ComputeTarget string `json:"computeTarget,omitempty"`
	// Version is the first version.
	Version VersionRequest `json:"version"`
	// DeploymentConfig holds the endpoint-level settings (authEnabled,
	// tokenAuthEnabled, appInsightsEnabled, keys, description, tags) as
	// well as the first version's deployment settings.
	DeploymentConfig json.RawMessage `json:"deploymentConfig,omitempty"`
}

// VersionRequest creates or updates an endpoint version. Nil fields keep
// their value (or take the default on create).
type VersionRequest struct {
	Name              string          `json:"versionName"`
	Models            []string        `json:"models,omitempty"`
	Inference         *InferenceSpec  `json:"inference,omitempty"`
	DeploymentConfig  json.RawMessage `json:"deploymentConfig,omitempty"`
	TrafficPercentile *float64        `json:"trafficPercentile,omitempty"`
	MirrorPercentile  *float64        `json:"mirrorPercentile,omitempty"`
	IsDefault         *bool           `json:"isDefault,omitempty"`
	// IsControl: true makes this the control (demoting the old one); false
	// makes it a treatment.
	IsControl *bool `json:"isControlVersionType,omitempty"`
}

// EndpointUpdateRequest changes endpoint-level settings.
type EndpointUpdateRequest struct {
	AuthEnabled        *bool             `json:"authEnabled,omitempty"`
	TokenAuthEnabled   *bool             `json:"tokenAuthEnabled,omitempty"`
	AppInsightsEnabled *bool             `json:"appInsightsEnabled,omitempty"`
	Description        *string           `json:"description,omitempty"`
	Tags               map[string]string `json:"tags,omitempty"`
	Properties         map[string]string `json:"properties,omitempty"`
}

// LatencyBucket is one bucket of a latency histogram.
type LatencyBucket struct {
	UpperBound time.Duration `json:"upperBound"` // 0 = +Inf
	Count      uint64        `json:"count"`
}

// VersionStats are live request statistics of one version at the front end.
type VersionStats struct {
	Total         uint64            `json:"total"`
	Requests      map[string]uint64 `json:"requests"`  // by status class: 2xx, 4xx, 5xx...
	ErrorRate     float64           `json:"errorRate"` // 5xx share
	P50           time.Duration     `json:"p50"`
	P95           time.Duration     `json:"p95"`
	P99           time.Duration     `json:"p99"`
	Mean          time.Duration     `json:"mean"`
	Latency       []LatencyBucket   `json:"latency,omitempty"`
	ReadyReplicas int               `json:"readyReplicas"`
	BusyReplicas  int               `json:"busyReplicas"`
	InFlight      int64             `json:"inFlight"`
	Queued        int64             `json:"queued"`
	MirrorSent    uint64            `json:"mirrorSent,omitempty"`
	MirrorDropped uint64            `json:"mirrorDropped,omitempty"`
}

// Verdicts of a comparison at 95% confidence.
const (
	VerdictBetter       = "better"
	VerdictWorse        = "worse"
	VerdictNoDifference = "no significant difference"
	VerdictTooFewData   = "not enough data"
)

// VersionComparison compares a treatment with the control.
type VersionComparison struct {
	Treatment          string  `json:"treatment"`
	Control            string  `json:"control"`
	TreatmentRequests  uint64  `json:"treatmentRequests"`
	ControlRequests    uint64  `json:"controlRequests"`
	TreatmentErrorRate float64 `json:"treatmentErrorRate"`
	ControlErrorRate   float64 `json:"controlErrorRate"`
	// ErrorRateZ and ErrorRateP are the two-proportion z-test.
	ErrorRateZ       float64 `json:"errorRateZ"`
	ErrorRateP       float64 `json:"errorRateP"`
	ErrorRateVerdict string  `json:"errorRateVerdict"`
	// Latency: Mann-Whitney U on the latency histograms.
	TreatmentP50   time.Duration `json:"treatmentP50"`
	ControlP50     time.Duration `json:"controlP50"`
	LatencyZ       float64       `json:"latencyZ"`
	LatencyP       float64       `json:"latencyP"`
	LatencyVerdict string        `json:"latencyVerdict"`
}

// String summarises a comparison in one line.
func (c VersionComparison) String() string {
	return fmt.Sprintf("%s vs control %s: errors %s (%.2f%% vs %.2f%%, p=%.3f, n=%d/%d); latency %s (p50 %s vs %s, p=%.3f)",
		c.Treatment, c.Control, c.ErrorRateVerdict, 100*c.TreatmentErrorRate, 100*c.ControlErrorRate, c.ErrorRateP,
		c.TreatmentRequests, c.ControlRequests, c.LatencyVerdict, c.TreatmentP50, c.ControlP50, c.LatencyP)
}

// EndpointService manages endpoints.
type EndpointService interface {
	CreateEndpoint(ctx context.Context, ws string, req *EndpointCreateRequest) (*Endpoint, *Operation, error)
	GetEndpoint(ctx context.Context, ws, name string, metrics bool) (*Endpoint, error)
	ListEndpoints(ctx context.Context, ws string) ([]*Endpoint, error)
	UpdateEndpoint(ctx context.Context, ws, name string, req *EndpointUpdateRequest) (*Endpoint, error)
	DeleteEndpoint(ctx context.Context, ws, name string) (*Operation, error)
	// CreateVersion adds a version (asynchronous deployment).
	CreateVersion(ctx context.Context, ws, endpoint string, req *VersionRequest) (*Endpoint, *Operation, error)
	// UpdateVersion changes traffic flags (at once) and/or the version's
	// deployment (rolling; then an operation is returned).
	UpdateVersion(ctx context.Context, ws, endpoint string, req *VersionRequest) (*Endpoint, *Operation, error)
	// DeleteVersion drains and removes a version (not the default).
	DeleteVersion(ctx context.Context, ws, endpoint, version string) (*Operation, error)
	// PromoteVersion makes a version the control and the default.
	PromoteVersion(ctx context.Context, ws, endpoint, version string) (*Endpoint, error)
	EndpointKeys(ctx context.Context, ws, name string) (*ServiceKeys, error)
	RegenEndpointKey(ctx context.Context, ws, name, which, value string) (*ServiceKeys, error)
	EndpointToken(ctx context.Context, ws, name string) (*AccessToken, error)
	EndpointLogs(ctx context.Context, ws, name, version string, opts LogOptions) ([]string, error)
}

// EndpointStore keeps endpoint records (versions' deployments are stored as
// services owned by the endpoint).
type EndpointStore interface {
	CreateEndpoint(ctx context.Context, ep *Endpoint, sealedKeys [2]string) error
	PutEndpoint(ctx context.Context, ep *Endpoint) error
	FindEndpoint(ctx context.Context, ws, name string) (*Endpoint, error)
	ListEndpoints(ctx context.Context, ws string) ([]*Endpoint, error)
	DeleteEndpoint(ctx context.Context, ws, name string) error
}

// IsEndpointConfig reports whether a deployment config's computeType is
// AKSENDPOINT (Model.deploy with an AksEndpoint config creates an endpoint).
func IsEndpointConfig(raw json.RawMessage) bool {
	var probe struct {
		ComputeType string `json:"computeType"`
	}
	if json.Unmarshal(raw, &probe) != nil {
		return false
	}
	ct, err := NormalizeComputeType(probe.ComputeType)
	return err == nil && ct == ComputeTypeAKSEndpoint
}
