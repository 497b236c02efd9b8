package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/auth"
	"github.com/modelship/modelship/compute"
)

func (c *Controller) deploymentID(ws, name string) string { return ws + "/" + name }

// Deploy validates a deploy request, records the service and starts the
// asynchronous Create operation.
func (c *Controller) Deploy(ctx context.Context, ws string, req *modelship.DeployRequest) (*modelship.Service, *modelship.Operation, error) {
	if err := modelship.ValidateServiceName(req.Name); err != nil {
		return nil, nil, err
	}
	if _, err := c.store().FindWorkspace(ctx, ws); err != nil {
		return nil, nil, err
	}
	dc := &modelship.DeploymentConfig{}
	if len(req.DeploymentConfig) > 0 && string(req.DeploymentConfig) != "null" {
		var err error
		if dc, err = modelship.ParseDeploymentConfig(req.DeploymentConfig); err != nil {
			return nil, nil, err
		}
	}
	if dc.ComputeType == nil {
		// Azure's CLI needs --dc or --compute-type; here a service is the
		// default (AKS semantics on whichever target is chosen).
		aks := "aks"
		dc.ComputeType = &aks
	}
	settings, err := dc.Resolve()
	if err != nil {
		return nil, nil, err
	}
	if settings.ComputeType == modelship.ComputeTypeAKSEndpoint {
		return nil, nil, modelship.Errorf(modelship.EINVALID, "computeType AKSENDPOINT describes an endpoint version; create endpoints with `modelship endpoint create`")
	}
	target := req.ComputeTarget
	if target == "" && dc.ComputeTargetName != nil {
		target = *dc.ComputeTargetName
	}
	if target == "" {
		target = modelship.DefaultLocalTarget
	}
	ct, err := c.store().FindComputeTarget(ctx, ws, target)
	if err != nil {
		return nil, nil, err
	}
	models, err := c.resolveModels(ctx, ws, req.Models)
	if err != nil {
		return nil, nil, err
	}
	inf := req.Inference
	if err := c.checkInference(ctx, &inf, models); err != nil {
		return nil, nil, err
	}
	if err := c.checkGatewayName(ctx, ws, req.Name); err != nil {
		return nil, nil, err
	}
	existing, err := c.findService(ctx, ws, req.Name)
	if err == nil {
		if !req.Overwrite {
			return nil, nil, modelship.Errorf(modelship.ECONFLICT, "service %q already exists in workspace %q; pass --overwrite to replace it, or use `modelship service update`", req.Name, ws)
		}
		return c.replace(ctx, existing, target, models, inf, settings, dc)
	} else if modelship.ErrorCode(err) != modelship.ENOTFOUND {
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
	svc := &modelship.Service{
		Workspace: ws, Name: req.Name, ComputeType: settings.ComputeType, ComputeTarget: target, Models: modelIDs(models),
		Inference: inf, Settings: *settings, State: modelship.StateTransitioning, Generation: 1,
		Description: settings.Description, Tags: orEmpty(settings.Tags), Properties: orEmpty(settings.Properties),
		CreatedTime: now, UpdatedTime: now, DesiredReplicas: initialReplicas(settings),
	}
	op, err := c.beginOp(ctx, svc, modelship.OpCreate)
	if err != nil {
		return nil, nil, err
	}
	svc.LastOperation = op.ID
	if err := c.store().CreateService(ctx, svc, sealed); err != nil {
		c.endOp(svc, op, modelship.OpFailed, &modelship.ServiceError{Code: "Conflict", Message: modelship.ErrorMessage(err)})
		return nil, nil, err
	}
	c.mu.Lock()
	c.keys[key(ws, svc.Name)] = keys
	c.mu.Unlock()
	c.logOp(op, "Creating service %s on compute target %s with %s", svc.Name, target, strings.Join(svc.Models, ", "))
	for _, w := range append(dc.Warnings(), settingsNotes(settings, ct.Type)...) {
		c.logOp(op, "Note: %s", w)
	}
	if err := c.applyService(ctx, svc); err != nil {
		c.failOp(svc, op, "DeploymentFailed", err)
		return c.decorate(ctx, svc), op, nil
	}
	c.store().PutService(ctx, svc)
	c.startFollow(svc, op)
	c.startObserver(svc.Workspace, svc.Name)
	return c.decorate(ctx, svc), op, nil
}

// settingsNotes lists the settings without effect on a target of type
// targetType.
// shortDigest returns the first 12 characters of a digest (all of a
// shorter one).
func shortDigest(d string) string {
	if len(d) > 12 {
		return d[:12]
	}
	return d
}

func settingsNotes(s *modelship.ServiceSettings, targetType string) []string {
	if targetType != modelship.TargetLocal {
		return nil
	}
	var out []string
	if s.CPULimit > 0 {
		out = append(out, fmt.Sprintf("cpuLimit %g is recorded; the local target counts CPU requests against capacity but does not throttle CPU", s.CPULimit))
	}
	if s.Namespace != "" {
		out = append(out, "namespace has no effect on the local compute target (it has no Kubernetes namespaces); it is recorded with the service")
	}
	return out
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func initialReplicas(s *modelship.ServiceSettings) int {
	if s.AutoscaleEnabled {
		return s.MinReplicas
	}
	return s.NumReplicas
}

func modelIDs(models []*modelship.ModelVersion) []string {
	out := make([]string, len(models))
	for i, m := range models {
		out[i] = m.ID()
	}
	return out
}

func (c *Controller) resolveModels(ctx context.Context, ws string, refs []string) ([]*modelship.ModelVersion, error) {
	if len(refs) > 1000 {
		return nil, modelship.Errorf(modelship.EINVALID, "%d models given; at most 1000 can be deployed together", len(refs))
	}
	var out []*modelship.ModelVersion
	seen := map[string]bool{}
	for _, r := range refs {
		ref, err := modelship.ParseModelRef(r)
		if err != nil {
			return nil, err
		}
		mv, err := c.cfg.Models.FindModel(ctx, ws, ref)
		if err != nil {
			return nil, err
		}
		if seen[mv.ID()] {
			return nil, modelship.Errorf(modelship.EINVALID, "model %s is listed twice", mv.ID())
		}
		seen[mv.ID()] = true
		out = append(out, mv)
	}
	return out, nil
}

// checkInference chooses the runtime and checks the code exists.
func (c *Controller) checkInference(ctx context.Context, inf *modelship.InferenceSpec, models []*modelship.ModelVersion) error {
	if inf.EntryScript != "" {
		if !strings.HasSuffix(inf.EntryScript, ".py") {
			return modelship.Errorf(modelship.EINVALID, "entryScript %q is not a .py file; only Python drivers are supported", inf.EntryScript)
		}
		if inf.SourceDigest == "" {
			return modelship.Errorf(modelship.EINVALID, "the entry script's source folder was not uploaded (inference.sourceDigest is empty)")
		}
		rc, err := c.cfg.Artifacts.Open(ctx, inf.SourceDigest)
		if err != nil {
			return modelship.Errorf(modelship.EINVALID, "source folder %s was not uploaded; upload it first (POST .../sources)", inf.SourceDigest)
		}
		rc.Close()
		inf.Runtime = modelship.RuntimePython
		return nil
	}
	if len(models) != 1 {
		return modelship.Errorf(modelship.EINVALID, "no entry script given: a deployment without a scoring script (no-code deploy) takes exactly one Onnx or ScikitLearn model, got %d models; add an inference config with entryScript", len(models))
	}
	mv := models[0]
	switch {
	case mv.ModelFramework == modelship.FrameworkOnnx || strings.HasSuffix(strings.ToLower(mv.FileName), ".onnx"):
		inf.Runtime = modelship.RuntimeONNX
	case mv.ModelFramework == modelship.FrameworkScikitLearn:
		inf.Runtime = modelship.RuntimeSklearn
	default:
		return modelship.Errorf(modelship.EINVALID, "no entry script given and model %s has framework %q: no-code deploy supports Onnx and ScikitLearn models; register it with --model-framework or add an inference config with entryScript", mv.ID(), mv.ModelFramework)
	}
	return nil
}

// checkGatewayName: scoring URIs carry only the service name, so a name is
// unique across the workspaces that share this front end.
func (c *Controller) checkGatewayName(ctx context.Context, ws, name string) error {
	all, err := c.store().ListServices(ctx, "")
	if err != nil {
		return err
	}
	for _, s := range all {
		if s.Name == name && s.Workspace != ws {
			return modelship.Errorf(modelship.ECONFLICT, "service name %q is already used in workspace %q; scoring URIs (/api/v1/service/<name>/score) are shared by all workspaces, so pick another name", name, s.Workspace)
		}
	}
	eps, err := c.store().ListEndpoints(ctx, "")
	if err != nil {
		return err
	}
	for _, e := range eps {
		if e.Name == name {
			return modelship.Errorf(modelship.ECONFLICT, "the name %q is taken by an endpoint in workspace %q; services and endpoints share one name space on the front end", name, e.Workspace)
		}
	}
	return nil
}

func initialKeys(dc *modelship.DeploymentConfig) ([2]string, error) {
	var keys [2]string
	if dc.Keys != nil {
		if dc.Keys.PrimaryKey != nil {
			keys[0] = *dc.Keys.PrimaryKey
		}
		if dc.Keys.SecondaryKey != nil {
			keys[1] = *dc.Keys.SecondaryKey
		}
	}
	for i := range keys {
		if keys[i] == "" {
			k, err := auth.GenerateKey()
			if err != nil {
				return keys, err
			}
			keys[i] = k
		}
	}
	if keys[0] == keys[1] {
		return keys, modelship.Errorf(modelship.EINVALID, "keys.primaryKey and keys.secondaryKey are the same; give two different keys")
	}
	return keys, nil
}

func (c *Controller) seal(keys [2]string) ([2]string, error) {
	var out [2]string
	for i, k := range keys {
		s, err := c.cfg.Sealer.Seal(k)
		if err != nil {
			return out, err
		}
		out[i] = s
	}
	return out, nil
}

func (c *Controller) loadKeys(ctx context.Context, ws, name string) error {
	sealed, err := c.store().ServiceKeys(ctx, ws, name)
	if err != nil {
		return err
	}
	var keys [2]string
	for i, s := range sealed {
		if keys[i], err = c.cfg.Sealer.Open(s); err != nil {
			return fmt.Errorf("unsealing keys of %s: %w", name, err)
		}
	}
	c.mu.Lock()
	c.keys[key(ws, name)] = keys
	c.mu.Unlock()
	return nil
}

// revision hashes everything that needs new replicas when it changes.
func revision(svc *modelship.Service, env map[string]string) string {
	h := sha256.New()
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%s\n", k, env[k])
	}
	s := svc.Settings
	fmt.Fprintf(h, "cpu=%g mem=%g limit=%g gpus=%d\n", s.CPU, s.MemoryGB, s.MemoryGBLimit, s.GPUs)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// specFor builds the driver spec of a service. On this machine's targets
// it materializes the models and source folder and points the replicas at
// them; on a cluster (remote) the replicas fetch them from the control
// plane at start with a token scoped to the deployment.
func (c *Controller) specFor(ctx context.Context, svc *modelship.Service, ct *modelship.ComputeTarget) (*compute.Spec, error) {
	var models []*modelship.ModelVersion
	for _, id := range svc.Models {
		ref, err := modelship.ParseModelRef(id)
		if err != nil {
			return nil, err
		}
		mv, err := c.cfg.Models.FindModel(ctx, svc.Workspace, ref)
		if err != nil {
			return nil, fmt.Errorf("model %s of service %s: %w", id, svc.Name, err)
		}
		models = append(models, mv)
	}
	remote := ct != nil && ct.Type == modelship.TargetKubernetes
	s := svc.Settings
	env := map[string]string{}
	var secretEnv map[string]string
	if remote {
		if s.Namespace != "" && ct.Kubernetes != nil && s.Namespace != ct.Kubernetes.Namespace {
			return nil, modelship.Errorf(modelship.EINVALID, "namespace %q: compute target %s deploys into namespace %q (chosen when it was attached); drop namespace from the deployment config or attach the cluster with --namespace %s",
				s.Namespace, ct.Name, ct.Kubernetes.Namespace, s.Namespace)
		}
		if c.cfg.AdvertiseURL == "" {
			return nil, modelship.Errorf(modelship.EINVALID, "replicas on compute target %s fetch their files from the control plane, but the server has no address they can reach: start it with --advertise-url", ct.Name)
		}
		// The manifest hash makes a new model set a new revision; the
		// token is not part of it (it lives in a Secret).
		mh := sha256.New()
		for _, mv := range models {
			fmt.Fprintf(mh, "%s %s\n", mv.ID(), mv.SHA256)
		}
		fmt.Fprintf(mh, "source %s\n", svc.Inference.SourceDigest)
		env["MODELSHIP_FETCH_DEPLOYMENT"] = svc.Workspace + "/" + svc.Name
		env["MODELSHIP_FETCH_DIR"] = "/tmp/modelship-files"
		env["MODELSHIP_FETCH_SHA256"] = hex.EncodeToString(mh.Sum(nil))[:16]
		fa, err := c.FetchAccess(ctx, svc.Workspace, svc.Name)
		if err != nil {
			return nil, fmt.Errorf("issuing the fetch token: %w", err)
		}
		// The URL goes with the token: a server that comes back on another
		// address reaches new pods without rolling the running ones.
		secretEnv = map[string]string{"MODELSHIP_FETCH_TOKEN": fa.Token, "MODELSHIP_FETCH_URL": c.cfg.AdvertiseURL}
	} else {
		lh := sha256.New()
		for _, mv := range models {
			fmt.Fprintf(lh, "%s %s\n", mv.ID(), mv.SHA256)
		}
		layout := filepath.Join(c.cfg.DataDir, "deployments", svc.Workspace, svc.Name, hex.EncodeToString(lh.Sum(nil))[:12])
		modelDir, err := c.cache.modelRoot(ctx, layout, models)
		if err != nil {
			return nil, fmt.Errorf("preparing models: %w", err)
		}
		if c.cfg.ReplicaEnv != nil {
			for k, v := range c.cfg.ReplicaEnv() {
				env[k] = v
			}
		}
		env["AZUREML_MODEL_DIR"] = modelDir
		if svc.Inference.EntryScript != "" {
			src, err := c.cache.sourceDir(ctx, svc.Inference.SourceDigest)
			if err != nil {
				return nil, fmt.Errorf("preparing the source folder: %w", err)
			}
			// The replica's own app root: the source files plus
			// azureml-models/, as Azure's /var/azureml-app.
			app := filepath.Join(layout, "app-"+shortDigest(svc.Inference.SourceDigest))
			if err := c.cache.appRoot(app, src, filepath.Join(layout, "azureml-models")); err != nil {
				return nil, fmt.Errorf("preparing the app root: %w", err)
			}
			env["AZUREML_SOURCE_DIRECTORY"] = app
			env["AML_APP_ROOT"] = app
		}
	}
	for k, v := range map[string]string{
		"MODELSHIP_RUNTIME":            svc.Inference.Runtime,
		"SCORING_TIMEOUT_MS":           strconv.FormatInt(s.ScoringTimeout.Milliseconds(), 10),
		"WORKER_COUNT":                 strconv.Itoa(max(s.MaxConcurrentRequestsPerContainer, 1)),
		"SERVICE_NAME":                 svc.Name,
		"WORKSPACE_NAME":               svc.Workspace,
		"AML_APP_INSIGHTS_ENABLED":     strconv.FormatBool(s.AppInsightsEnabled),
		"AML_MODEL_DC_STORAGE_ENABLED": strconv.FormatBool(s.DataCollectionEnabled),
		"MODELSHIP_MAX_CONCURRENCY":    strconv.Itoa(max(s.MaxConcurrentRequestsPerContainer, 1)),
		"GOMAXPROCS":                   strconv.Itoa(replicaProcs(s.CPU, s.CPULimit)),
	} {
		env[k] = v
	}
	if len(models) == 1 {
		env["MODELSHIP_MODEL_NAME"] = models[0].Name
		env["MODELSHIP_MODEL_VERSION"] = strconv.Itoa(models[0].Version)
	}
	if svc.Inference.EntryScript != "" {
		env["AZUREML_ENTRY_SCRIPT"] = svc.Inference.EntryScript
	}
	if svc.Inference.PythonInterpreter != "" {
		env["MODELSHIP_PYTHON"] = svc.Inference.PythonInterpreter
	}
	for k, v := range svc.Inference.EnvironmentVariables {
		env[k] = v
	}
	if s.CollectRequests {
		env["MODELSHIP_COLLECT_REQUESTS"] = "true"
		rate := s.SamplingRate
		if rate <= 0 {
			rate = 1
		}
		env["MODELSHIP_SAMPLING_RATE"] = strconv.FormatFloat(rate, 'g', -1, 64)
	}
	// Where replicas on this machine store collected model data and
	// request telemetry (set only when on, so other services keep their
	// revision). Replicas in a cluster log them to their output instead.
	if !remote {
		if b, _ := strconv.ParseBool(env["MODELSHIP_COLLECT_REQUESTS"]); s.DataCollectionEnabled || b {
			env["MODELSHIP_MODELDATA_DIR"] = filepath.Join(c.cfg.DataDir, "modeldata")
		}
		if s.AppInsightsEnabled {
			env["MODELSHIP_TELEMETRY_DIR"] = filepath.Join(c.cfg.DataDir, "telemetry")
		}
	}
	spec := &compute.Spec{
		ID: c.deploymentID(svc.Workspace, svc.Name), Replicas: svc.DesiredReplicas, Env: env, SecretEnv: secretEnv,
		CPU: s.CPU, MemoryGB: s.MemoryGB, MemoryLimitGB: s.MemoryGBLimit, GPUs: s.GPUs,
		Liveness: compute.Probe{Period: s.Liveness.Period, InitialDelay: s.Liveness.InitialDelay, Timeout: s.Liveness.Timeout,
			SuccessThreshold: s.Liveness.SuccessThreshold, FailureThreshold: s.Liveness.FailureThreshold},
		StartTimeout: 10 * time.Minute,
		Autoscaled:   remote && s.AutoscaleEnabled,
	}
	if remote {
		spec.Image = svc.Inference.BaseImage
	}
	spec.Revision = revision(svc, env)
	if spec.Image != "" {
		spec.Revision = revision(svc, map[string]string{"image": spec.Image, "rev": spec.Revision})
	}
	return spec, nil
}

// applyService sends the service's desired state to its driver and
// records the revision in svc (the caller persists it).
func (c *Controller) applyService(ctx context.Context, svc *modelship.Service) error {
	d, ct, err := c.driverFor(ctx, svc.Workspace, svc.ComputeTarget)
	if err != nil {
		return err
	}
	spec, err := c.specFor(ctx, svc, ct)
	if err != nil {
		return err
	}
	svc.Revision = spec.Revision
	return d.Apply(ctx, spec)
}

// findService returns a user-visible service (not an endpoint version).
func (c *Controller) findService(ctx context.Context, ws, name string) (*modelship.Service, error) {
	svc, err := c.store().FindService(ctx, ws, name)
	if err != nil {
		return nil, err
	}
	if svc.Endpoint != "" {
		return nil, modelship.Errorf(modelship.ENOTFOUND, "service %q not found in workspace %q (it is version %q of endpoint %q; use `modelship endpoint`)", name, ws, svc.Version, svc.Endpoint)
	}
	return svc, nil
}

// Get returns a service with its live replica states and URIs.
func (c *Controller) Get(ctx context.Context, ws, name string) (*modelship.Service, error) {
	svc, err := c.findService(ctx, ws, name)
	if err != nil {
		return nil, err
	}
	return c.decorate(ctx, svc), nil
}

// List returns a workspace's services.
func (c *Controller) List(ctx context.Context, ws string) ([]*modelship.Service, error) {
	all, err := c.store().ListServices(ctx, ws)
	if err != nil {
		return nil, err
	}
	svcs := []*modelship.Service{}
	for _, s := range all {
		if s.Endpoint == "" {
			svcs = append(svcs, c.decorate(ctx, s))
		}
	}
	return svcs, nil
}

func (c *Controller) decorate(ctx context.Context, svc *modelship.Service) *modelship.Service {
	base := c.frontEndBase(ctx, svc.Workspace, svc.ComputeTarget) + "/api/v1/service/" + svc.Name
	svc.ScoringURI = base + "/score"
	svc.SwaggerURI = base + "/swagger.json"
	svc.Replicas = []modelship.ReplicaInfo{}
	if c.cfg.ScaleStatus != nil && svc.Settings.AutoscaleEnabled {
		route, version := svc.Name, svc.Name
		if svc.Endpoint != "" {
			route, version = svc.Endpoint, svc.Version
		}
		svc.Scaling = c.cfg.ScaleStatus(route, version)
	}
	c.mu.Lock()
	d := c.drivers[c.driverKey(svc.Workspace, svc.ComputeTarget)]
	c.mu.Unlock()
	if d == nil {
		return svc
	}
	st, err := d.Status(ctx, c.deploymentID(svc.Workspace, svc.Name))
	if err != nil {
		return svc
	}
	for _, r := range st.Replicas {
		svc.Replicas = append(svc.Replicas, modelship.ReplicaInfo{ID: r.ID, State: r.State, Ready: r.Ready, Restarts: r.Restarts,
			LastExit: r.LastExit, Started: r.StartedAt, Revision: r.Revision})
	}
	return svc
}

func (c *Controller) driverKey(ws, target string) string {
	if target == modelship.DefaultLocalTarget {
		return "*/local"
	}
	return key(ws, target)
}

// Keys returns a service's keys.
func (c *Controller) Keys(ctx context.Context, ws, name string) (*modelship.ServiceKeys, error) {
	svc, err := c.findService(ctx, ws, name)
	if err != nil {
		return nil, err
	}
	if svc.Settings.AuthMode != modelship.AuthKey {
		return nil, modelship.Errorf(modelship.EINVALID, "service %q does not use key auth (auth mode %q); keys exist only when authEnabled is true", name, svc.Settings.AuthMode)
	}
	c.mu.Lock()
	k := c.keys[key(ws, name)]
	c.mu.Unlock()
	return &modelship.ServiceKeys{PrimaryKey: k[0], SecondaryKey: k[1]}, nil
}

// RegenKey replaces the Primary or Secondary key (with value when given).
// The old key stops working at the front end before this returns.
func (c *Controller) RegenKey(ctx context.Context, ws, name, which, value string) (*modelship.ServiceKeys, error) {
	if which != "Primary" && which != "Secondary" {
		return nil, modelship.Errorf(modelship.EINVALID, "key %q is invalid; use Primary or Secondary (capitalised, as in Azure)", which)
	}
	if _, err := c.Keys(ctx, ws, name); err != nil {
		return nil, err
	}
	return c.regen(ctx, ws, name, which, value)
}

// regen replaces one key of a service or endpoint.
func (c *Controller) regen(ctx context.Context, ws, name, which, value string) (*modelship.ServiceKeys, error) {
	if which != "Primary" && which != "Secondary" {
		return nil, modelship.Errorf(modelship.EINVALID, "key %q is invalid; use Primary or Secondary (capitalised, as in Azure)", which)
	}
	i := 0
	if which == "Secondary" {
		i = 1
	}
	if value == "" {
		k, err := auth.GenerateKey()
		if err != nil {
			return nil, err
		}
		value = k
	} else if err := modelship.ValidateKey("the key", value); err != nil {
		return nil, err
	}
	c.mu.Lock()
	keys := c.keys[key(ws, name)]
	c.mu.Unlock()
	if keys[1-i] == value {
		return nil, modelship.Errorf(modelship.EINVALID, "the new %s key equals the other key; give a different value", strings.ToLower(which))
	}
	keys[i] = value
	sealed, err := c.seal(keys)
	if err != nil {
		return nil, err
	}
	if err := c.store().SetServiceKeys(ctx, ws, name, sealed); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.keys[key(ws, name)] = keys
	c.mu.Unlock()
	c.publish(ctx)
	c.log.Info("service key regenerated", "workspace", ws, "service", name, "key", which)
	return &modelship.ServiceKeys{PrimaryKey: keys[0], SecondaryKey: keys[1]}, nil
}

// Token issues an access token for a token-auth service.
func (c *Controller) Token(ctx context.Context, ws, name string) (*modelship.AccessToken, error) {
	svc, err := c.findService(ctx, ws, name)
	if err != nil {
		return nil, err
	}
	if svc.Settings.AuthMode != modelship.AuthToken {
		return nil, modelship.Errorf(modelship.EINVALID, "service %q does not use token auth; deploy or update it with tokenAuthEnabled: true (and authEnabled: false)", name)
	}
	tok, err := c.cfg.Signer.Issue(audience(ws, name), c.cfg.TokenTTL)
	if err != nil {
		return nil, err
	}
	return &modelship.AccessToken{AccessToken: tok.AccessToken, TokenType: tok.TokenType, RefreshAfter: tok.RefreshAfter, ExpiryOn: tok.ExpiryOn}, nil
}

func audience(ws, name string) string { return "modelship:" + ws + "/" + name }

// Logs returns replica output.
func (c *Controller) Logs(ctx context.Context, ws, name string, opts modelship.LogOptions) ([]string, error) {
	svc, err := c.findService(ctx, ws, name)
	if err != nil {
		return nil, err
	}
	d, _, err := c.driverFor(ctx, ws, svc.ComputeTarget)
	if err != nil {
		return nil, err
	}
	lines, err := d.Logs(ctx, c.deploymentID(ws, name), opts)
	if modelship.ErrorCode(err) == modelship.ENOTFOUND && opts.Replica < 0 {
		return []string{}, nil
	}
	return lines, err
}

// ModelInUse reports which service uses a model version ("" if none).
func (c *Controller) ModelInUse(ctx context.Context, ws string, mv *modelship.ModelVersion) (string, error) {
	svcs, err := c.store().ListServices(ctx, ws)
	if err != nil {
		return "", err
	}
	for _, s := range svcs {
		for _, m := range s.Models {
			if m == mv.ID() {
				if s.Endpoint != "" {
					return fmt.Sprintf("version %q of endpoint %q", s.Version, s.Endpoint), nil
				}
				return fmt.Sprintf("service %q", s.Name), nil
			}
		}
	}
	return "", nil
}

// SourceDigests lists the source folders services use (kept by the
// artifact garbage collector).
func (c *Controller) SourceDigests(ctx context.Context) ([]string, error) {
	svcs, err := c.store().ListServices(ctx, "")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range svcs {
		if s.Inference.SourceDigest != "" {
			out = append(out, s.Inference.SourceDigest)
		}
	}
	return out, nil
}

// removeLayout deletes a service's model layouts.
func (c *Controller) removeLayout(ws, name string) {
	os.RemoveAll(filepath.Join(c.cfg.DataDir, "deployments", ws, name))
}

// replicaProcs is the replica's Go parallelism (GOMAXPROCS): the CPU it may
// use, rounded up: its cpuLimit, else its cpu request; at least 1. This is
// what Go does by itself in a container with a CPU limit, applied on every
// target. A replica that asked for one core or less then runs its HTTP
// side on one thread instead of handing requests between as many threads
// as the machine has cores, which measured 30 % less CPU per request on a
// 2-core machine (docs/architecture.md, "Memory and CPU of a replica").
// GOMAXPROCS in the inference config's environmentVariables wins.
func replicaProcs(cpu, cpuLimit float64) int {
	c := cpu
	if cpuLimit > 0 {
		c = cpuLimit
	}
	return max(1, int(math.Ceil(c-1e-9)))
}
