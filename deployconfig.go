package modelship

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Compute types of a deployment config (spec §1.1), in their canonical
// spelling. The computeType key of a file is matched case-insensitively.
// Services are deployed for ComputeTypeAKS, ComputeTypeLocal and
// ComputeTypeACI; ComputeTypeAKSEndpoint deploys a version of an endpoint.
const (
	ComputeTypeAKS         = "AKS"
	ComputeTypeAKSEndpoint = "AKSENDPOINT"
	ComputeTypeACI         = "ACI"
	ComputeTypeLocal       = "LOCAL"
)

// KnownComputeTypes lists the accepted computeType values in their
// canonical spelling.
var KnownComputeTypes = []string{ComputeTypeAKS, ComputeTypeAKSEndpoint, ComputeTypeACI, ComputeTypeLocal}

// Endpoint version types (spec §4): an endpoint has one control version and
// any number of treatments.
const (
	VersionTypeControl   = "Control"
	VersionTypeTreatment = "Treatment"
)

// Defaults applied when a deployment config leaves a field out (spec §1.1).
// Where the sources disagree (gpuCores, probe timeoutSeconds) the choice is
// documented in docs/config.md.
const (
	DefaultMinReplicas                       = 1
	DefaultMaxReplicas                       = 10
	DefaultRefreshPeriod                     = 1 * time.Second
	DefaultTargetUtilization                 = 70
	DefaultScaleDownDelay                    = 60 * time.Second
	DefaultCPU                               = 0.1
	DefaultMemoryGB                          = 0.5
	DefaultGPUs                              = 0
	DefaultServiceScoringTimeout             = 60 * time.Second
	DefaultMaxConcurrentRequestsPerContainer = 1
	DefaultMaxQueueWait                      = 500 * time.Millisecond
	DefaultProbePeriod                       = 10 * time.Second
	DefaultProbeInitialDelay                 = 310 * time.Second
	DefaultProbeTimeout                      = 2 * time.Second
	DefaultProbeSuccessThreshold             = 1
	DefaultProbeFailureThreshold             = 3
)

// Upper bounds modelship puts on values Azure leaves open (or bounds
// differently). They keep durations far from overflow and make typos such as
// an extra zero visible.
const (
	// MaxScoringTimeoutMs is the longest scoringTimeoutMs accepted: one
	// hour, the inference server's own default. Azure rejects more than
	// AzureMaxScoringTimeoutMs; a config above that gets a warning.
	MaxScoringTimeoutMs      = 3_600_000
	AzureMaxScoringTimeoutMs = 300_000
	// MaxQueueWaitMs is the longest maxQueueWaitMs accepted: one hour.
	MaxQueueWaitMs = 3_600_000
	// MaxSeconds bounds every value given in seconds (refresh period and
	// probe timings): one day.
	MaxSeconds = 86_400
	// MaxKeyLen is the longest user-supplied auth key.
	MaxKeyLen = 256
)

var (
	cfgServiceNameRE = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)
	cfgNamespaceRE   = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	cfgComputeNameRE = regexp.MustCompile(`^[A-Za-z]([-A-Za-z0-9]*[A-Za-z0-9])?$`)
)

// ValidateServiceName checks a service, endpoint or endpoint version name
// (spec §1.2): 3 to 32 lowercase letters, digits and '-', starting with a
// letter and ending with a letter or digit.
func ValidateServiceName(name string) error {
	if msg := cfgServiceNameProblem("service name", name); msg != "" {
		return Errorf(EINVALID, "%s", msg)
	}
	return nil
}

func cfgServiceNameProblem(what, name string) string {
	if len(name) < 3 || len(name) > 32 || !cfgServiceNameRE.MatchString(name) {
		return fmt.Sprintf("%s %q is invalid; use 3 to 32 lowercase letters, digits and '-', starting with a letter and ending with a letter or digit", what, name)
	}
	return ""
}

// DeploymentConfig is Azure ML's deploymentconfig.json (spec §1.1) exactly
// as the file spells it. Pointer fields are nil when the file leaves them
// out (or gives null), so "not given" differs from a zero value. Build one
// with ParseDeploymentConfig; Validate checks it and Resolve turns it into
// the ServiceSettings a deployment runs with.
type DeploymentConfig struct {
	// ComputeType is required: aks, AKSENDPOINT, aci or local, in any case.
	ComputeType *string `json:"computeType,omitempty"`

	AutoScaler                    *AutoScalerConfig                `json:"autoScaler,omitempty"`
	DataCollection                *DataCollectionConfig            `json:"dataCollection,omitempty"`
	AuthEnabled                   *bool                            `json:"authEnabled,omitempty"`
	TokenAuthEnabled              *bool                            `json:"tokenAuthEnabled,omitempty"`
	ContainerResourceRequirements *ContainerResourceRequirements   `json:"containerResourceRequirements,omitempty"`
	GPUCores                      *int                             `json:"gpuCores,omitempty"`
	AppInsightsEnabled            *bool                            `json:"appInsightsEnabled,omitempty"`
	ScoringTimeoutMs              *int                             `json:"scoringTimeoutMs,omitempty"`
	MaxConcurrentRequests         *int                             `json:"maxConcurrentRequestsPerContainer,omitempty"`
	MaxQueueWaitMs                *int                             `json:"maxQueueWaitMs,omitempty"`
	NumReplicas                   *int                             `json:"numReplicas,omitempty"`
	Keys                          *KeysConfig                      `json:"keys,omitempty"`
	LivenessProbeRequirements     *LivenessProbeRequirementsConfig `json:"livenessProbeRequirements,omitempty"`
	Namespace                     *string                          `json:"namespace,omitempty"`
	ComputeTargetName             *string                          `json:"computeTargetName,omitempty"`

	// Endpoint versions (computeType AKSENDPOINT only, spec §4).
	VersionName          *string  `json:"versionName,omitempty"`
	TrafficPercentile    *float64 `json:"trafficPercentile,omitempty"`
	IsDefault            *bool    `json:"isDefault,omitempty"`
	IsControlVersionType *bool    `json:"isControlVersionType,omitempty"`
	// Type is Azure's version type on the wire: "Control" or "Treatment".
	Type *string `json:"type,omitempty"`

	// The keys of Azure's ACI deploymentconfig.json. Azure's parser ignored
	// them in files of other compute types (MLOpsPython's AKS files carry
	// sslEnabled), so they are accepted everywhere and have no effect here.
	Location       *string `json:"location,omitempty"`
	DNSNameLabel   *string `json:"dnsNameLabel,omitempty"`
	SSLEnabled     *bool   `json:"sslEnabled,omitempty"`
	SSLCertificate *string `json:"sslCertificate,omitempty"`
	SSLKey         *string `json:"sslKey,omitempty"`
	CName          *string `json:"cname,omitempty"`
	VaultBaseURL   *string `json:"vaultBaseUrl,omitempty"`
	KeyName        *string `json:"keyName,omitempty"`
	KeyVersion     *string `json:"keyVersion,omitempty"`
	VnetName       *string `json:"vnetName,omitempty"`
	SubnetName     *string `json:"subnetName,omitempty"`

	// Port is the host port of Azure's LocalWebservice (computeType local).
	// Accepted and without effect: services are reached through the gateway.
	Port *int `json:"port,omitempty"`

	// Metadata (CLI flags --description, --tag, --property in Azure).
	Description *string           `json:"description,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	Properties  map[string]string `json:"properties,omitempty"`
}

// AutoScalerConfig is the autoScaler object of a deployment config.
type AutoScalerConfig struct {
	AutoscaleEnabled       *bool `json:"autoscaleEnabled,omitempty"`
	MinReplicas            *int  `json:"minReplicas,omitempty"`
	MaxReplicas            *int  `json:"maxReplicas,omitempty"`
	RefreshPeriodInSeconds *int  `json:"refreshPeriodInSeconds,omitempty"`
	TargetUtilization      *int  `json:"targetUtilization,omitempty"`
}

// DataCollectionConfig is the dataCollection object of a deployment config.
type DataCollectionConfig struct {
	StorageEnabled *bool `json:"storageEnabled,omitempty"`
	// EventHubEnabled is in the settings Azure returns for a service; it
	// is accepted so that they can be copied back into a file, and has no
	// effect here.
	EventHubEnabled *bool `json:"eventHubEnabled,omitempty"`
	// CollectRequests (modelship extension, after Azure ML v2's data
	// collector) stores a sample of request and response payloads.
	CollectRequests *bool `json:"collectRequests,omitempty"`
	// SamplingRate is the share of requests collected, 0 < r ≤ 1 (default 1).
	SamplingRate *float64 `json:"samplingRate,omitempty"`
}

// ContainerResourceRequirements are a replica's resource requests and
// limits. CPU and MemoryInGB are requests; the limits are optional.
type ContainerResourceRequirements struct {
	CPU             *float64 `json:"cpu,omitempty"`
	MemoryInGB      *float64 `json:"memoryInGB,omitempty"`
	CPULimit        *float64 `json:"cpuLimit,omitempty"`
	MemoryInGBLimit *float64 `json:"memoryInGBLimit,omitempty"`
}

// KeysConfig holds user-supplied initial auth keys.
type KeysConfig struct {
	PrimaryKey   *string `json:"primaryKey,omitempty"`
	SecondaryKey *string `json:"secondaryKey,omitempty"`
}

// LivenessProbeRequirementsConfig is the livenessProbeRequirements object.
type LivenessProbeRequirementsConfig struct {
	PeriodSeconds       *int `json:"periodSeconds,omitempty"`
	InitialDelaySeconds *int `json:"initialDelaySeconds,omitempty"`
	TimeoutSeconds      *int `json:"timeoutSeconds,omitempty"`
	SuccessThreshold    *int `json:"successThreshold,omitempty"`
	FailureThreshold    *int `json:"failureThreshold,omitempty"`
}

// ServiceSettings are the resolved settings a deployment runs with: every
// default applied, every duration a time.Duration. They are what the store
// keeps and what updates apply to.
type ServiceSettings struct {
	// ComputeType is the canonical compute type the settings were made for.
	ComputeType string `json:"computeType"`

	// AutoscaleEnabled selects autoscaling between MinReplicas and
	// MaxReplicas; otherwise NumReplicas replicas run. The autoscaler
	// values are kept (with defaults) while autoscaling is off so that
	// turning it on later behaves as documented.
	AutoscaleEnabled  bool          `json:"autoscaleEnabled"`
	MinReplicas       int           `json:"minReplicas"`
	MaxReplicas       int           `json:"maxReplicas"`
	RefreshPeriod     time.Duration `json:"refreshPeriod"`
	TargetUtilization int           `json:"targetUtilization"`
	// NumReplicas is the fixed replica count; 0 while autoscaling.
	NumReplicas int `json:"numReplicas"`

	// CPU and MemoryGB are requests; CPULimit and MemoryGBLimit are limits,
	// 0 meaning none.
	CPU           float64 `json:"cpu"`
	MemoryGB      float64 `json:"memoryGB"`
	CPULimit      float64 `json:"cpuLimit"`
	MemoryGBLimit float64 `json:"memoryGBLimit"`
	// GPUs is the number of whole GPUs per replica.
	GPUs int `json:"gpus"`

	// AuthMode is AuthKey, AuthToken or AuthNone.
	AuthMode string `json:"authMode"`

	AppInsightsEnabled    bool `json:"appInsightsEnabled"`
	DataCollectionEnabled bool `json:"dataCollectionEnabled"`
	// CollectRequests stores sampled request/response payloads at the rate
	// SamplingRate (0 < r ≤ 1).
	CollectRequests bool    `json:"collectRequests,omitempty"`
	SamplingRate    float64 `json:"samplingRate,omitempty"`

	ScoringTimeout                    time.Duration `json:"scoringTimeout"`
	MaxQueueWait                      time.Duration `json:"maxQueueWait"`
	MaxConcurrentRequestsPerContainer int           `json:"maxConcurrentRequestsPerContainer"`

	Liveness LivenessProbeSettings `json:"liveness"`

	Namespace   string            `json:"namespace,omitempty"`
	Description string            `json:"description,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	Properties  map[string]string `json:"properties,omitempty"`

	// Version holds the endpoint-version settings; nil for a service.
	Version *EndpointVersionSettings `json:"version,omitempty"`
}

// LivenessProbeSettings are the resolved liveness probe parameters.
type LivenessProbeSettings struct {
	Period           time.Duration `json:"period"`
	InitialDelay     time.Duration `json:"initialDelay"`
	Timeout          time.Duration `json:"timeout"`
	SuccessThreshold int           `json:"successThreshold"`
	FailureThreshold int           `json:"failureThreshold"`
}

// EndpointVersionSettings are the settings of an endpoint version that are
// not about running it (spec §4).
type EndpointVersionSettings struct {
	// Name is the version name; empty when the config did not give one
	// (the endpoint code chooses).
	Name string `json:"name,omitempty"`
	// TrafficPercentile is the configured share, 0-100 (default 0).
	TrafficPercentile float64 `json:"trafficPercentile"`
	// IsDefault and IsControl are nil when not given, so that the endpoint
	// code can tell "leave as is" from "false".
	IsDefault *bool `json:"isDefault,omitempty"`
	IsControl *bool `json:"isControl,omitempty"`
}

// DefaultServiceSettings returns the settings of a deployment whose config
// gives nothing but the compute type (canonical spelling). ACI services
// default to one fixed replica and no auth, as Azure's ACI does; all others
// autoscale 1..10 with key auth.
func DefaultServiceSettings(computeType string) *ServiceSettings {
	s := &ServiceSettings{
		ComputeType:                       computeType,
		AutoscaleEnabled:                  true,
		MinReplicas:                       DefaultMinReplicas,
		MaxReplicas:                       DefaultMaxReplicas,
		RefreshPeriod:                     DefaultRefreshPeriod,
		TargetUtilization:                 DefaultTargetUtilization,
		CPU:                               DefaultCPU,
		MemoryGB:                          DefaultMemoryGB,
		GPUs:                              DefaultGPUs,
		AuthMode:                          AuthKey,
		ScoringTimeout:                    DefaultServiceScoringTimeout,
		MaxQueueWait:                      DefaultMaxQueueWait,
		MaxConcurrentRequestsPerContainer: DefaultMaxConcurrentRequestsPerContainer,
		Liveness: LivenessProbeSettings{
			Period:           DefaultProbePeriod,
			InitialDelay:     DefaultProbeInitialDelay,
			Timeout:          DefaultProbeTimeout,
			SuccessThreshold: DefaultProbeSuccessThreshold,
			FailureThreshold: DefaultProbeFailureThreshold,
		},
	}
	switch computeType {
	case ComputeTypeACI:
		s.AutoscaleEnabled = false
		s.NumReplicas = 1
		s.AuthMode = AuthNone
	case ComputeTypeAKSEndpoint:
		s.Version = &EndpointVersionSettings{}
	}
	return s
}

// Autoscale returns the autoscaler parameters, or nil when the replica count
// is fixed.
func (s *ServiceSettings) Autoscale() *AutoscaleSettings {
	if !s.AutoscaleEnabled {
		return nil
	}
	return &AutoscaleSettings{
		MinReplicas:       s.MinReplicas,
		MaxReplicas:       s.MaxReplicas,
		RefreshPeriod:     s.RefreshPeriod,
		TargetUtilization: s.TargetUtilization,
		ScaleDownDelay:    DefaultScaleDownDelay,
	}
}

// Clone returns a deep copy.
func (s *ServiceSettings) Clone() *ServiceSettings {
	c := *s
	c.Tags = cfgCloneMap(s.Tags)
	c.Properties = cfgCloneMap(s.Properties)
	if s.Version != nil {
		v := *s.Version
		v.IsDefault = cfgCloneBool(s.Version.IsDefault)
		v.IsControl = cfgCloneBool(s.Version.IsControl)
		c.Version = &v
	}
	return &c
}

func cfgCloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func cfgCloneBool(b *bool) *bool {
	if b == nil {
		return nil
	}
	v := *b
	return &v
}

// NormalizeComputeType returns the canonical spelling of a computeType value
// (matched case-insensitively) or an EINVALID error listing the allowed
// values.
func NormalizeComputeType(s string) (string, error) {
	for _, ct := range KnownComputeTypes {
		if strings.EqualFold(s, ct) {
			return ct, nil
		}
	}
	return "", Errorf(EINVALID, "%s", cfgComputeTypeProblem(s))
}

func cfgComputeTypeProblem(s string) string {
	return fmt.Sprintf("computeType %q is not supported; use \"aks\" or \"local\" for a service, \"AKSENDPOINT\" for an endpoint version, or \"aci\" (any letter case)", s)
}

// ParseDeploymentConfig parses a deploymentconfig.json. It reports every
// unknown key with its JSON path (and a suggestion when one is close) and
// every value of the wrong JSON type, all in one EINVALID error. It does not
// check the rules between fields: call Validate or Resolve for that.
//
// Two names Azure uses on the wire are accepted for the file's own keys:
// aadAuthEnabled for tokenAuthEnabled, and containerResourceRequirements.gpu
// for gpuCores.
func ParseDeploymentConfig(data []byte) (*DeploymentConfig, error) {
	root, err := cfgDecodeObject(data, "deployment config")
	if err != nil {
		return nil, err
	}
	var p cfgProblems
	cfgMoveAlias(root, root, "aadAuthEnabled", "tokenAuthEnabled", "aadAuthEnabled", "tokenAuthEnabled", &p)
	if crr, ok := root["containerResourceRequirements"].(map[string]any); ok {
		cfgMoveAlias(crr, root, "gpu", "gpuCores", "containerResourceRequirements.gpu", "gpuCores", &p)
	}
	s := cfgSchemaWalker{kwargs: cfgPythonKwargs, all: cfgAllPaths(reflect.TypeOf(DeploymentConfig{}), "")}
	s.walk("", root, reflect.TypeOf(DeploymentConfig{}), &p)
	if err := p.err("deployment config"); err != nil {
		return nil, err
	}
	var c DeploymentConfig
	if err := cfgRemarshal(root, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// cfgPythonKwargs maps the Python keyword arguments of
// AksWebservice.deploy_configuration to JSON paths, for suggestions.
var cfgPythonKwargs = map[string]string{
	"autoscale_enabled":               "autoScaler.autoscaleEnabled",
	"autoscale_min_replicas":          "autoScaler.minReplicas",
	"autoscale_max_replicas":          "autoScaler.maxReplicas",
	"autoscale_refresh_seconds":       "autoScaler.refreshPeriodInSeconds",
	"autoscale_target_utilization":    "autoScaler.targetUtilization",
	"collect_model_data":              "dataCollection.storageEnabled",
	"auth_enabled":                    "authEnabled",
	"token_auth_enabled":              "tokenAuthEnabled",
	"cpu_cores":                       "containerResourceRequirements.cpu",
	"memory_gb":                       "containerResourceRequirements.memoryInGB",
	"cpu_cores_limit":                 "containerResourceRequirements.cpuLimit",
	"memory_gb_limit":                 "containerResourceRequirements.memoryInGBLimit",
	"gpu_cores":                       "gpuCores",
	"enable_app_insights":             "appInsightsEnabled",
	"scoring_timeout_ms":              "scoringTimeoutMs",
	"replica_max_concurrent_requests": "maxConcurrentRequestsPerContainer",
	"max_request_wait_time":           "maxQueueWaitMs",
	"num_replicas":                    "numReplicas",
	"primary_key":                     "keys.primaryKey",
	"secondary_key":                   "keys.secondaryKey",
	"period_seconds":                  "livenessProbeRequirements.periodSeconds",
	"initial_delay_seconds":           "livenessProbeRequirements.initialDelaySeconds",
	"timeout_seconds":                 "livenessProbeRequirements.timeoutSeconds",
	"success_threshold":               "livenessProbeRequirements.successThreshold",
	"failure_threshold":               "livenessProbeRequirements.failureThreshold",
	"compute_target_name":             "computeTargetName",
	"version_name":                    "versionName",
	"traffic_percentile":              "trafficPercentile",
	"is_default":                      "isDefault",
	"is_control_version_type":         "isControlVersionType",
	"dns_name_label":                  "dnsNameLabel",
	"ssl_enabled":                     "sslEnabled",
}

// Validate checks every rule of spec §1.2 (and modelship's bounds) and
// returns all problems at once in one EINVALID error, one problem per line,
// each naming the JSON field and what is allowed.
func (c *DeploymentConfig) Validate() error {
	var p cfgProblems
	ct := ""
	if c.ComputeType == nil || *c.ComputeType == "" {
		p.add("computeType is required; use \"aks\" or \"local\" for a service, \"AKSENDPOINT\" for an endpoint version, or \"aci\"")
	} else if n, err := NormalizeComputeType(*c.ComputeType); err != nil {
		p.add("%s", cfgComputeTypeProblem(*c.ComputeType))
	} else {
		ct = n
	}
	c.checkFields(ct, &p)
	base := DefaultServiceSettings(ct)
	c.checkCreateCombinations(base, &p)
	c.checkMerged(base, "default", &p)
	return p.err("deployment config")
}

// Resolve validates the config and returns the settings a new deployment
// runs with: the given fields over the defaults of its compute type.
// Keys are not part of the settings; read them from c.Keys.
func (c *DeploymentConfig) Resolve() (*ServiceSettings, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	ct, _ := NormalizeComputeType(*c.ComputeType)
	s := DefaultServiceSettings(ct)
	// On create, turning token auth on implies key auth off unless the
	// file says otherwise (which Validate rejects).
	if cfgIsTrue(c.TokenAuthEnabled) && c.AuthEnabled == nil {
		s.AuthMode = AuthNone
	}
	c.applyTo(s)
	return s, nil
}

// Warnings lists what the config asks for that has no effect in modelship,
// so that the CLI can print it. It assumes a config that parsed.
func (c *DeploymentConfig) Warnings() []string {
	var w []string
	aci := func(field string, given bool) {
		if given {
			w = append(w, fmt.Sprintf("%s has no effect: it is an Azure Container Instances setting (region, DNS, TLS, key vault and network are the gateway's and the host's business here)", field))
		}
	}
	aci("location", c.Location != nil)
	aci("dnsNameLabel", c.DNSNameLabel != nil)
	aci("sslEnabled", c.SSLEnabled != nil)
	aci("sslCertificate", c.SSLCertificate != nil)
	aci("sslKey", c.SSLKey != nil)
	aci("cname", c.CName != nil)
	aci("vaultBaseUrl", c.VaultBaseURL != nil)
	aci("keyName", c.KeyName != nil)
	aci("keyVersion", c.KeyVersion != nil)
	aci("vnetName", c.VnetName != nil)
	aci("subnetName", c.SubnetName != nil)
	if c.Port != nil {
		w = append(w, "port has no effect: services are reached through the gateway at /api/v1/service/<name>/score, not on a port of their own")
	}
	if c.DataCollection != nil && c.DataCollection.EventHubEnabled != nil {
		w = append(w, "dataCollection.eventHubEnabled has no effect: collected data is written under the server's data dir (docs/data-collection.md)")
	}
	if cfgIsTrue(c.AppInsightsEnabled) {
		w = append(w, "appInsightsEnabled: there is no Application Insights here; each request is recorded as a JSON line under <data-dir>/telemetry/<workspace>/<service>/ (docs/data-collection.md), metrics are on /metrics and print() output is in the service logs")
	}
	if c.ScoringTimeoutMs != nil && *c.ScoringTimeoutMs > AzureMaxScoringTimeoutMs && *c.ScoringTimeoutMs <= MaxScoringTimeoutMs {
		w = append(w, fmt.Sprintf("scoringTimeoutMs %d is above Azure's limit of %d; modelship accepts it, Azure would not", *c.ScoringTimeoutMs, AzureMaxScoringTimeoutMs))
	}
	if c.Keys != nil && (c.Keys.PrimaryKey != nil || c.Keys.SecondaryKey != nil) {
		key := true
		if ct, err := NormalizeComputeType(cfgDeref(c.ComputeType)); err == nil && ct == ComputeTypeACI {
			key = false
		}
		if c.AuthEnabled != nil {
			key = *c.AuthEnabled
		}
		if cfgIsTrue(c.TokenAuthEnabled) || !key {
			w = append(w, "keys are stored but not used: key auth is off for this deployment (authEnabled)")
		}
	}
	return w
}

// checkFields checks each field on its own: ranges, formats, and fields that
// belong to another compute type. ct is the canonical compute type, or ""
// when unknown (then the compute-type-specific checks are skipped).
func (c *DeploymentConfig) checkFields(ct string, p *cfgProblems) {
	if r := c.ContainerResourceRequirements; r != nil {
		cfgPositiveFloat(p, "containerResourceRequirements.cpu", r.CPU, "CPU cores, e.g. 0.5")
		cfgPositiveFloat(p, "containerResourceRequirements.memoryInGB", r.MemoryInGB, "gigabytes, e.g. 1.5")
		cfgPositiveFloat(p, "containerResourceRequirements.cpuLimit", r.CPULimit, "CPU cores, at least containerResourceRequirements.cpu")
		cfgPositiveFloat(p, "containerResourceRequirements.memoryInGBLimit", r.MemoryInGBLimit, "gigabytes, at least containerResourceRequirements.memoryInGB")
	}
	if d := c.DataCollection; d != nil && d.SamplingRate != nil && (*d.SamplingRate <= 0 || *d.SamplingRate > 1 || math.IsNaN(*d.SamplingRate)) {
		p.add("dataCollection.samplingRate is %g; use a share above 0 and at most 1, e.g. 0.1 for one request in ten", *d.SamplingRate)
	}
	if c.GPUCores != nil && *c.GPUCores < 0 {
		p.add("gpuCores is %d; use a whole number of GPUs, 0 or more", *c.GPUCores)
	}
	cfgIntRange(p, "scoringTimeoutMs", c.ScoringTimeoutMs, 1, MaxScoringTimeoutMs, "milliseconds")
	cfgIntRange(p, "maxConcurrentRequestsPerContainer", c.MaxConcurrentRequests, 1, math.MaxInt32, "")
	cfgIntRange(p, "maxQueueWaitMs", c.MaxQueueWaitMs, 1, MaxQueueWaitMs, "milliseconds")
	cfgIntRange(p, "numReplicas", c.NumReplicas, 1, math.MaxInt32, "")
	if a := c.AutoScaler; a != nil {
		cfgIntRange(p, "autoScaler.minReplicas", a.MinReplicas, 1, math.MaxInt32, "")
		cfgIntRange(p, "autoScaler.maxReplicas", a.MaxReplicas, 1, math.MaxInt32, "")
		cfgIntRange(p, "autoScaler.refreshPeriodInSeconds", a.RefreshPeriodInSeconds, 1, MaxSeconds, "seconds")
		cfgIntRange(p, "autoScaler.targetUtilization", a.TargetUtilization, 1, 100, "percent")
	}
	if l := c.LivenessProbeRequirements; l != nil {
		cfgIntRange(p, "livenessProbeRequirements.periodSeconds", l.PeriodSeconds, 1, MaxSeconds, "seconds")
		cfgIntRange(p, "livenessProbeRequirements.initialDelaySeconds", l.InitialDelaySeconds, 1, MaxSeconds, "seconds")
		cfgIntRange(p, "livenessProbeRequirements.timeoutSeconds", l.TimeoutSeconds, 1, MaxSeconds, "seconds")
		cfgIntRange(p, "livenessProbeRequirements.successThreshold", l.SuccessThreshold, 1, math.MaxInt32, "")
		cfgIntRange(p, "livenessProbeRequirements.failureThreshold", l.FailureThreshold, 1, math.MaxInt32, "")
	}
	if c.Namespace != nil && !cfgNamespaceRE.MatchString(*c.Namespace) {
		p.add("namespace %q is invalid; use 1 to 63 lowercase letters, digits and '-', starting and ending with a letter or digit (a Kubernetes DNS label)", *c.Namespace)
	}
	if c.ComputeTargetName != nil {
		n := *c.ComputeTargetName
		if len(n) < 3 || len(n) > 24 || !cfgComputeNameRE.MatchString(n) {
			p.add("computeTargetName %q is invalid; use 3 to 24 letters, digits and '-', starting with a letter and ending with a letter or digit", n)
		}
	}
	if cfgIsTrue(c.AuthEnabled) && cfgIsTrue(c.TokenAuthEnabled) {
		p.add("authEnabled and tokenAuthEnabled are both true; key auth and token auth are mutually exclusive, set one of them to false")
	}
	if k := c.Keys; k != nil {
		cfgKeyProblem(p, "keys.primaryKey", k.PrimaryKey)
		cfgKeyProblem(p, "keys.secondaryKey", k.SecondaryKey)
	}
	if c.Description != nil && len(*c.Description) > MaxDescriptionLen {
		p.add("description is %d characters long; at most %d are allowed", len(*c.Description), MaxDescriptionLen)
	}
	if err := ValidateTags("tag", c.Tags); err != nil {
		p.add("tags: %s", ErrorMessage(err))
	}
	if err := ValidateTags("property", c.Properties); err != nil {
		p.add("properties: %s", ErrorMessage(err))
	}

	// Endpoint version fields.
	if c.VersionName != nil {
		if msg := cfgServiceNameProblem("versionName", *c.VersionName); msg != "" {
			p.add("%s", msg)
		}
	}
	if c.TrafficPercentile != nil && (*c.TrafficPercentile < 0 || *c.TrafficPercentile > 100) {
		p.add("trafficPercentile is %v; use a number from 0 to 100", *c.TrafficPercentile)
	}
	if c.Type != nil {
		t, ok := cfgNormalizeVersionType(*c.Type)
		if !ok {
			p.add("type %q is invalid; use %q or %q", *c.Type, VersionTypeControl, VersionTypeTreatment)
		} else if c.IsControlVersionType != nil && *c.IsControlVersionType != (t == VersionTypeControl) {
			p.add("type %q contradicts isControlVersionType %v; give one of them, or make them agree", *c.Type, *c.IsControlVersionType)
		}
	}
	if ct == "" {
		return
	}
	if ct != ComputeTypeAKSEndpoint {
		for _, f := range []struct {
			name  string
			given bool
		}{
			{"versionName", c.VersionName != nil},
			{"trafficPercentile", c.TrafficPercentile != nil},
			{"isDefault", c.IsDefault != nil},
			{"isControlVersionType", c.IsControlVersionType != nil},
			{"type", c.Type != nil},
		} {
			if f.given {
				p.add("%s is only for endpoint versions; set computeType to \"AKSENDPOINT\" or remove %s", f.name, f.name)
			}
		}
	}
	if c.Port != nil && (*c.Port < 0 || *c.Port > 65535) {
		p.add("port is %d; use 0 to 65535", *c.Port)
	}
}

// checkCreateCombinations checks the rules of spec §1.2 that depend on
// several fields of a new deployment.
func (c *DeploymentConfig) checkCreateCombinations(base *ServiceSettings, p *cfgProblems) {
	var enabled *bool
	if c.AutoScaler != nil {
		enabled = c.AutoScaler.AutoscaleEnabled
	}
	if cfgIsTrue(enabled) && c.NumReplicas != nil {
		p.add("autoScaler.autoscaleEnabled is true and numReplicas is given; use autoscaling (autoScaler.minReplicas..maxReplicas) or a fixed numReplicas, not both")
	}
	if enabled != nil && !*enabled && c.NumReplicas == nil {
		p.add("autoScaler.autoscaleEnabled is false but numReplicas is not given; give numReplicas (1 or more) for a fixed number of replicas")
	}
	if !cfgIsTrue(enabled) {
		if given := c.autoscaleParamsGiven(); len(given) > 0 {
			p.add("%s given without enabling autoscaling; set autoScaler.autoscaleEnabled to true (and leave out numReplicas)", strings.Join(given, ", "))
		}
	}
}

// autoscaleParamsGiven lists the autoscaler parameters the config gives.
func (c *DeploymentConfig) autoscaleParamsGiven() []string {
	a := c.AutoScaler
	if a == nil {
		return nil
	}
	var given []string
	for _, f := range []struct {
		name string
		v    *int
	}{
		{"autoScaler.minReplicas", a.MinReplicas},
		{"autoScaler.maxReplicas", a.MaxReplicas},
		{"autoScaler.refreshPeriodInSeconds", a.RefreshPeriodInSeconds},
		{"autoScaler.targetUtilization", a.TargetUtilization},
	} {
		if f.v != nil {
			given = append(given, f.name)
		}
	}
	return given
}

// checkMerged checks the relations between values that may come from the
// config or from base (the defaults on create, the current settings on
// update; label says which): limits at least the requests, min at most max.
func (c *DeploymentConfig) checkMerged(base *ServiceSettings, label string, p *cfgProblems) {
	if r := c.ContainerResourceRequirements; r != nil {
		cfgLimitCheck(p, "cpu", r.CPU, base.CPU, r.CPULimit, base.CPULimit, label)
		cfgLimitCheck(p, "memoryInGB", r.MemoryInGB, base.MemoryGB, r.MemoryInGBLimit, base.MemoryGBLimit, label)
	}
	if a := c.AutoScaler; a != nil && (a.MinReplicas != nil || a.MaxReplicas != nil) {
		lo, loSrc := cfgIntOr(a.MinReplicas, base.MinReplicas, label)
		hi, hiSrc := cfgIntOr(a.MaxReplicas, base.MaxReplicas, label)
		if lo > 0 && hi > 0 && lo > hi {
			p.add("autoScaler.minReplicas %s is greater than autoScaler.maxReplicas %s; minReplicas must be at most maxReplicas", loSrc, hiSrc)
		}
	}
}

func cfgLimitCheck(p *cfgProblems, name string, req *float64, baseReq float64, lim *float64, baseLim float64, label string) {
	if req == nil && lim == nil {
		return
	}
	rv, rs := cfgFloatOr(req, baseReq, label)
	lv, ls := cfgFloatOr(lim, baseLim, label)
	if lv <= 0 || rv <= 0 { // no limit, or already reported as not positive
		return
	}
	if lv < rv {
		p.add("containerResourceRequirements.%sLimit %s is less than containerResourceRequirements.%s %s; a limit must be at least the request", name, ls, name, rs)
	}
}

// applyTo writes the given fields of c onto s. Auth and autoscale follow the
// rules already validated: numReplicas fixes the count, autoscaleEnabled
// true clears it.
func (c *DeploymentConfig) applyTo(s *ServiceSettings) {
	if a := c.AutoScaler; a != nil {
		cfgSetInt(&s.MinReplicas, a.MinReplicas)
		cfgSetInt(&s.MaxReplicas, a.MaxReplicas)
		if a.RefreshPeriodInSeconds != nil {
			s.RefreshPeriod = time.Duration(*a.RefreshPeriodInSeconds) * time.Second
		}
		cfgSetInt(&s.TargetUtilization, a.TargetUtilization)
	}
	if c.NumReplicas != nil {
		s.NumReplicas = *c.NumReplicas
		s.AutoscaleEnabled = false
	}
	if c.AutoScaler != nil && c.AutoScaler.AutoscaleEnabled != nil {
		s.AutoscaleEnabled = *c.AutoScaler.AutoscaleEnabled
		if s.AutoscaleEnabled {
			s.NumReplicas = 0
		}
	}
	if r := c.ContainerResourceRequirements; r != nil {
		cfgSetFloat(&s.CPU, r.CPU)
		cfgSetFloat(&s.MemoryGB, r.MemoryInGB)
		cfgSetFloat(&s.CPULimit, r.CPULimit)
		cfgSetFloat(&s.MemoryGBLimit, r.MemoryInGBLimit)
	}
	cfgSetInt(&s.GPUs, c.GPUCores)
	token, key := s.AuthMode == AuthToken, s.AuthMode == AuthKey
	if c.TokenAuthEnabled != nil {
		token = *c.TokenAuthEnabled
	}
	if c.AuthEnabled != nil {
		key = *c.AuthEnabled
	}
	switch {
	case token:
		s.AuthMode = AuthToken
	case key:
		s.AuthMode = AuthKey
	default:
		s.AuthMode = AuthNone
	}
	if c.AppInsightsEnabled != nil {
		s.AppInsightsEnabled = *c.AppInsightsEnabled
	}
	if c.DataCollection != nil && c.DataCollection.StorageEnabled != nil {
		s.DataCollectionEnabled = *c.DataCollection.StorageEnabled
	}
	if c.DataCollection != nil && c.DataCollection.CollectRequests != nil {
		s.CollectRequests = *c.DataCollection.CollectRequests
	}
	if c.DataCollection != nil && c.DataCollection.SamplingRate != nil {
		s.SamplingRate = *c.DataCollection.SamplingRate
	}
	if c.ScoringTimeoutMs != nil {
		s.ScoringTimeout = time.Duration(*c.ScoringTimeoutMs) * time.Millisecond
	}
	if c.MaxQueueWaitMs != nil {
		s.MaxQueueWait = time.Duration(*c.MaxQueueWaitMs) * time.Millisecond
	}
	cfgSetInt(&s.MaxConcurrentRequestsPerContainer, c.MaxConcurrentRequests)
	if l := c.LivenessProbeRequirements; l != nil {
		cfgSetSeconds(&s.Liveness.Period, l.PeriodSeconds)
		cfgSetSeconds(&s.Liveness.InitialDelay, l.InitialDelaySeconds)
		cfgSetSeconds(&s.Liveness.Timeout, l.TimeoutSeconds)
		cfgSetInt(&s.Liveness.SuccessThreshold, l.SuccessThreshold)
		cfgSetInt(&s.Liveness.FailureThreshold, l.FailureThreshold)
	}
	if c.Namespace != nil {
		s.Namespace = *c.Namespace
	}
	if c.Description != nil {
		s.Description = *c.Description
	}
	if c.Tags != nil {
		s.Tags = cfgCloneMap(c.Tags) // tags replace all tags, as in Azure
	}
	if c.Properties != nil {
		if s.Properties == nil {
			s.Properties = map[string]string{}
		}
		for k, v := range c.Properties { // properties are add-only
			s.Properties[k] = v
		}
	}
	if s.Version != nil {
		if c.VersionName != nil {
			s.Version.Name = *c.VersionName
		}
		if c.TrafficPercentile != nil {
			s.Version.TrafficPercentile = *c.TrafficPercentile
		}
		if c.IsDefault != nil {
			s.Version.IsDefault = cfgCloneBool(c.IsDefault)
		}
		if c.IsControlVersionType != nil {
			s.Version.IsControl = cfgCloneBool(c.IsControlVersionType)
		} else if c.Type != nil {
			t, _ := cfgNormalizeVersionType(*c.Type)
			b := t == VersionTypeControl
			s.Version.IsControl = &b
		}
	}
}

// cfgUpdatableFields lists the keys an update may give, for the "nothing to
// update" message.
const cfgUpdatableFields = "autoScaler.*, numReplicas, containerResourceRequirements.*, gpuCores, authEnabled, tokenAuthEnabled, appInsightsEnabled, dataCollection.storageEnabled, scoringTimeoutMs, maxConcurrentRequestsPerContainer, maxQueueWaitMs, livenessProbeRequirements.*, namespace, description, tags, properties (and for endpoint versions trafficPercentile, isDefault, isControlVersionType)"

// ApplyUpdate returns s with the fields given in u applied (spec §3.4); s is
// not changed. Only given fields change. The result is re-validated with the
// update rules: a new request is compared with the existing limit and vice
// versa; switching between key and token auth needs the other one turned off
// explicitly in the same update; switching between autoscaling and a fixed
// numReplicas needs autoScaler.autoscaleEnabled in the same update. An update
// that gives nothing returns "No parameters provided to update". Keys cannot
// be updated (use regen-key); computeType and computeTargetName may be
// repeated but not changed; versionName may not change.
func (s *ServiceSettings) ApplyUpdate(u *DeploymentConfig) (*ServiceSettings, error) {
	if u == nil || !u.hasUpdateParameters() {
		return nil, Errorf(EINVALID, "No parameters provided to update; give at least one of %s", cfgUpdatableFields)
	}
	var p cfgProblems
	if u.ComputeType != nil {
		if ct, err := NormalizeComputeType(*u.ComputeType); err != nil {
			p.add("%s", cfgComputeTypeProblem(*u.ComputeType))
		} else if ct != s.ComputeType {
			p.add("computeType cannot change from %q to %q in an update; delete the deployment and deploy it again", s.ComputeType, ct)
		}
	}
	if u.Keys != nil {
		p.add("keys cannot be changed by an update; use regen-key (for example `modelship service regen-key <name> --key Primary --value <key>`)")
	}
	u.checkFields(s.ComputeType, &p)
	if u.VersionName != nil && s.Version != nil && s.Version.Name != "" && *u.VersionName != s.Version.Name {
		p.add("versionName cannot change from %q to %q; a version is renamed by creating a new one", s.Version.Name, *u.VersionName)
	}

	// Autoscale switching.
	var enabled *bool
	if u.AutoScaler != nil {
		enabled = u.AutoScaler.AutoscaleEnabled
	}
	switch {
	case cfgIsTrue(enabled) && u.NumReplicas != nil:
		p.add("autoScaler.autoscaleEnabled is true and numReplicas is given; use autoscaling (autoScaler.minReplicas..maxReplicas) or a fixed numReplicas, not both")
	case enabled != nil && !*enabled && u.NumReplicas == nil && s.AutoscaleEnabled:
		p.add("autoScaler.autoscaleEnabled is false but numReplicas is not given; the service autoscales now, so give numReplicas (1 or more) for a fixed number of replicas")
	case u.NumReplicas != nil && enabled == nil && s.AutoscaleEnabled:
		p.add("numReplicas is given but the service autoscales; set autoScaler.autoscaleEnabled to false in the same update to switch to a fixed number of replicas")
	}
	willAutoscale := s.AutoscaleEnabled
	if enabled != nil {
		willAutoscale = *enabled
	}
	if !willAutoscale {
		if given := u.autoscaleParamsGiven(); len(given) > 0 {
			p.add("%s given but autoscaling is off; set autoScaler.autoscaleEnabled to true in the same update (numReplicas is then dropped)", strings.Join(given, ", "))
		}
	}

	// Auth switching.
	if cfgIsTrue(u.TokenAuthEnabled) && u.AuthEnabled == nil && s.AuthMode == AuthKey {
		p.add("tokenAuthEnabled cannot be turned on while key auth is on; pass authEnabled: false in the same update (key and token auth are mutually exclusive)")
	}
	if cfgIsTrue(u.AuthEnabled) && u.TokenAuthEnabled == nil && s.AuthMode == AuthToken {
		p.add("authEnabled cannot be turned on while token auth is on; pass tokenAuthEnabled: false in the same update (key and token auth are mutually exclusive)")
	}

	// Properties are add-only.
	for _, k := range cfgSortedKeys(u.Properties) {
		if old, ok := s.Properties[k]; ok && old != u.Properties[k] {
			p.add("properties.%s is already %q; properties are add-only, an existing one cannot change", k, old)
		}
	}
	u.checkMerged(s, "current value", &p)
	if err := p.err("update"); err != nil {
		return nil, err
	}
	n := s.Clone()
	u.applyTo(n)
	return n, nil
}

// hasUpdateParameters reports whether u gives anything an update can apply
// (computeType and computeTargetName only identify the target).
func (u *DeploymentConfig) hasUpdateParameters() bool {
	v := *u
	v.ComputeType, v.ComputeTargetName = nil, nil
	return !reflect.ValueOf(v).IsZero()
}

func cfgNormalizeVersionType(s string) (string, bool) {
	for _, t := range []string{VersionTypeControl, VersionTypeTreatment} {
		if strings.EqualFold(s, t) {
			return t, true
		}
	}
	return "", false
}

func cfgKeyProblem(p *cfgProblems, field string, k *string) {
	if k == nil {
		return
	}
	if msg := keyProblem(field, *k); msg != "" {
		p.add("%s", msg)
	}
}

// ValidateKey checks a user-chosen service key, from a deployment config
// (keys.primaryKey) or `service regen-key --set-key`: 1 to MaxKeyLen
// printable ASCII characters without spaces. field names it in the error.
func ValidateKey(field, key string) error {
	if msg := keyProblem(field, key); msg != "" {
		return Errorf(EINVALID, "%s", msg)
	}
	return nil
}

func keyProblem(field, k string) string {
	if k == "" || len(k) > MaxKeyLen {
		return fmt.Sprintf("%s must be 1 to %d characters long, got %d", field, MaxKeyLen, len(k))
	}
	for _, r := range k {
		if r <= ' ' || r >= 0x7f {
			return fmt.Sprintf("%s contains a space, control or non-ASCII character; use printable ASCII only (the key is sent in an Authorization header)", field)
		}
	}
	return ""
}

func cfgPositiveFloat(p *cfgProblems, field string, v *float64, what string) {
	if v != nil && !(*v > 0) {
		p.add("%s is %v; it must be greater than 0 (%s)", field, *v, what)
	}
}

func cfgIntRange(p *cfgProblems, field string, v *int, lo, hi int, unit string) {
	if v == nil || (*v >= lo && *v <= hi) {
		return
	}
	if unit != "" {
		unit = " " + unit
	}
	if hi == math.MaxInt32 {
		if *v < lo {
			p.add("%s is %d; use a whole number, %d or more", field, *v, lo)
		} else {
			p.add("%s is %d; use a whole number, at most %d", field, *v, hi)
		}
		return
	}
	p.add("%s is %d; use a whole number from %d to %d%s", field, *v, lo, hi, unit)
}

func cfgIntOr(v *int, fallback int, label string) (int, string) {
	if v != nil {
		return *v, strconv.Itoa(*v)
	}
	return fallback, fmt.Sprintf("%d (the %s)", fallback, label)
}

func cfgFloatOr(v *float64, fallback float64, label string) (float64, string) {
	if v != nil {
		return *v, strconv.FormatFloat(*v, 'g', -1, 64)
	}
	if fallback == 0 {
		return 0, "none"
	}
	return fallback, fmt.Sprintf("%s (the %s)", strconv.FormatFloat(fallback, 'g', -1, 64), label)
}

func cfgSetInt(dst *int, v *int) {
	if v != nil {
		*dst = *v
	}
}

func cfgSetFloat(dst *float64, v *float64) {
	if v != nil {
		*dst = *v
	}
}

func cfgSetSeconds(dst *time.Duration, v *int) {
	if v != nil {
		*dst = time.Duration(*v) * time.Second
	}
}

func cfgIsTrue(b *bool) bool { return b != nil && *b }

func cfgDeref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func cfgSortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// cfgProblems collects user-facing messages; err turns them into one EINVALID
// error, one problem per line.
type cfgProblems []string

func (p *cfgProblems) add(format string, args ...any) {
	*p = append(*p, fmt.Sprintf(format, args...))
}

func (p cfgProblems) err(what string) error {
	switch len(p) {
	case 0:
		return nil
	case 1:
		return Errorf(EINVALID, "%s", p[0])
	}
	return Errorf(EINVALID, "%d problems in the %s:\n  - %s", len(p), what, strings.Join(p, "\n  - "))
}

// cfgDecodeObject decodes data as one JSON object with numbers kept as
// json.Number. Syntax errors name the line and column.
func cfgDecodeObject(data []byte, what string) (map[string]any, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, Errorf(EINVALID, "the %s is empty; it must be a JSON object", what)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, cfgSyntaxError(data, what, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, Errorf(EINVALID, "the %s has more after its JSON object (at byte %d); give exactly one object", what, dec.InputOffset())
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, Errorf(EINVALID, "the %s must be a JSON object ({...}), not %s", what, cfgDescribeJSON(v))
	}
	return m, nil
}

func cfgSyntaxError(data []byte, what string, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line, col := cfgLineCol(data, se.Offset)
		return Errorf(EINVALID, "the %s is not valid JSON: %s (line %d, column %d)", what, se.Error(), line, col)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return Errorf(EINVALID, "the %s is not valid JSON: it ends too early", what)
	}
	return Errorf(EINVALID, "the %s is not valid JSON: %s", what, err.Error())
}

func cfgLineCol(data []byte, off int64) (int, int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	line, col := 1, 1
	for _, b := range data[:off] {
		if b == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return line, col
}

// cfgMoveAlias renames an alias key of obj to the canonical key of dst (which
// may be another object), reporting a problem when both are given.
func cfgMoveAlias(obj, dst map[string]any, alias, canonical, aliasPath, canonicalPath string, p *cfgProblems) {
	v, ok := obj[alias]
	if !ok {
		return
	}
	delete(obj, alias)
	if _, both := dst[canonical]; both {
		p.add("%s and %s are the same setting; give only %s", aliasPath, canonicalPath, canonicalPath)
		return
	}
	dst[canonical] = v
}

// cfgRemarshal fills dst from a checked generic object.
func cfgRemarshal(obj map[string]any, dst any) error {
	b, err := json.Marshal(obj)
	if err != nil {
		return Errorf(EINVALID, "cannot read the config: %v", err)
	}
	if err := json.Unmarshal(b, dst); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return Errorf(EINVALID, "%s: expected %s, got %s", te.Field, te.Type, te.Value)
		}
		return Errorf(EINVALID, "cannot read the config: %v", err)
	}
	return nil
}

// cfgSchemaWalker checks a decoded JSON object against a Go struct type: every
// key must be a field's json name (exact case) and every value of the
// field's JSON type.
type cfgSchemaWalker struct {
	kwargs map[string]string // Python names to JSON paths, for suggestions
	all    []string          // every known JSON path, for suggestions
}

var cfgRawMessageType = reflect.TypeOf(json.RawMessage(nil))

func (s *cfgSchemaWalker) walk(path string, v any, t reflect.Type, p *cfgProblems) any {
	if v == nil { // null means "not given", as None does in Azure's SDK
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == cfgRawMessageType {
		return v
	}
	switch t.Kind() {
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			p.add("%s: expected true or false, got %s", path, cfgDescribeJSON(v))
		}
	case reflect.String:
		if _, ok := v.(string); !ok {
			p.add("%s: expected a string, got %s", path, cfgDescribeJSON(v))
		}
	case reflect.Int:
		n, ok := v.(json.Number)
		if !ok {
			p.add("%s: expected a whole number, got %s", path, cfgDescribeJSON(v))
			return v
		}
		if _, err := strconv.ParseInt(string(n), 10, 64); err == nil {
			return v
		}
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			p.add("%s: expected a whole number, got %s", path, n)
			return v
		}
		return json.Number(strconv.FormatInt(int64(f), 10)) // 2.0 or 1e3 is a whole number
	case reflect.Float64:
		n, ok := v.(json.Number)
		if !ok {
			p.add("%s: expected a number, got %s", path, cfgDescribeJSON(v))
			return v
		}
		if _, err := strconv.ParseFloat(string(n), 64); err != nil {
			p.add("%s: the number %s is out of range", path, n)
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			p.add("%s: expected an object of string values, got %s", path, cfgDescribeJSON(v))
			return v
		}
		for _, k := range cfgSortedKeys(m) {
			if _, ok := m[k].(string); !ok {
				p.add("%s.%s: expected a string, got %s", path, k, cfgDescribeJSON(m[k]))
			}
		}
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			p.add("%s: expected an object ({...}), got %s", path, cfgDescribeJSON(v))
			return v
		}
		fields := cfgJsonFields(t)
		for _, k := range cfgSortedKeys(m) {
			full := cfgJoinPath(path, k)
			f, ok := fields[k]
			if !ok {
				p.add("%s", s.unknown(full, k, fields))
				continue
			}
			m[k] = s.walk(full, m[k], f.Type, p)
		}
	}
	return v
}

// unknown describes an unknown key with a suggestion when one is close: a
// key of the same object within a small edit distance, the same name in
// another object, or the JSON name of an Azure SDK keyword argument.
func (s *cfgSchemaWalker) unknown(full, key string, fields map[string]reflect.StructField) string {
	msg := fmt.Sprintf("unknown field %q", full)
	if js, ok := s.kwargs[strings.ToLower(key)]; ok {
		return msg + fmt.Sprintf(" — did you mean %q? (JSON keys are camelCase)", js)
	}
	norm := cfgNormalizeKey(key)
	for _, path := range s.all { // the same name in another object
		last := path[strings.LastIndex(path, ".")+1:]
		if cfgNormalizeKey(last) == norm && path != full {
			return msg + fmt.Sprintf(" — did you mean %q?", path)
		}
	}
	words := cfgWordSet(key)
	for _, name := range cfgSortedKeys(fields) { // the same words in another order
		if cfgWordSet(name) == words {
			return msg + fmt.Sprintf(" — did you mean %q?", name)
		}
	}
	best, bestD := "", 1<<30
	for name := range fields {
		d := cfgEditDistance(norm, cfgNormalizeKey(name))
		if d < bestD || (d == bestD && name < best) {
			best, bestD = name, d
		}
	}
	if best != "" && (bestD <= 2 || bestD*3 <= len(key)) && bestD < len(key) {
		return msg + fmt.Sprintf(" — did you mean %q?", best)
	}
	for _, name := range cfgSortedKeys(fields) { // a truncated name
		if len(norm) >= 3 && strings.HasPrefix(cfgNormalizeKey(name), norm) {
			return msg + fmt.Sprintf(" — did you mean %q?", name)
		}
	}
	return msg
}

// cfgWordSet returns the words of a camelCase or snake_case key, lowered,
// without a past-tense "d", sorted: enableAppInsights and
// appInsightsEnabled give the same set.
func cfgWordSet(key string) string {
	var words []string
	start := 0
	flush := func(end int) {
		if end > start {
			w := strings.ToLower(key[start:end])
			if strings.HasSuffix(w, "ed") {
				w = w[:len(w)-1]
			}
			words = append(words, w)
		}
	}
	for i, r := range key {
		switch {
		case r == '_' || r == '-':
			flush(i)
			start = i + 1
		case r >= 'A' && r <= 'Z' && i > start:
			flush(i)
			start = i
		}
	}
	flush(len(key))
	sort.Strings(words)
	return strings.Join(words, " ")
}

func cfgNormalizeKey(s string) string {
	return strings.ToLower(strings.ReplaceAll(s, "_", ""))
}

func cfgJoinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// cfgJsonFields maps the json names of t's fields to the fields.
func cfgJsonFields(t reflect.Type) map[string]reflect.StructField {
	m := make(map[string]reflect.StructField, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = f
	}
	return m
}

// cfgAllPaths lists every JSON path of a struct type, for suggestions.
func cfgAllPaths(t reflect.Type, prefix string) []string {
	var out []string
	for name, f := range cfgJsonFields(t) {
		path := cfgJoinPath(prefix, name)
		out = append(out, path)
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct {
			out = append(out, cfgAllPaths(ft, path)...)
		}
	}
	sort.Strings(out)
	return out
}

// cfgDescribeJSON names a decoded JSON value for a type error.
func cfgDescribeJSON(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return fmt.Sprintf("%v", x)
	case json.Number:
		return "the number " + string(x)
	case string:
		if len(x) > 40 {
			x = x[:40] + "..."
		}
		return fmt.Sprintf("the string %q", x)
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// cfgEditDistance is the Levenshtein distance between a and b.
func cfgEditDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
