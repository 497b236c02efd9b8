package controller

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"time"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/stats"
)

var _ modelship.EndpointService = (*Controller)(nil)

// DefaultVersionName names an endpoint's first version when none is given
// (Azure used the endpoint's own name, which later broke updates).
const DefaultVersionName = "version-1"

// versionService names the internal service record of an endpoint version.
func versionService(endpoint, version string) string { return endpoint + "." + version }

// splitVersionConfig takes the versioning keys out of a deployment config
// object and returns them with the remaining (deployment) part, nil when
// nothing else is left.
func splitVersionConfig(raw json.RawMessage) (modelship.VersionRequest, json.RawMessage, error) {
	var vr modelship.VersionRequest
	if len(raw) == 0 || string(raw) == "null" {
		return vr, nil, nil
	}
	obj := map[string]json.RawMessage{}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return vr, nil, modelship.Errorf(modelship.EINVALID, "deployment config is not a JSON object: %v", err)
	}
	take := func(k string, v any) error {
		if b, ok := obj[k]; ok {
			delete(obj, k)
			if err := json.Unmarshal(b, v); err != nil {
				return modelship.Errorf(modelship.EINVALID, "deployment config field %q: %v", k, err)
			}
		}
		return nil
	}
	var typ string
	for k, v := range map[string]any{"versionName": &vr.Name, "trafficPercentile": &vr.TrafficPercentile, "isDefault": &vr.IsDefault,
		"isControlVersionType": &vr.IsControl, "type": &typ, "mirrorPercentile": &vr.MirrorPercentile} {
		if err := take(k, v); err != nil {
			return vr, nil, err
		}
	}
	switch strings.ToLower(typ) {
	case "":
	case "control":
		t := true
		vr.IsControl = &t
	case "treatment":
		f := false
		vr.IsControl = &f
	default:
		return vr, nil, modelship.Errorf(modelship.EINVALID, "deployment config field \"type\" is %q; use Control or Treatment", typ)
	}
	delete(obj, "computeType")
	if len(obj) == 0 {
		return vr, nil, nil
	}
	rest, _ := json.Marshal(obj)
	return vr, rest, nil
}

// mergeVersion fills unset fields of req from the config's versioning keys.
func mergeVersion(req *modelship.VersionRequest, fromDC modelship.VersionRequest) {
	if req.Name == "" {
		req.Name = fromDC.Name
	}
	if req.TrafficPercentile == nil {
		req.TrafficPercentile = fromDC.TrafficPercentile
	}
	if req.MirrorPercentile == nil {
		req.MirrorPercentile = fromDC.MirrorPercentile
	}
	if req.IsDefault == nil {
		req.IsDefault = fromDC.IsDefault
	}
	if req.IsControl == nil {
		req.IsControl = fromDC.IsControl
	}
}

// versionSettings resolves a version's deployment settings.
func versionSettings(rest json.RawMessage) (*modelship.ServiceSettings, *modelship.DeploymentConfig, error) {
	dc := &modelship.DeploymentConfig{}
	if rest != nil {
		var err error
		if dc, err = modelship.ParseDeploymentConfig(rest); err != nil {
			return nil, nil, err
		}
	}
	if dc.ComputeType == nil {
		aks := "aks"
		dc.ComputeType = &aks
	}
	s, err := dc.Resolve()
	return s, dc, err
}

// applyFlags applies traffic, mirror, default and control changes of req to
// version name within versions (a copy), as Azure re-flags every version.
func applyFlags(versions []modelship.EndpointVersion, name string, req *modelship.VersionRequest) []modelship.EndpointVersion {
	out := append([]modelship.EndpointVersion(nil), versions...)
	for i := range out {
		v := &out[i]
		if v.Name == name {
			if req.TrafficPercentile != nil {
				v.TrafficPercentile = *req.TrafficPercentile
			}
			if req.MirrorPercentile != nil {
				v.MirrorPercentile = *req.MirrorPercentile
			}
			if req.IsDefault != nil {
				v.IsDefault = *req.IsDefault
			}
			if req.IsControl != nil {
				if *req.IsControl {
					v.VersionType = modelship.VersionTypeControl
				} else {
					v.VersionType = modelship.VersionTypeTreatment
				}
			}
			continue
		}
		if req.IsDefault != nil && *req.IsDefault {
			v.IsDefault = false
		}
		if req.IsControl != nil && *req.IsControl {
			v.VersionType = modelship.VersionTypeTreatment
		}
	}
	return out
}

// CreateEndpoint creates an endpoint and deploys its first version.
func (c *Controller) CreateEndpoint(ctx context.Context, ws string, req *modelship.EndpointCreateRequest) (*modelship.Endpoint, *modelship.Operation, error) {
	if err := modelship.ValidateServiceName(req.Name); err != nil {
		return nil, nil, modelship.Errorf(modelship.EINVALID, "%s", strings.Replace(modelship.ErrorMessage(err), "service name", "endpoint name", 1))
	}
	if _, err := c.store().FindWorkspace(ctx, ws); err != nil {
		return nil, nil, err
	}
	if _, err := c.store().FindEndpoint(ctx, ws, req.Name); err == nil {
		return nil, nil, modelship.Errorf(modelship.ECONFLICT, "endpoint %q already exists in workspace %q", req.Name, ws)
	}
	if _, err := c.store().FindService(ctx, ws, req.Name); err == nil {
		return nil, nil, modelship.Errorf(modelship.ECONFLICT, "the name %q is taken by a service in workspace %q; services and endpoints share one name space", req.Name, ws)
	}
	if err := c.checkGatewayName(ctx, ws, req.Name); err != nil {
		return nil, nil, err
	}
	fromDC, rest, err := splitVersionConfig(req.DeploymentConfig)
	if err != nil {
		return nil, nil, err
	}
	vreq := req.Version
	mergeVersion(&vreq, fromDC)
	if vreq.Name == "" {
		vreq.Name = DefaultVersionName
	}
	settings, dc, err := versionSettings(rest)
	if err != nil {
		return nil, nil, err
	}
	target := req.ComputeTarget
	if target == "" && dc.ComputeTargetName != nil {
		target = *dc.ComputeTargetName
	}
	if target == "" {
		target = modelship.DefaultLocalTarget
	}
	if _, err := c.store().FindComputeTarget(ctx, ws, target); err != nil {
		return nil, nil, err
	}
	first := modelship.EndpointVersion{Name: vreq.Name, IsDefault: true, VersionType: modelship.VersionTypeControl}
	if vreq.TrafficPercentile != nil {
		first.TrafficPercentile = *vreq.TrafficPercentile
	}
	if vreq.MirrorPercentile != nil {
		first.MirrorPercentile = *vreq.MirrorPercentile
	}
	if vreq.IsDefault != nil && !*vreq.IsDefault || vreq.IsControl != nil && !*vreq.IsControl {
		return nil, nil, modelship.Errorf(modelship.EINVALID, "the first version of an endpoint is its default and its control")
	}
	if err := modelship.ValidateEndpointVersions(req.Name, []modelship.EndpointVersion{first}); err != nil {
		return nil, nil, err
	}
	models, err := c.resolveModels(ctx, ws, vreq.Models)
	if err != nil {
		return nil, nil, err
	}
	inf := modelship.InferenceSpec{}
	if vreq.Inference != nil {
		inf = *vreq.Inference
	}
	if err := c.checkInference(ctx, &inf, models); err != nil {
		return nil, nil, err
	}
	keys, err := initialKeys(dc)
	if err != nil {
		return nil, nil, err
	}
	sealed, err := c.seal(keys)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now().UTC()
	ep := &modelship.Endpoint{Workspace: ws, Name: req.Name, ComputeType: modelship.ComputeTypeAKSEndpoint, ComputeTarget: target,
		AuthMode: settings.AuthMode, AppInsightsEnabled: settings.AppInsightsEnabled, DataCollectionEnabled: settings.DataCollectionEnabled,
		State: modelship.StateTransitioning, Versions: []modelship.EndpointVersion{first}, Description: settings.Description,
		Tags: orEmpty(settings.Tags), Properties: orEmpty(settings.Properties), CreatedTime: now, UpdatedTime: now}
	if err := c.store().CreateEndpoint(ctx, ep, sealed); err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	c.keys[key(ws, ep.Name)] = keys
	c.mu.Unlock()
	op, err := c.deployVersion(ctx, ep, first.Name, models, inf, settings, dc.Warnings())
	if err != nil {
		c.store().DeleteEndpoint(ctx, ws, ep.Name)
		return nil, nil, err
	}
	ep.LastOperation = op.ID
	c.store().PutEndpoint(ctx, ep)
	out, _ := c.GetEndpoint(ctx, ws, ep.Name, false)
	return out, op, nil
}

// deployVersion creates the internal service of a version and starts its
// Create operation.
func (c *Controller) deployVersion(ctx context.Context, ep *modelship.Endpoint, version string, models []*modelship.ModelVersion, inf modelship.InferenceSpec, settings *modelship.ServiceSettings, warnings []string) (*modelship.Operation, error) {
	now := time.Now().UTC()
	svc := &modelship.Service{
		Workspace: ep.Workspace, Name: versionService(ep.Name, version), Endpoint: ep.Name, Version: version,
		ComputeType: modelship.ComputeTypeAKSEndpoint, ComputeTarget: ep.ComputeTarget, Models: modelIDs(models), Inference: inf,
		Settings: *settings, State: modelship.StateTransitioning, Generation: 1, Tags: map[string]string{}, Properties: map[string]string{},
		CreatedTime: now, UpdatedTime: now, DesiredReplicas: initialReplicas(settings),
	}
	svc.Settings.AuthMode = ep.AuthMode
	op, err := c.beginOp(ctx, svc, modelship.OpCreate)
	if err != nil {
		return nil, err
	}
	svc.LastOperation = op.ID
	if err := c.store().CreateService(ctx, svc, [2]string{"", ""}); err != nil {
		c.endOp(svc, op, modelship.OpFailed, &modelship.ServiceError{Code: "Conflict", Message: modelship.ErrorMessage(err)})
		return nil, err
	}
	c.logOp(op, "Deploying version %s of endpoint %s on %s with %s", version, ep.Name, ep.ComputeTarget, strings.Join(svc.Models, ", "))
	for _, w := range warnings {
		c.logOp(op, "Note: %s", w)
	}
	if err := c.applyService(ctx, svc); err != nil {
		c.failOp(svc, op, "DeploymentFailed", err)
		return op, nil
	}
	c.store().PutService(ctx, svc)
	c.startFollow(svc, op)
	c.startObserver(svc.Workspace, svc.Name)
	return op, nil
}

// CreateVersion adds a version to an endpoint.
func (c *Controller) CreateVersion(ctx context.Context, ws, name string, req *modelship.VersionRequest) (*modelship.Endpoint, *modelship.Operation, error) {
	ep, err := c.store().FindEndpoint(ctx, ws, name)
	if err != nil {
		return nil, nil, err
	}
	fromDC, rest, err := splitVersionConfig(req.DeploymentConfig)
	if err != nil {
		return nil, nil, err
	}
	vreq := *req
	mergeVersion(&vreq, fromDC)
	if vreq.Name == "" {
		return nil, nil, modelship.Errorf(modelship.EINVALID, "give the new version a name (--version-name)")
	}
	if err := modelship.ValidateVersionName(ep.Name, vreq.Name); err != nil {
		return nil, nil, err
	}
	for _, v := range ep.Versions {
		if v.Name == vreq.Name {
			return nil, nil, modelship.Errorf(modelship.ECONFLICT, "endpoint %q already has a version named %q", ep.Name, vreq.Name)
		}
	}
	if len(ep.Versions) >= modelship.MaxEndpointVersions {
		return nil, nil, modelship.Errorf(modelship.EINVALID, "endpoint %q already has %d versions, the most an endpoint can hold; delete one first", ep.Name, len(ep.Versions))
	}
	nv := modelship.EndpointVersion{Name: vreq.Name, VersionType: modelship.VersionTypeTreatment}
	versions := applyFlags(append(append([]modelship.EndpointVersion(nil), ep.Versions...), nv), vreq.Name, &vreq)
	if err := modelship.ValidateEndpointVersions(ep.Name, versions); err != nil {
		return nil, nil, err
	}
	settings, dc, err := versionSettings(rest)
	if err != nil {
		return nil, nil, err
	}
	if dc.Keys != nil || dc.AuthEnabled != nil || dc.TokenAuthEnabled != nil {
		return nil, nil, modelship.Errorf(modelship.EINVALID, "auth and keys are endpoint-level; change them with `modelship endpoint update` / `endpoint regen-key`")
	}
	models, err := c.resolveModels(ctx, ws, vreq.Models)
	if err != nil {
		return nil, nil, err
	}
	inf := modelship.InferenceSpec{}
	if vreq.Inference != nil {
		inf = *vreq.Inference
	}
	if err := c.checkInference(ctx, &inf, models); err != nil {
		return nil, nil, err
	}
	op, err := c.deployVersion(ctx, ep, vreq.Name, models, inf, settings, dc.Warnings())
	if err != nil {
		return nil, nil, err
	}
	ep.Versions = versions
	ep.LastOperation = op.ID
	ep.UpdatedTime = time.Now().UTC()
	if err := c.store().PutEndpoint(ctx, ep); err != nil {
		return nil, nil, err
	}
	c.publish(ctx)
	out, _ := c.GetEndpoint(ctx, ws, name, false)
	return out, op, nil
}

// UpdateVersion changes a version's traffic flags (applied at once) and/or
// its deployment (rolled out; an operation is returned).
func (c *Controller) UpdateVersion(ctx context.Context, ws, name string, req *modelship.VersionRequest) (*modelship.Endpoint, *modelship.Operation, error) {
	ep, err := c.store().FindEndpoint(ctx, ws, name)
	if err != nil {
		return nil, nil, err
	}
	fromDC, rest, err := splitVersionConfig(req.DeploymentConfig)
	if err != nil {
		return nil, nil, err
	}
	vreq := *req
	mergeVersion(&vreq, fromDC)
	if !hasVersion(ep, vreq.Name) {
		return nil, nil, modelship.Errorf(modelship.ENOTFOUND, "endpoint %q has no version %q; it has %s", ep.Name, vreq.Name, versionNames(ep))
	}
	flags := vreq.TrafficPercentile != nil || vreq.MirrorPercentile != nil || vreq.IsDefault != nil || vreq.IsControl != nil
	deploy := len(vreq.Models) > 0 || vreq.Inference != nil || rest != nil
	if !flags && !deploy {
		return nil, nil, modelship.Errorf(modelship.EINVALID, "No parameters provided to update. Give --traffic-percentile, --default, --control/--treatment, --mirror-percentile, models (-m), -ic or -dc")
	}
	versions := applyFlags(ep.Versions, vreq.Name, &vreq)
	if err := modelship.ValidateEndpointVersions(ep.Name, versions); err != nil {
		return nil, nil, err
	}
	var op *modelship.Operation
	if deploy {
		svc, err := c.store().FindService(ctx, ws, versionService(ep.Name, vreq.Name))
		if err != nil {
			return nil, nil, err
		}
		if rest != nil {
			if dc, err := modelship.ParseDeploymentConfig(rest); err == nil && (dc.AuthEnabled != nil || dc.TokenAuthEnabled != nil || dc.Keys != nil) {
				return nil, nil, modelship.Errorf(modelship.EINVALID, "auth and keys are endpoint-level; change them with `modelship endpoint update` / `endpoint regen-key`")
			}
		}
		_, op, err = c.update(ctx, svc, &modelship.UpdateRequest{Models: vreq.Models, Inference: vreq.Inference, DeploymentConfig: rest})
		if err != nil {
			return nil, nil, err
		}
		ep.LastOperation = op.ID
	}
	ep.Versions = versions
	ep.UpdatedTime = time.Now().UTC()
	if err := c.store().PutEndpoint(ctx, ep); err != nil {
		return nil, nil, err
	}
	c.publish(ctx)
	out, err := c.GetEndpoint(ctx, ws, name, false)
	return out, op, err
}

func hasVersion(ep *modelship.Endpoint, v string) bool {
	for _, x := range ep.Versions {
		if x.Name == v {
			return true
		}
	}
	return false
}

func versionNames(ep *modelship.Endpoint) string {
	var names []string
	for _, v := range ep.Versions {
		names = append(names, v.Name)
	}
	return strings.Join(names, ", ")
}

// PromoteVersion makes a version the control and the default in one step.
func (c *Controller) PromoteVersion(ctx context.Context, ws, name, version string) (*modelship.Endpoint, error) {
	t := true
	ep, _, err := c.UpdateVersion(ctx, ws, name, &modelship.VersionRequest{Name: version, IsDefault: &t, IsControl: &t})
	return ep, err
}

// DeleteVersion drains and removes a version. The default version and the
// control cannot be deleted until another version takes that role.
func (c *Controller) DeleteVersion(ctx context.Context, ws, name, version string) (*modelship.Operation, error) {
	ep, err := c.store().FindEndpoint(ctx, ws, name)
	if err != nil {
		return nil, err
	}
	var target *modelship.EndpointVersion
	var rest []modelship.EndpointVersion
	for i := range ep.Versions {
		if ep.Versions[i].Name == version {
			target = &ep.Versions[i]
		} else {
			rest = append(rest, ep.Versions[i])
		}
	}
	if target == nil {
		return nil, modelship.Errorf(modelship.ENOTFOUND, "endpoint %q has no version %q; it has %s", name, version, versionNames(ep))
	}
	if target.IsDefault {
		return nil, modelship.Errorf(modelship.ECONFLICT, "version %q is the default version of endpoint %q; make another version the default first (`modelship endpoint version update %s --version-name OTHER --default`), or delete the endpoint", version, name, name)
	}
	if target.VersionType == modelship.VersionTypeControl {
		return nil, modelship.Errorf(modelship.ECONFLICT, "version %q is the control of endpoint %q; mark another version as control first (`--control`)", version, name)
	}
	svc, err := c.store().FindService(ctx, ws, versionService(name, version))
	if err != nil {
		return nil, err
	}
	op, err := c.beginOp(ctx, svc, modelship.OpDelete)
	if err != nil {
		return nil, err
	}
	// Stop routing to it first, then drain.
	ep.Versions = rest
	ep.LastOperation = op.ID
	ep.UpdatedTime = time.Now().UTC()
	if err := c.store().PutEndpoint(ctx, ep); err != nil {
		c.endOp(svc, op, modelship.OpFailed, &modelship.ServiceError{Code: "InternalError", Message: err.Error()})
		return nil, err
	}
	svc.State = modelship.StateDeleting
	c.store().PutService(ctx, svc)
	c.publish(ctx)
	c.logOp(op, "Deleting version %s of endpoint %s: traffic moved, draining replicas", version, name)
	c.resumeDelete(svc, op)
	return op, nil
}

// DeleteEndpoint removes every version and the endpoint.
func (c *Controller) DeleteEndpoint(ctx context.Context, ws, name string) (*modelship.Operation, error) {
	ep, err := c.store().FindEndpoint(ctx, ws, name)
	if err != nil {
		return nil, err
	}
	owner := &modelship.Service{Workspace: ws, Name: name, Endpoint: name}
	op, err := c.beginDelete(ctx, owner)
	if err != nil {
		return nil, err
	}
	ep.State, ep.LastOperation = modelship.StateDeleting, op.ID
	c.store().PutEndpoint(ctx, ep)
	c.logOp(op, "Deleting endpoint %s and its %d version(s)", name, len(ep.Versions))
	c.resumeEndpointDelete(ep, op)
	return op, nil
}

func (c *Controller) resumeEndpointDelete(ep *modelship.Endpoint, op *modelship.Operation) {
	c.mu.Lock()
	c.busy[key(ep.Workspace, ep.Name)] = op.ID
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		ctx := context.Background()
		svcs, _ := c.store().ListServices(ctx, ep.Workspace)
		for _, svc := range svcs {
			if svc.Endpoint != ep.Name {
				continue
			}
			if d, _, err := c.driverFor(ctx, svc.Workspace, svc.ComputeTarget); err == nil {
				d.Delete(ctx, c.deploymentID(svc.Workspace, svc.Name))
			}
			c.store().DeleteService(ctx, svc.Workspace, svc.Name)
			c.removeLayout(svc.Workspace, svc.Name)
			c.logOp(op, "Version %s removed", svc.Version)
		}
		c.store().DeleteEndpoint(ctx, ep.Workspace, ep.Name)
		c.mu.Lock()
		delete(c.keys, key(ep.Workspace, ep.Name))
		c.mu.Unlock()
		c.publish(ctx)
		c.logOp(op, "Endpoint %s deleted", ep.Name)
		owner := &modelship.Service{Workspace: ep.Workspace, Name: ep.Name}
		c.endOp(owner, op, modelship.OpSucceeded, nil)
	}()
}

// UpdateEndpoint changes endpoint-level settings (auth, app insights,
// description, tags, properties).
func (c *Controller) UpdateEndpoint(ctx context.Context, ws, name string, req *modelship.EndpointUpdateRequest) (*modelship.Endpoint, error) {
	ep, err := c.store().FindEndpoint(ctx, ws, name)
	if err != nil {
		return nil, err
	}
	if req.AuthEnabled == nil && req.TokenAuthEnabled == nil && req.AppInsightsEnabled == nil && req.Description == nil && req.Tags == nil && req.Properties == nil {
		return nil, modelship.Errorf(modelship.EINVALID, "No parameters provided to update. Give --auth-enabled, --token-auth-enabled, --enable-app-insights, --description or --tag")
	}
	keyOn := ep.AuthMode == modelship.AuthKey
	tokOn := ep.AuthMode == modelship.AuthToken
	if req.TokenAuthEnabled != nil && *req.TokenAuthEnabled && keyOn && (req.AuthEnabled == nil || *req.AuthEnabled) {
		return nil, modelship.Errorf(modelship.EINVALID, "turning tokenAuthEnabled on while key auth is on needs authEnabled false in the same update; key and token auth are mutually exclusive")
	}
	if req.AuthEnabled != nil && *req.AuthEnabled && tokOn && (req.TokenAuthEnabled == nil || *req.TokenAuthEnabled) {
		return nil, modelship.Errorf(modelship.EINVALID, "turning authEnabled on while token auth is on needs tokenAuthEnabled false in the same update; key and token auth are mutually exclusive")
	}
	if req.AuthEnabled != nil {
		keyOn = *req.AuthEnabled
	}
	if req.TokenAuthEnabled != nil {
		tokOn = *req.TokenAuthEnabled
	}
	switch {
	case keyOn && tokOn:
		return nil, modelship.Errorf(modelship.EINVALID, "authEnabled and tokenAuthEnabled cannot both be true")
	case keyOn:
		ep.AuthMode = modelship.AuthKey
	case tokOn:
		ep.AuthMode = modelship.AuthToken
	default:
		ep.AuthMode = modelship.AuthNone
	}
	if req.AppInsightsEnabled != nil {
		ep.AppInsightsEnabled = *req.AppInsightsEnabled
	}
	if req.Description != nil {
		ep.Description = *req.Description
	}
	if req.Tags != nil {
		ep.Tags = req.Tags
	}
	for k, v := range req.Properties {
		if old, ok := ep.Properties[k]; ok && old != v {
			return nil, modelship.Errorf(modelship.EINVALID, "properties are add-only; %q is already set to %q", k, old)
		}
		if ep.Properties == nil {
			ep.Properties = map[string]string{}
		}
		ep.Properties[k] = v
	}
	ep.UpdatedTime = time.Now().UTC()
	if err := c.store().PutEndpoint(ctx, ep); err != nil {
		return nil, err
	}
	// Versions carry the endpoint's auth mode for display.
	svcs, _ := c.store().ListServices(ctx, ws)
	for _, s := range svcs {
		if s.Endpoint == name {
			s.Settings.AuthMode = ep.AuthMode
			s.Settings.AppInsightsEnabled = ep.AppInsightsEnabled
			c.store().PutService(ctx, s)
		}
	}
	c.publish(ctx)
	return c.GetEndpoint(ctx, ws, name, false)
}

// ListEndpoints lists a workspace's endpoints.
func (c *Controller) ListEndpoints(ctx context.Context, ws string) ([]*modelship.Endpoint, error) {
	eps, err := c.store().ListEndpoints(ctx, ws)
	if err != nil {
		return nil, err
	}
	for i, ep := range eps {
		eps[i] = c.decorateEndpoint(ctx, ep, false)
	}
	return eps, nil
}

// GetEndpoint returns an endpoint with each version's live state, the
// effective traffic, and with metrics the front end's per-version
// statistics and the comparison of each treatment with the control.
func (c *Controller) GetEndpoint(ctx context.Context, ws, name string, metrics bool) (*modelship.Endpoint, error) {
	ep, err := c.store().FindEndpoint(ctx, ws, name)
	if err != nil {
		return nil, err
	}
	return c.decorateEndpoint(ctx, ep, metrics), nil
}

func (c *Controller) decorateEndpoint(ctx context.Context, ep *modelship.Endpoint, metrics bool) *modelship.Endpoint {
	base := c.frontEndBase(ctx, ep.Workspace, ep.ComputeTarget) + "/api/v1/endpoint/" + ep.Name
	ep.ScoringURI, ep.SwaggerURI = base+"/score", base+"/swagger.json"
	eff := modelship.EffectiveTraffic(ep.Versions)
	state := modelship.StateHealthy
	for i := range ep.Versions {
		v := &ep.Versions[i]
		v.EffectiveTrafficPercentile = eff[v.Name]
		v.ScoringURI = base + "/versions/" + v.Name + "/score"
		svc, err := c.store().FindService(ctx, ep.Workspace, versionService(ep.Name, v.Name))
		if err != nil {
			continue
		}
		svc = c.decorate(ctx, svc)
		v.State, v.Error, v.Models, v.Replicas, v.DesiredReplicas = svc.State, svc.Error, svc.Models, svc.Replicas, svc.DesiredReplicas
		st := svc.Settings
		v.Settings = &st
		if v.IsDefault || state == modelship.StateHealthy {
			if svc.State != modelship.StateHealthy {
				state = svc.State
			}
		}
		if metrics && c.cfg.VersionStats != nil {
			if s, ok := c.cfg.VersionStats(ep.Name, v.Name); ok {
				v.Stats = s
			}
		}
	}
	c.mu.Lock()
	busy := c.busy[key(ep.Workspace, ep.Name)] != ""
	c.mu.Unlock()
	if busy {
		state = modelship.StateTransitioning
	}
	if ep.State != modelship.StateDeleting {
		ep.State = state
	}
	if metrics {
		ep.Comparisons = compareVersions(ep.Versions)
	}
	return ep
}

// compareVersions compares every treatment with the control at 95%.
func compareVersions(versions []modelship.EndpointVersion) []modelship.VersionComparison {
	var control *modelship.EndpointVersion
	for i := range versions {
		if versions[i].VersionType == modelship.VersionTypeControl {
			control = &versions[i]
		}
	}
	if control == nil || control.Stats == nil {
		return nil
	}
	var out []modelship.VersionComparison
	for i := range versions {
		t := &versions[i]
		if t == control || t.Stats == nil {
			continue
		}
		out = append(out, Compare(t.Name, t.Stats, control.Name, control.Stats))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Treatment < out[j].Treatment })
	return out
}

// minComparisonSamples is the least number of requests per version before
// a verdict is given.
const minComparisonSamples = 30

// Compare tests a treatment against the control: error rate (5xx share) by
// a two-proportion z-test, latency by Mann-Whitney U on the histograms.
func Compare(treatment string, ts *modelship.VersionStats, control string, cs *modelship.VersionStats) modelship.VersionComparison {
	cmp := modelship.VersionComparison{Treatment: treatment, Control: control, TreatmentRequests: ts.Total, ControlRequests: cs.Total,
		TreatmentErrorRate: ts.ErrorRate, ControlErrorRate: cs.ErrorRate, TreatmentP50: ts.P50, ControlP50: cs.P50}
	if ts.Total < minComparisonSamples || cs.Total < minComparisonSamples {
		cmp.ErrorRateVerdict, cmp.LatencyVerdict = modelship.VerdictTooFewData, modelship.VerdictTooFewData
		cmp.ErrorRateP, cmp.LatencyP = 1, 1
		return cmp
	}
	cmp.ErrorRateZ, cmp.ErrorRateP = stats.TwoProportionZ(ts.Requests["5xx"], ts.Total, cs.Requests["5xx"], cs.Total)
	cmp.ErrorRateVerdict = verdict(cmp.ErrorRateZ, cmp.ErrorRateP)
	cmp.LatencyZ, cmp.LatencyP = stats.MannWhitneyBinned(toBins(ts.Latency), toBins(cs.Latency))
	cmp.LatencyVerdict = verdict(cmp.LatencyZ, cmp.LatencyP)
	return cmp
}

// verdict: a positive z means the treatment has more errors / is slower.
func verdict(z, p float64) string {
	switch {
	case p >= 0.05:
		return modelship.VerdictNoDifference
	case z > 0:
		return modelship.VerdictWorse
	default:
		return modelship.VerdictBetter
	}
}

func toBins(b []modelship.LatencyBucket) []stats.Bin {
	out := make([]stats.Bin, len(b))
	for i, x := range b {
		ub := float64(x.UpperBound)
		if x.UpperBound == 0 {
			ub = 1e300
		}
		out[i] = stats.Bin{Upper: ub, Count: x.Count}
	}
	return out
}

// EndpointKeys returns the endpoint's keys.
func (c *Controller) EndpointKeys(ctx context.Context, ws, name string) (*modelship.ServiceKeys, error) {
	ep, err := c.store().FindEndpoint(ctx, ws, name)
	if err != nil {
		return nil, err
	}
	if ep.AuthMode != modelship.AuthKey {
		return nil, modelship.Errorf(modelship.EINVALID, "endpoint %q does not use key auth (auth mode %q)", name, ep.AuthMode)
	}
	c.mu.Lock()
	k := c.keys[key(ws, name)]
	c.mu.Unlock()
	return &modelship.ServiceKeys{PrimaryKey: k[0], SecondaryKey: k[1]}, nil
}

// RegenEndpointKey replaces an endpoint key.
func (c *Controller) RegenEndpointKey(ctx context.Context, ws, name, which, value string) (*modelship.ServiceKeys, error) {
	if _, err := c.EndpointKeys(ctx, ws, name); err != nil {
		return nil, err
	}
	return c.regen(ctx, ws, name, which, value)
}

// EndpointToken issues an access token for a token-auth endpoint.
func (c *Controller) EndpointToken(ctx context.Context, ws, name string) (*modelship.AccessToken, error) {
	ep, err := c.store().FindEndpoint(ctx, ws, name)
	if err != nil {
		return nil, err
	}
	if ep.AuthMode != modelship.AuthToken {
		return nil, modelship.Errorf(modelship.EINVALID, "endpoint %q does not use token auth; update it with --token-auth-enabled --auth-enabled=false", name)
	}
	tok, err := c.cfg.Signer.Issue(audience(ws, name), c.cfg.TokenTTL)
	if err != nil {
		return nil, err
	}
	return &modelship.AccessToken{AccessToken: tok.AccessToken, TokenType: tok.TokenType, RefreshAfter: tok.RefreshAfter, ExpiryOn: tok.ExpiryOn}, nil
}

// EndpointLogs returns the logs of one version, or of every version.
func (c *Controller) EndpointLogs(ctx context.Context, ws, name, version string, opts modelship.LogOptions) ([]string, error) {
	ep, err := c.store().FindEndpoint(ctx, ws, name)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, v := range ep.Versions {
		if version != "" && v.Name != version {
			continue
		}
		svc, err := c.store().FindService(ctx, ws, versionService(name, v.Name))
		if err != nil {
			continue
		}
		d, _, err := c.driverFor(ctx, ws, svc.ComputeTarget)
		if err != nil {
			return nil, err
		}
		lines, err := d.Logs(ctx, c.deploymentID(ws, svc.Name), opts)
		if err != nil && modelship.ErrorCode(err) != modelship.ENOTFOUND {
			return nil, err
		}
		for _, l := range lines {
			if version == "" {
				l = "[" + v.Name + "] " + l
			}
			out = append(out, l)
		}
	}
	if version != "" && !hasVersion(ep, version) {
		return nil, modelship.Errorf(modelship.ENOTFOUND, "endpoint %q has no version %q; it has %s", name, version, versionNames(ep))
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}
