package modelship_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/modelship/modelship"
)

func readTestdata(t testing.TB, dir, pattern string) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, pattern))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	if len(out) == 0 {
		t.Fatalf("no testdata/%s/%s files", dir, pattern)
	}
	return out
}

func mustResolve(t *testing.T, data string) *modelship.ServiceSettings {
	t.Helper()
	c, err := modelship.ParseDeploymentConfig([]byte(data))
	if err != nil {
		t.Fatalf("parse %s: %v", data, err)
	}
	s, err := c.Resolve()
	if err != nil {
		t.Fatalf("resolve %s: %v", data, err)
	}
	return s
}

// TestDeploymentConfig_Good parses, validates and resolves every
// testdata/deployconfig/*.good.json and checks the settings of each.
func TestDeploymentConfig_Good(t *testing.T) {
	checks := map[string]func(t *testing.T, s *modelship.ServiceSettings, c *modelship.DeploymentConfig){
		"azure-doc-example.good.json": func(t *testing.T, s *modelship.ServiceSettings, _ *modelship.DeploymentConfig) {
			a := s.Autoscale()
			want := &modelship.AutoscaleSettings{MinReplicas: 1, MaxReplicas: 3, RefreshPeriod: time.Second, TargetUtilization: 70, ScaleDownDelay: 60 * time.Second}
			if !reflect.DeepEqual(a, want) {
				t.Errorf("autoscale = %+v, want %+v", a, want)
			}
			if !s.DataCollectionEnabled || s.CPU != 0.5 || s.MemoryGB != 1 || s.AuthMode != modelship.AuthKey || s.NumReplicas != 0 {
				t.Errorf("settings = %+v", s)
			}
		},
		"notebook-fixed.good.json": func(t *testing.T, s *modelship.ServiceSettings, c *modelship.DeploymentConfig) {
			if s.AutoscaleEnabled || s.Autoscale() != nil || s.NumReplicas != 2 {
				t.Errorf("want 2 fixed replicas, got autoscale=%v num=%d", s.AutoscaleEnabled, s.NumReplicas)
			}
			if s.AuthMode != modelship.AuthToken {
				t.Errorf("auth = %q, want token", s.AuthMode)
			}
			if s.CPU != 1 || s.MemoryGB != 2 || s.CPULimit != 2 || s.MemoryGBLimit != 4 || s.GPUs != 0 {
				t.Errorf("resources = %+v", s)
			}
			if s.ScoringTimeout != 2*time.Minute || s.MaxQueueWait != time.Second || s.MaxConcurrentRequestsPerContainer != 2 {
				t.Errorf("timeouts = %v %v %d", s.ScoringTimeout, s.MaxQueueWait, s.MaxConcurrentRequestsPerContainer)
			}
			wantProbe := modelship.LivenessProbeSettings{Period: 5 * time.Second, InitialDelay: 30 * time.Second, Timeout: time.Second, SuccessThreshold: 1, FailureThreshold: 5}
			if s.Liveness != wantProbe {
				t.Errorf("liveness = %+v", s.Liveness)
			}
			if s.Namespace != "team-a" || s.Description != "diabetes model" || s.Tags["area"] != "diabetes" || s.Properties["owner"] != "ml-team" {
				t.Errorf("metadata = %+v", s)
			}
			if *c.Keys.PrimaryKey != "primary-key-1234" || *c.ComputeTargetName != "aks-cluster" {
				t.Errorf("keys/target not kept: %+v", c)
			}
		},
		"local.good.json": func(t *testing.T, s *modelship.ServiceSettings, _ *modelship.DeploymentConfig) {
			if s.ComputeType != modelship.ComputeTypeLocal || s.AuthMode != modelship.AuthKey || !s.AutoscaleEnabled {
				t.Errorf("local = %+v", s)
			}
		},
		"aci.good.json": func(t *testing.T, s *modelship.ServiceSettings, _ *modelship.DeploymentConfig) {
			if s.ComputeType != modelship.ComputeTypeACI || s.AuthMode != modelship.AuthKey || s.AutoscaleEnabled || s.NumReplicas != 1 || !s.AppInsightsEnabled {
				t.Errorf("aci = %+v", s)
			}
		},
		"endpoint.good.json": func(t *testing.T, s *modelship.ServiceSettings, _ *modelship.DeploymentConfig) {
			v := s.Version
			if v == nil || v.Name != "blue" || v.TrafficPercentile != 20 || v.IsDefault == nil || !*v.IsDefault || v.IsControl == nil || !*v.IsControl {
				t.Errorf("version = %+v", v)
			}
			if s.MaxReplicas != 4 || s.CPU != 0.25 {
				t.Errorf("settings = %+v", s)
			}
		},
		"endpoint-type.good.json": func(t *testing.T, s *modelship.ServiceSettings, _ *modelship.DeploymentConfig) {
			v := s.Version
			if v == nil || v.Name != "green" || v.TrafficPercentile != 10.5 || v.IsDefault != nil || v.IsControl == nil || *v.IsControl {
				t.Errorf("version = %+v", v)
			}
		},
		"aliases.good.json": func(t *testing.T, s *modelship.ServiceSettings, c *modelship.DeploymentConfig) {
			if s.AuthMode != modelship.AuthToken || s.GPUs != 1 || s.ScoringTimeout != 10*time.Minute {
				t.Errorf("aliases = %+v", s)
			}
			if w := strings.Join(c.Warnings(), "\n"); !strings.Contains(w, "above Azure's limit of 300000") {
				t.Errorf("warnings = %q, want the Azure scoring timeout note", w)
			}
		},
		// microsoft/MLOpsPython's deployment_config_aks.yml (as JSON) with
		// keys of Azure's ACI and local files, which Azure's AKS parser
		// ignored: accepted, with a warning each.
		"mlops-aks.good.json": func(t *testing.T, s *modelship.ServiceSettings, c *modelship.DeploymentConfig) {
			if s.ScoringTimeout != 5*time.Second || s.MaxConcurrentRequestsPerContainer != 2 || s.MaxQueueWait != 5*time.Second || s.RefreshPeriod != 10*time.Second {
				t.Errorf("settings = %+v", s)
			}
			w := strings.Join(c.Warnings(), "\n")
			for _, want := range []string{"sslEnabled has no effect", "dnsNameLabel has no effect", "port has no effect", "dataCollection.eventHubEnabled has no effect"} {
				if !strings.Contains(w, want) {
					t.Errorf("warnings %q lack %q", w, want)
				}
			}
		},
		"nulls.good.json": func(t *testing.T, s *modelship.ServiceSettings, _ *modelship.DeploymentConfig) {
			if s.GPUs != 2 || !s.AutoscaleEnabled || s.Namespace != "" {
				t.Errorf("nulls = %+v", s)
			}
		},
	}
	files := readTestdata(t, "deployconfig", "*.good.json")
	for name, data := range files {
		t.Run(name, func(t *testing.T) {
			c, err := modelship.ParseDeploymentConfig(data)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("validate: %v", err)
			}
			s, err := c.Resolve()
			if err != nil {
				t.Fatalf("resolve: %v", err)
			}
			check, ok := checks[name]
			if !ok && name != "minimal.good.json" {
				t.Fatalf("no check for %s; add one", name)
			}
			if ok {
				check(t, s, c)
			}
		})
	}
}

// TestDeploymentConfig_Defaults pins every default, including the choices
// made where the sources conflict (gpuCores 0, probe timeout 2 s).
func TestDeploymentConfig_Defaults(t *testing.T) {
	s := mustResolve(t, `{"computeType": "Aks"}`)
	want := &modelship.ServiceSettings{
		ComputeType:      "AKS",
		AutoscaleEnabled: true, MinReplicas: 1, MaxReplicas: 10, RefreshPeriod: time.Second, TargetUtilization: 70,
		CPU: 0.1, MemoryGB: 0.5, GPUs: 0,
		AuthMode:                          modelship.AuthKey,
		ScoringTimeout:                    60 * time.Second,
		MaxQueueWait:                      500 * time.Millisecond,
		MaxConcurrentRequestsPerContainer: 1,
		Liveness:                          modelship.LivenessProbeSettings{Period: 10 * time.Second, InitialDelay: 310 * time.Second, Timeout: 2 * time.Second, SuccessThreshold: 1, FailureThreshold: 3},
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", s, want)
	}
	if aci := mustResolve(t, `{"computeType": "ACI"}`); aci.AuthMode != modelship.AuthNone || aci.AutoscaleEnabled || aci.NumReplicas != 1 {
		t.Errorf("aci defaults = %+v", aci)
	}
	if tok := mustResolve(t, `{"computeType": "aks", "tokenAuthEnabled": true}`); tok.AuthMode != modelship.AuthToken {
		t.Errorf("token auth alone: auth = %q", tok.AuthMode)
	}
	if open := mustResolve(t, `{"computeType": "aks", "authEnabled": false}`); open.AuthMode != modelship.AuthNone {
		t.Errorf("authEnabled false: auth = %q", open.AuthMode)
	}
	// JSON round trip of the settings keeps everything.
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back modelship.ServiceSettings
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(&back, s) {
		t.Errorf("round trip: %v\n%s", err, b)
	}
}

// badDeployConfigs maps each testdata/deployconfig/*.bad.json to the message
// substrings its error must contain (all of them).
var badDeployConfigs = map[string][]string{
	"cpu-zero.bad.json":                     {"containerResourceRequirements.cpu is 0; it must be greater than 0"},
	"memory-negative.bad.json":              {"containerResourceRequirements.memoryInGB is -1; it must be greater than 0"},
	"cpu-limit-below-request.bad.json":      {"containerResourceRequirements.cpuLimit 1 is less than containerResourceRequirements.cpu 2"},
	"memory-limit-below-default.bad.json":   {"memoryInGBLimit 0.25 is less than containerResourceRequirements.memoryInGB 0.5 (the default)"},
	"namespace.bad.json":                    {`namespace "Team_A" is invalid`, "Kubernetes DNS label"},
	"autoscale-and-replicas.bad.json":       {"autoScaler.autoscaleEnabled is true and numReplicas is given"},
	"autoscale-off-no-replicas.bad.json":    {"autoScaler.autoscaleEnabled is false but numReplicas is not given"},
	"autoscale-params-not-enabled.bad.json": {"autoScaler.minReplicas, autoScaler.maxReplicas given without enabling autoscaling; set autoScaler.autoscaleEnabled to true"},
	"min-above-max.bad.json":                {"autoScaler.minReplicas 5 is greater than autoScaler.maxReplicas 2"},
	"min-above-default-max.bad.json":        {"autoScaler.minReplicas 12 is greater than autoScaler.maxReplicas 10 (the default)"},
	"autoscale-zero.bad.json":               {"3 problems", "autoScaler.minReplicas is 0; use a whole number, 1 or more", "autoScaler.refreshPeriodInSeconds is 0; use a whole number from 1 to 86400 seconds", "autoScaler.targetUtilization is 101; use a whole number from 1 to 100 percent"},
	"key-and-token.bad.json":                {"authEnabled and tokenAuthEnabled are both true"},
	"gpu-negative.bad.json":                 {"gpuCores is -1; use a whole number of GPUs, 0 or more"},
	"gpu-fraction.bad.json":                 {"gpuCores: expected a whole number, got 1.5"},
	"probe-zero.bad.json":                   {"5 problems", "livenessProbeRequirements.periodSeconds is 0", "livenessProbeRequirements.initialDelaySeconds is 0", "livenessProbeRequirements.timeoutSeconds is 0", "livenessProbeRequirements.successThreshold is 0", "livenessProbeRequirements.failureThreshold is 0"},
	"scoring-timeout-too-long.bad.json":     {"scoringTimeoutMs is 7200000; use a whole number from 1 to 3600000 milliseconds"},
	"zero-values.bad.json":                  {"4 problems", "scoringTimeoutMs is 0", "maxQueueWaitMs is 0", "maxConcurrentRequestsPerContainer is 0", "numReplicas is 0"},
	"traffic-over-100.bad.json":             {"trafficPercentile is 101; use a number from 0 to 100"},
	"traffic-negative.bad.json":             {"trafficPercentile is -1; use a number from 0 to 100"},
	"version-name.bad.json":                 {`versionName "Blue_1" is invalid; use 3 to 32 lowercase letters`},
	"version-name-short.bad.json":           {`versionName "ab" is invalid`},
	"version-type.bad.json":                 {`type "Canary" is invalid; use "Control" or "Treatment"`},
	"version-type-contradiction.bad.json":   {`type "Control" contradicts isControlVersionType false`},
	"endpoint-fields-on-service.bad.json":   {"versionName is only for endpoint versions", "trafficPercentile is only for endpoint versions"},
	"compute-type-missing.bad.json":         {"computeType is required"},
	"compute-type-unknown.bad.json":         {`computeType "kubernetes" is not supported; use "aks" or "local"`},
	"compute-target-name.bad.json":          {`computeTargetName "a_b" is invalid`},
	"keys.bad.json":                         {"keys.primaryKey contains a space", "keys.secondaryKey must be 1 to 256 characters long"},
	"alias-twice.bad.json":                  {"aadAuthEnabled and tokenAuthEnabled are the same setting; give only tokenAuthEnabled"},
	"not-object.bad.json":                   {"the deployment config must be a JSON object ({...}), not an array"},
	"syntax.bad.json":                       {"the deployment config is not valid JSON", "line 2"},
	"many.bad.json":                         {"6 problems in the deployment config:\n  - ", "numReplicas is given", "both true", "cpuLimit 1 is less than", `namespace "-bad-"`, "scoringTimeoutMs is 0", "minReplicas 4 is greater than autoScaler.maxReplicas 2"},
	"unknown-fields.bad.json": {
		"7 problems",
		`unknown field "autoScaler.minReplica" — did you mean "minReplicas"?`,
		`unknown field "AuthEnabled" — did you mean "authEnabled"?`,
		`unknown field "minReplicas" — did you mean "autoScaler.minReplicas"?`,
		`unknown field "cpu_cores" — did you mean "containerResourceRequirements.cpu"?`,
		`unknown field "containerResourceRequirements.memory" — did you mean "memoryInGB"?`,
		`unknown field "frobnicate"`,
		`unknown field "enableAppInsights" — did you mean "appInsightsEnabled"?`,
	},
	"types.bad.json": {
		"6 problems",
		"computeType: expected a string, got the number 1",
		"authEnabled: expected true or false, got the string \"yes\"",
		"numReplicas: expected a whole number, got the string \"2\"",
		"containerResourceRequirements.cpu: expected a number, got the string \"0.5\"",
		"tags.a: expected a string, got the number 1",
		"autoScaler: expected an object ({...}), got an array",
	},
}

// TestDeploymentConfig_Bad checks that every testdata/deployconfig/*.bad.json
// is rejected with EINVALID and a message containing its expected texts.
func TestDeploymentConfig_Bad(t *testing.T) {
	files := readTestdata(t, "deployconfig", "*.bad.json")
	for name := range badDeployConfigs {
		if _, ok := files[name]; !ok {
			t.Errorf("expected-error table names %s, which is not in testdata", name)
		}
	}
	for name, data := range files {
		t.Run(name, func(t *testing.T) {
			want, ok := badDeployConfigs[name]
			if !ok {
				t.Fatalf("no expected error for %s; add it to badDeployConfigs", name)
			}
			c, err := modelship.ParseDeploymentConfig(data)
			if err == nil {
				err = c.Validate()
				if _, rerr := c.Resolve(); (rerr == nil) != (err == nil) {
					t.Errorf("Resolve and Validate disagree: %v / %v", rerr, err)
				}
			}
			if err == nil {
				t.Fatal("accepted; want an error")
			}
			if code := modelship.ErrorCode(err); code != modelship.EINVALID {
				t.Errorf("code = %q, want invalid", code)
			}
			msg := modelship.ErrorMessage(err)
			for _, w := range want {
				if !strings.Contains(msg, w) {
					t.Errorf("message does not contain %q:\n%s", w, msg)
				}
			}
		})
	}
}

func TestDeploymentConfig_Warnings(t *testing.T) {
	for _, tc := range []struct {
		config string
		want   []string // substrings, one per warning, in order
	}{
		{`{"computeType": "aks"}`, nil},
		{`{"computeType": "local", "port": 8890}`, []string{"port has no effect"}},
		{`{"computeType": "aci", "location": "westus", "sslEnabled": true}`, []string{"location has no effect", "sslEnabled has no effect"}},
		{`{"computeType": "aks", "appInsightsEnabled": true, "namespace": "ns"}`, []string{"appInsightsEnabled: there is no Application Insights here"}},
		{`{"computeType": "aks", "sslEnabled": false, "vnetName": "v"}`, []string{"sslEnabled has no effect", "vnetName has no effect"}},
		{`{"computeType": "aks", "appInsightsEnabled": false}`, nil},
		{`{"computeType": "aks", "scoringTimeoutMs": 300001}`, []string{"above Azure's limit"}},
		{`{"computeType": "aks", "authEnabled": false, "keys": {"primaryKey": "abc"}}`, []string{"keys are stored but not used"}},
		{`{"computeType": "aci", "keys": {"primaryKey": "abc"}}`, []string{"keys are stored but not used"}},
		{`{"computeType": "aci", "authEnabled": true, "keys": {"primaryKey": "abc"}}`, nil},
	} {
		c, err := modelship.ParseDeploymentConfig([]byte(tc.config))
		if err != nil {
			t.Fatalf("%s: %v", tc.config, err)
		}
		got := c.Warnings()
		if len(got) != len(tc.want) {
			t.Errorf("%s: warnings = %q, want %d", tc.config, got, len(tc.want))
			continue
		}
		for i, w := range tc.want {
			if !strings.Contains(got[i], w) {
				t.Errorf("%s: warning %d = %q, want %q", tc.config, i, got[i], w)
			}
		}
	}
}

func TestDeploymentConfig_ComputeTypes(t *testing.T) {
	for in, want := range map[string]string{"aks": "AKS", "AKS": "AKS", "AksEndpoint": "AKSENDPOINT", "aci": "ACI", "local": "LOCAL", "Local": "LOCAL"} {
		got, err := modelship.NormalizeComputeType(in)
		if err != nil || got != want {
			t.Errorf("NormalizeComputeType(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := modelship.NormalizeComputeType("iot"); modelship.ErrorCode(err) != modelship.EINVALID {
		t.Errorf("iot: err = %v", err)
	}
}

func TestValidateServiceName(t *testing.T) {
	for name, ok := range map[string]bool{
		"abc": true, "my-service-1": true, "a23456789012345678901234567890ab": true,
		"ab": false, "a234567890123456789012345678901ab": false, "1abc": false, "abc-": false,
		"Abc": false, "ab_c": false, "": false, "-abc": false, "a--b": true,
	} {
		err := modelship.ValidateServiceName(name)
		if (err == nil) != ok {
			t.Errorf("ValidateServiceName(%q) = %v, want ok=%v", name, err, ok)
		}
		if err != nil && (modelship.ErrorCode(err) != modelship.EINVALID || !strings.Contains(err.Error(), "3 to 32 lowercase")) {
			t.Errorf("ValidateServiceName(%q) message = %v", name, err)
		}
	}
}

func TestServiceSettings_ApplyUpdate(t *testing.T) {
	autoscaled := `{"computeType": "aks", "containerResourceRequirements": {"cpu": 1, "memoryInGB": 1, "cpuLimit": 2, "memoryInGBLimit": 2}, "properties": {"owner": "a"}, "tags": {"x": "1"}}`
	fixed := `{"computeType": "aks", "numReplicas": 2, "tokenAuthEnabled": true}`
	endpoint := `{"computeType": "AKSENDPOINT", "versionName": "blue", "trafficPercentile": 10}`
	for _, tc := range []struct {
		name, base, update string
		wantErr            []string
		check              func(t *testing.T, old, s *modelship.ServiceSettings)
	}{
		{name: "empty", base: autoscaled, update: `{}`, wantErr: []string{"No parameters provided to update; give at least one of autoScaler.*"}},
		{name: "only compute type", base: autoscaled, update: `{"computeType": "aks", "computeTargetName": "local"}`, wantErr: []string{"No parameters provided to update"}},
		{name: "compute type change", base: autoscaled, update: `{"computeType": "aci", "numReplicas": 1, "autoScaler": {"autoscaleEnabled": false}}`, wantErr: []string{`computeType cannot change from "AKS" to "ACI"`}},
		{name: "keys", base: autoscaled, update: `{"keys": {"primaryKey": "abc"}}`, wantErr: []string{"keys cannot be changed by an update; use regen-key"}},
		{name: "cpu above existing limit", base: autoscaled, update: `{"containerResourceRequirements": {"cpu": 3}}`, wantErr: []string{"cpuLimit 2 (the current value) is less than containerResourceRequirements.cpu 3"}},
		{name: "limit below existing request", base: autoscaled, update: `{"containerResourceRequirements": {"memoryInGBLimit": 0.5}}`, wantErr: []string{"memoryInGBLimit 0.5 is less than containerResourceRequirements.memoryInGB 1 (the current value)"}},
		{name: "cpu and limit together", base: autoscaled, update: `{"containerResourceRequirements": {"cpu": 3, "cpuLimit": 4}}`,
			check: func(t *testing.T, _, s *modelship.ServiceSettings) {
				if s.CPU != 3 || s.CPULimit != 4 || s.MemoryGB != 1 {
					t.Errorf("resources = %+v", s)
				}
			}},
		{name: "token on while key on", base: autoscaled, update: `{"tokenAuthEnabled": true}`, wantErr: []string{"tokenAuthEnabled cannot be turned on while key auth is on; pass authEnabled: false in the same update"}},
		{name: "token on with key off", base: autoscaled, update: `{"tokenAuthEnabled": true, "authEnabled": false}`,
			check: func(t *testing.T, _, s *modelship.ServiceSettings) {
				if s.AuthMode != modelship.AuthToken {
					t.Errorf("auth = %q", s.AuthMode)
				}
			}},
		{name: "key on while token on", base: fixed, update: `{"authEnabled": true}`, wantErr: []string{"authEnabled cannot be turned on while token auth is on; pass tokenAuthEnabled: false"}},
		{name: "key on with token off", base: fixed, update: `{"authEnabled": true, "tokenAuthEnabled": false}`,
			check: func(t *testing.T, _, s *modelship.ServiceSettings) {
				if s.AuthMode != modelship.AuthKey {
					t.Errorf("auth = %q", s.AuthMode)
				}
			}},
		{name: "both auth", base: fixed, update: `{"authEnabled": true, "tokenAuthEnabled": true}`, wantErr: []string{"both true"}},
		{name: "auth off", base: autoscaled, update: `{"authEnabled": false}`,
			check: func(t *testing.T, _, s *modelship.ServiceSettings) {
				if s.AuthMode != modelship.AuthNone {
					t.Errorf("auth = %q", s.AuthMode)
				}
			}},
		{name: "numReplicas while autoscaling", base: autoscaled, update: `{"numReplicas": 3}`, wantErr: []string{"numReplicas is given but the service autoscales; set autoScaler.autoscaleEnabled to false"}},
		{name: "switch to fixed", base: autoscaled, update: `{"numReplicas": 3, "autoScaler": {"autoscaleEnabled": false}}`,
			check: func(t *testing.T, _, s *modelship.ServiceSettings) {
				if s.AutoscaleEnabled || s.NumReplicas != 3 || s.Autoscale() != nil {
					t.Errorf("replicas = %+v", s)
				}
			}},
		{name: "autoscale off without replicas", base: autoscaled, update: `{"autoScaler": {"autoscaleEnabled": false}}`, wantErr: []string{"autoScaler.autoscaleEnabled is false but numReplicas is not given"}},
		{name: "enable autoscale with replicas", base: fixed, update: `{"numReplicas": 3, "autoScaler": {"autoscaleEnabled": true}}`, wantErr: []string{"autoScaler.autoscaleEnabled is true and numReplicas is given"}},
		{name: "min without enabling", base: fixed, update: `{"autoScaler": {"minReplicas": 2}}`, wantErr: []string{"autoScaler.minReplicas given but autoscaling is off; set autoScaler.autoscaleEnabled to true"}},
		{name: "switch to autoscale", base: fixed, update: `{"autoScaler": {"autoscaleEnabled": true, "minReplicas": 2}}`,
			check: func(t *testing.T, _, s *modelship.ServiceSettings) {
				if !s.AutoscaleEnabled || s.NumReplicas != 0 || s.MinReplicas != 2 || s.MaxReplicas != 10 {
					t.Errorf("replicas = %+v", s)
				}
			}},
		{name: "min while autoscaling", base: autoscaled, update: `{"autoScaler": {"minReplicas": 4}}`,
			check: func(t *testing.T, old, s *modelship.ServiceSettings) {
				if s.MinReplicas != 4 || s.CPU != old.CPU || !s.AutoscaleEnabled {
					t.Errorf("settings = %+v", s)
				}
			}},
		{name: "min above existing max", base: autoscaled, update: `{"autoScaler": {"minReplicas": 11}}`, wantErr: []string{"autoScaler.minReplicas 11 is greater than autoScaler.maxReplicas 10 (the current value)"}},
		{name: "property change", base: autoscaled, update: `{"properties": {"owner": "b", "new": "c"}}`, wantErr: []string{`properties.owner is already "a"; properties are add-only`}},
		{name: "property add and tags replace", base: autoscaled, update: `{"properties": {"owner": "a", "new": "c"}, "tags": {"y": "2"}, "description": "d"}`,
			check: func(t *testing.T, old, s *modelship.ServiceSettings) {
				if !reflect.DeepEqual(s.Properties, map[string]string{"owner": "a", "new": "c"}) || !reflect.DeepEqual(s.Tags, map[string]string{"y": "2"}) || s.Description != "d" {
					t.Errorf("metadata = %+v", s)
				}
				if len(old.Properties) != 1 || old.Tags["x"] != "1" {
					t.Errorf("old settings changed: %+v", old)
				}
			}},
		{name: "timeouts and probes", base: autoscaled, update: `{"scoringTimeoutMs": 1000, "livenessProbeRequirements": {"timeoutSeconds": 5}, "gpuCores": 1, "dataCollection": {"storageEnabled": true}}`,
			check: func(t *testing.T, _, s *modelship.ServiceSettings) {
				if s.ScoringTimeout != time.Second || s.Liveness.Timeout != 5*time.Second || s.Liveness.Period != 10*time.Second || s.GPUs != 1 || !s.DataCollectionEnabled {
					t.Errorf("settings = %+v", s)
				}
			}},
		{name: "bad values reported together", base: autoscaled, update: `{"scoringTimeoutMs": 0, "namespace": "A", "tokenAuthEnabled": true}`, wantErr: []string{"3 problems in the update", "scoringTimeoutMs is 0", `namespace "A"`, "tokenAuthEnabled cannot be turned on"}},
		{name: "endpoint field on service", base: autoscaled, update: `{"trafficPercentile": 5}`, wantErr: []string{"trafficPercentile is only for endpoint versions"}},
		{name: "endpoint traffic", base: endpoint, update: `{"trafficPercentile": 40, "isDefault": true}`,
			check: func(t *testing.T, _, s *modelship.ServiceSettings) {
				if s.Version.TrafficPercentile != 40 || !*s.Version.IsDefault || s.Version.Name != "blue" {
					t.Errorf("version = %+v", s.Version)
				}
			}},
		{name: "endpoint rename", base: endpoint, update: `{"versionName": "green"}`, wantErr: []string{`versionName cannot change from "blue" to "green"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := mustResolve(t, tc.base)
			before := old.Clone()
			u, err := modelship.ParseDeploymentConfig([]byte(tc.update))
			if err != nil {
				t.Fatal(err)
			}
			s, err := old.ApplyUpdate(u)
			if !reflect.DeepEqual(old, before) {
				t.Errorf("ApplyUpdate changed its receiver")
			}
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("accepted: %+v", s)
				}
				if modelship.ErrorCode(err) != modelship.EINVALID {
					t.Errorf("code = %q", modelship.ErrorCode(err))
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(modelship.ErrorMessage(err), w) {
						t.Errorf("message does not contain %q:\n%s", w, modelship.ErrorMessage(err))
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, old, s)
		})
	}
	var s *modelship.ServiceSettings = mustResolve(t, autoscaled)
	if _, err := s.ApplyUpdate(nil); err == nil || !strings.Contains(err.Error(), "No parameters provided to update") {
		t.Errorf("nil update: %v", err)
	}
}

// TestDeploymentConfig_StableMessage checks that a message lists its
// problems deterministically (same input, same text).
func TestDeploymentConfig_StableMessage(t *testing.T) {
	data := readTestdata(t, "deployconfig", "unknown-fields.bad.json")["unknown-fields.bad.json"]
	var first string
	for i := 0; i < 20; i++ {
		_, err := modelship.ParseDeploymentConfig(data)
		if i == 0 {
			first = err.Error()
		} else if err.Error() != first {
			t.Fatalf("message changed between runs:\n%s\n%s", first, err)
		}
	}
}

func FuzzParseDeploymentConfig(f *testing.F) {
	for _, pattern := range []string{"*.good.json", "*.bad.json"} {
		for _, data := range readTestdata(f, "deployconfig", pattern) {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := modelship.ParseDeploymentConfig(data)
		if err != nil {
			if modelship.ErrorCode(err) != modelship.EINVALID {
				t.Fatalf("parse error with code %q: %v", modelship.ErrorCode(err), err)
			}
			return
		}
		_ = c.Warnings()
		s, err := c.Resolve()
		if err != nil {
			if modelship.ErrorCode(err) != modelship.EINVALID {
				t.Fatalf("resolve error with code %q: %v", modelship.ErrorCode(err), err)
			}
			return
		}
		if s.AutoscaleEnabled == (s.NumReplicas > 0) {
			t.Fatalf("autoscale %v with numReplicas %d", s.AutoscaleEnabled, s.NumReplicas)
		}
		if s.AutoscaleEnabled && s.MinReplicas > s.MaxReplicas {
			t.Fatalf("min %d > max %d", s.MinReplicas, s.MaxReplicas)
		}
		if s.CPULimit != 0 && s.CPULimit < s.CPU {
			t.Fatalf("cpu limit %v < request %v", s.CPULimit, s.CPU)
		}
		// The resolved settings accept themselves as an update target.
		_, _ = s.ApplyUpdate(c)
	})
}
