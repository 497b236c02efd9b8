package modelship

import "time"

// Auth modes of a service or endpoint (spec §3.1): key auth is the default;
// token auth and key auth are mutually exclusive.
const (
	AuthKey   = "key"
	AuthToken = "token"
	AuthNone  = "none"
)

// RouteTable is everything the front end (gateway) needs to serve scoring
// traffic: it never reads the store. The control plane publishes a new table
// whenever a service, endpoint, key or replica changes; on Kubernetes it is
// written to a Secret the in-cluster front end reads.
type RouteTable struct {
	// Generation increases with every published table.
	Generation int64 `json:"generation"`
	// Routes by name. Services and endpoints share one name space on a
	// gateway: /api/v1/service/<name>/... and /api/v1/endpoint/<name>/...
	Routes []Route `json:"routes"`
	// TokenPublicKeys are the Ed25519 public keys (raw 32 bytes) that sign
	// service access tokens: the current key first, then the previous one,
	// so tokens survive a key rotation.
	TokenPublicKeys [][]byte `json:"tokenPublicKeys"`
}

// Route kinds.
const (
	RouteService  = "service"
	RouteEndpoint = "endpoint"
)

// Route is one service or endpoint as the front end sees it.
type Route struct {
	Kind      string `json:"kind"` // RouteService or RouteEndpoint
	Workspace string `json:"workspace"`
	Name      string `json:"name"`
	// Auth is AuthKey, AuthToken or AuthNone.
	Auth string `json:"auth"`
	// KeyHashes are hex SHA-256 digests of the valid keys (primary,
	// secondary); keys themselves never reach the front end.
	KeyHashes []string `json:"keyHashes,omitempty"`
	// TokenAudience is the "aud" claim a token must carry for this route.
	TokenAudience string `json:"tokenAudience,omitempty"`
	// Versions: one for a plain service; up to six for an endpoint.
	Versions []RouteVersion `json:"versions"`
	// AppInsights turns on the front end's request records for this route
	// (appInsightsEnabled): one JSON line per request under
	// <data-dir>/telemetry/<workspace>/<name>/gateway-YYYYMMDD-HH.jsonl.
	AppInsights bool `json:"appInsights,omitempty"`
}

// RouteVersion is one deployment behind a route, with its traffic share and
// its replicas.
type RouteVersion struct {
	Name string `json:"name"`
	// Deployment is the compute deployment behind the version
	// ("<workspace>/<service>" or "<workspace>/<endpoint>.<version>"): the
	// in-cluster front end finds its replicas (EndpointSlices) and scales it
	// by this ID.
	Deployment string `json:"deployment,omitempty"`
	// TrafficPercent is the effective share of unpinned requests, 0-100;
	// the shares of a route's versions add up to 100.
	TrafficPercent float64 `json:"trafficPercent"`
	// MirrorPercent copies this share of live requests to the version
	// asynchronously (responses discarded). At most 50.
	MirrorPercent float64 `json:"mirrorPercent,omitempty"`
	IsDefault     bool    `json:"isDefault,omitempty"`
	IsControl     bool    `json:"isControl,omitempty"`

	MaxConcurrentRequestsPerContainer int           `json:"maxConcurrentRequestsPerContainer"`
	MaxQueueWait                      time.Duration `json:"maxQueueWait"`
	ScoringTimeout                    time.Duration `json:"scoringTimeout"`

	// Models lists "name:version" for telemetry.
	Models   []string          `json:"models,omitempty"`
	Replicas []ReplicaEndpoint `json:"replicas"`

	// Autoscale settings; nil means a fixed replica count.
	Autoscale *AutoscaleSettings `json:"autoscale,omitempty"`
}

// ReplicaEndpoint is one running replica of a version.
type ReplicaEndpoint struct {
	ID    string `json:"id"`
	URL   string `json:"url"` // base URL, e.g. http://127.0.0.1:40123
	Ready bool   `json:"ready"`
}

// AutoscaleSettings are a version's autoscaler parameters (spec §1.1, §3.5).
type AutoscaleSettings struct {
	MinReplicas       int           `json:"minReplicas"`
	MaxReplicas       int           `json:"maxReplicas"`
	RefreshPeriod     time.Duration `json:"refreshPeriod"`
	TargetUtilization int           `json:"targetUtilization"` // percent
	// ScaleDownDelay: utilization must stay low this long before a
	// replica is removed (default 60 s).
	ScaleDownDelay time.Duration `json:"scaleDownDelay"`
}
