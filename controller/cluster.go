package controller

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/compute"
)

// AttachFunc validates a cluster for a kubernetes target before anything is
// saved or created, and fills ct: the attachment's ClusterID, Server,
// Context, Version and ReadyNodes, and the target's capacity. kubeconfig is
// the plaintext file. It returns warnings for the user.
type AttachFunc func(ctx context.Context, ct *modelship.ComputeTarget, kubeconfig []byte) (warnings []string, err error)

// attachTimeout bounds an attachment (validation, front-end install).
const attachTimeout = 2 * time.Minute

var pullPolicies = []string{"Always", "IfNotPresent", "Never"}

// AttachKubernetes attaches a cluster as a compute target: it validates the
// cluster (reachable, permissions, capacity for the purpose, not attached
// already under any name), installs the in-cluster front end in the
// namespace, then saves the target with the kubeconfig sealed. Nothing is
// saved when a step fails, and what was installed is removed.
func (c *Controller) AttachKubernetes(ctx context.Context, ws string, req *modelship.AttachRequest) (*modelship.ComputeTarget, []string, error) {
	if c.cfg.Attach == nil {
		return nil, nil, modelship.Errorf(modelship.EINVALID, "this server cannot attach Kubernetes clusters")
	}
	if err := modelship.ValidateComputeName(req.Name); err != nil {
		return nil, nil, err
	}
	if req.Name == modelship.DefaultLocalTarget {
		return nil, nil, modelship.Errorf(modelship.ECONFLICT, "the local target %q is built in; choose another name", req.Name)
	}
	if strings.TrimSpace(req.Kubeconfig) == "" {
		return nil, nil, modelship.Errorf(modelship.EINVALID, "kubeconfig is empty; give the kubeconfig file of the cluster (--kubeconfig)")
	}
	fe := req.FrontEndService
	if fe == "" {
		fe = modelship.FrontEndNodePort
	}
	if !slices.Contains([]string{modelship.FrontEndNodePort, modelship.FrontEndLoadBalancer, modelship.FrontEndClusterIP}, fe) {
		return nil, nil, modelship.Errorf(modelship.EINVALID, "front-end service type %q is invalid; use NodePort, LoadBalancer or ClusterIP", fe)
	}
	if req.ImagePullPolicy != "" && !slices.Contains(pullPolicies, req.ImagePullPolicy) {
		return nil, nil, modelship.Errorf(modelship.EINVALID, "image pull policy %q is invalid; use Always, IfNotPresent or Never", req.ImagePullPolicy)
	}
	image := req.Image
	if image == "" {
		image = c.cfg.DefaultImage
	}
	if image == "" {
		return nil, nil, modelship.Errorf(modelship.EINVALID, "an image is required (--image): the image with modelship that replicas and the front end run (build it with `modelship image build`)")
	}
	if _, err := c.store().FindWorkspace(ctx, ws); err != nil {
		return nil, nil, err
	}
	if _, err := c.store().FindComputeTarget(ctx, ws, req.Name); err == nil {
		return nil, nil, modelship.Errorf(modelship.ECONFLICT, "compute target %q already exists in workspace %q", req.Name, ws)
	}
	purpose := req.ClusterPurpose
	if purpose == "" {
		purpose = modelship.PurposeFastProd
	}
	ns := req.Namespace
	if ns == "" {
		ns = "default"
	}
	ct := &modelship.ComputeTarget{Workspace: ws, Name: req.Name, Type: modelship.TargetKubernetes, ClusterPurpose: purpose,
		Description: req.Description, Kubernetes: &modelship.KubernetesAttachment{Context: req.Context, Namespace: ns, Image: image,
			ImagePullPolicy: req.ImagePullPolicy, FrontEndService: fe}}

	c.attachMu.Lock()
	defer c.attachMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, attachTimeout)
	defer cancel()
	warnings, err := c.cfg.Attach(ctx, ct, []byte(req.Kubeconfig))
	if err != nil {
		return nil, nil, err
	}
	if loopbackURL(c.cfg.AdvertiseURL) {
		warnings = append(warnings, fmt.Sprintf("replicas on this target download their files from %s, a loopback address pods cannot reach: restart the server with --advertise-url http://<address the pods reach>:<port> (and --listen on it)", c.cfg.AdvertiseURL))
	}
	all, err := c.store().ListComputeTargets(ctx, "")
	if err != nil {
		return nil, nil, err
	}
	for _, o := range all {
		if o.Kubernetes != nil && o.Kubernetes.ClusterID == ct.Kubernetes.ClusterID {
			return nil, nil, modelship.Errorf(modelship.ECONFLICT, "cluster %s (kube-system UID %s) is already attached as compute target %q in workspace %q; use that target, or detach it first",
				ct.Kubernetes.Server, ct.Kubernetes.ClusterID, o.Name, o.Workspace)
		}
	}
	sealed, err := c.cfg.Sealer.Seal(req.Kubeconfig)
	if err != nil {
		return nil, nil, fmt.Errorf("sealing the kubeconfig: %w", err)
	}
	ct.Kubernetes.SealedKubeconfig = sealed

	d, err := c.cfg.NewDriver(ct, func(string) { c.publish(context.Background()) })
	if err != nil {
		return nil, nil, clusterError("connecting to the cluster", err)
	}
	undo := func() {
		uctx, ucancel := context.WithTimeout(context.Background(), attachTimeout)
		defer ucancel()
		if cl, ok := d.(compute.Cluster); ok {
			if err := cl.Uninstall(uctx, true); err != nil {
				c.log.Error("removing what a failed attach installed", "target", ct.Name, "err", err)
			}
		}
		d.Close(uctx)
	}
	if cl, ok := d.(compute.Cluster); ok {
		if err := cl.InstallFrontEnd(ctx); err != nil {
			undo()
			return nil, nil, clusterError("installing the front end in namespace "+ns, err)
		}
		if url, ready, err := cl.FrontEnd(ctx); err == nil {
			ct.Kubernetes.FrontEndURL, ct.Kubernetes.FrontEndReady = url, ready
		} else {
			warnings = append(warnings, fmt.Sprintf("the front end's address is not known yet (%v); `computetarget show %s` reports it when it is", err, ct.Name))
		}
	}
	if err := c.store().CreateComputeTarget(ctx, ct); err != nil {
		undo()
		return nil, nil, err
	}
	c.mu.Lock()
	c.drivers[key(ws, ct.Name)] = d
	c.mu.Unlock()
	c.publish(ctx)
	return c.decorateTarget(ctx, ct), warnings, nil
}

// Detach removes a kubernetes target and everything modelship created in
// its namespace. Without force it refuses while services or endpoints use
// the target; with force it deletes them first.
func (c *Controller) Detach(ctx context.Context, ws, name string, force bool) error {
	ct, err := c.store().FindComputeTarget(ctx, ws, name)
	if err != nil {
		return err
	}
	if ct.Type != modelship.TargetKubernetes {
		return modelship.Errorf(modelship.EINVALID, "compute target %q is a %s target; remove it with `computetarget delete %s`", name, ct.Type, name)
	}
	svcs, eps, err := c.targetUsers(ctx, ws, name)
	if err != nil {
		return err
	}
	if n := len(svcs) + len(eps); n > 0 && !force {
		return modelship.Errorf(modelship.ECONFLICT, "compute target %q is used by %s; delete them first or detach with --force (which deletes them)",
			name, usersText(svcs, eps))
	}
	for _, s := range svcs {
		if err := c.waitOp(ctx, func() (*modelship.Operation, error) { return c.Delete(ctx, ws, s) }); err != nil {
			return fmt.Errorf("deleting service %s: %w", s, err)
		}
	}
	for _, e := range eps {
		if err := c.waitOp(ctx, func() (*modelship.Operation, error) { return c.DeleteEndpoint(ctx, ws, e) }); err != nil {
			return fmt.Errorf("deleting endpoint %s: %w", e, err)
		}
	}
	d, _, err := c.driverFor(ctx, ws, name)
	if err != nil {
		if !force {
			return fmt.Errorf("%w (with --force the target is removed without cleaning the cluster)", err)
		}
		c.log.Warn("detaching without cleaning the cluster", "target", name, "err", err)
	} else {
		if cl, ok := d.(compute.Cluster); ok {
			if err := cl.Uninstall(ctx, force); err != nil {
				return clusterError("removing modelship's objects from namespace "+ct.Kubernetes.Namespace, err)
			}
		}
		d.Close(ctx)
	}
	c.mu.Lock()
	delete(c.drivers, key(ws, name))
	delete(c.driverFail, key(ws, name))
	c.mu.Unlock()
	return c.store().DeleteComputeTarget(ctx, ws, name)
}

// clusterError keeps a domain error as it is and reports any other error of
// a cluster (the API server refused or failed) as unavailable, with its
// message, so the user sees what the cluster said.
func clusterError(what string, err error) error {
	if code := modelship.ErrorCode(err); code != modelship.EINTERNAL {
		return err
	}
	return modelship.Errorf(modelship.EUNAVAILABLE, "%s: %v", what, err)
}

// loopbackURL reports whether u's host is a loopback address or localhost.
func loopbackURL(u string) bool {
	pu, err := url.Parse(u)
	if err != nil {
		return false
	}
	h := pu.Hostname()
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// waitOp starts an operation and waits for it to end.
func (c *Controller) waitOp(ctx context.Context, start func() (*modelship.Operation, error)) error {
	op, err := start()
	if modelship.ErrorCode(err) == modelship.ENOTFOUND {
		return nil
	}
	if err != nil {
		return err
	}
	for {
		cur, err := c.store().FindOperation(ctx, op.ID, 1<<30)
		if err != nil {
			return err
		}
		switch cur.State {
		case modelship.OpSucceeded:
			return nil
		case modelship.OpFailed:
			if cur.Error != nil {
				return modelship.Errorf(modelship.EINTERNAL, "%s", cur.Error.Message)
			}
			return modelship.Errorf(modelship.EINTERNAL, "operation %s failed", op.ID)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// targetUsers lists the services and endpoints deployed on a target.
func (c *Controller) targetUsers(ctx context.Context, ws, target string) (svcs, eps []string, err error) {
	all, err := c.store().ListServices(ctx, ws)
	if err != nil {
		return nil, nil, err
	}
	for _, s := range all {
		if s.ComputeTarget != target {
			continue
		}
		if s.Endpoint != "" {
			if !slices.Contains(eps, s.Endpoint) {
				eps = append(eps, s.Endpoint)
			}
			continue
		}
		svcs = append(svcs, s.Name)
	}
	return svcs, eps, nil
}

func usersText(svcs, eps []string) string {
	var parts []string
	if len(svcs) > 0 {
		parts = append(parts, fmt.Sprintf("%d service(s): %s", len(svcs), strings.Join(svcs, ", ")))
	}
	if len(eps) > 0 {
		parts = append(parts, fmt.Sprintf("%d endpoint(s): %s", len(eps), strings.Join(eps, ", ")))
	}
	return strings.Join(parts, " and ")
}

// frontEndBase returns the base URL clients score at for services on a
// target: the in-cluster front end of a kubernetes target, else the
// server's own front end.
func (c *Controller) frontEndBase(ctx context.Context, ws, target string) string {
	if target != modelship.DefaultLocalTarget {
		if ct, err := c.store().FindComputeTarget(ctx, ws, target); err == nil && ct.Kubernetes != nil {
			if ct.Kubernetes.FrontEndURL != "" {
				return strings.TrimRight(ct.Kubernetes.FrontEndURL, "/")
			}
			return "http://<front end of " + target + " pending>"
		}
	}
	return strings.TrimRight(c.cfg.GatewayURL, "/")
}

// refreshFrontEnd records a kubernetes target's observed front-end address
// and readiness.
func (c *Controller) refreshFrontEnd(ctx context.Context, ct *modelship.ComputeTarget, d compute.Driver) {
	cl, ok := d.(compute.Cluster)
	if !ok || ct.Kubernetes == nil {
		return
	}
	url, ready, err := cl.FrontEnd(ctx)
	if err != nil {
		return
	}
	if url != ct.Kubernetes.FrontEndURL || ready != ct.Kubernetes.FrontEndReady {
		ct.Kubernetes.FrontEndURL, ct.Kubernetes.FrontEndReady = url, ready
		if err := c.store().PutComputeTarget(ctx, ct); err != nil {
			c.log.Error("saving the front end's address", "target", ct.Name, "err", err)
		}
	}
}

// publishClusters hands each cluster target its share of the route table.
// Each route goes to the target of its deployments.
func (c *Controller) publishClusters(ctx context.Context, table *modelship.RouteTable, targetOf map[string]string) {
	c.mu.Lock()
	type dt struct {
		cl  compute.Cluster
		key string
	}
	var clusters []dt
	for k, d := range c.drivers {
		if cl, ok := d.(compute.Cluster); ok {
			clusters = append(clusters, dt{cl, k})
		}
	}
	c.mu.Unlock()
	for _, x := range clusters {
		sub := &modelship.RouteTable{Generation: table.Generation, TokenPublicKeys: table.TokenPublicKeys, Routes: []modelship.Route{}}
		for _, rt := range table.Routes {
			if targetOf[key(rt.Workspace, rt.Name)] == x.key {
				sub.Routes = append(sub.Routes, rt)
			}
		}
		if err := x.cl.PublishRoutes(ctx, sub); err != nil {
			c.log.Error("publishing routes to the cluster", "target", x.key, "err", err)
		}
	}
}

// fetchTokenRefresh is how often the fetch tokens of replicas on clusters
// are renewed (in their Secrets; running pods are not restarted), well
// within FetchTokenTTL so a pod that restarts can always fetch its files.
const fetchTokenRefresh = FetchTokenTTL / 10

// refreshFetchTokens re-applies every service on a cluster target, which
// issues new fetch tokens; the revision does not change, so nothing rolls.
func (c *Controller) refreshFetchTokens(ctx context.Context) {
	svcs, err := c.store().ListServices(ctx, "")
	if err != nil {
		return
	}
	for _, svc := range svcs {
		if svc.State == modelship.StateDeleting || svc.ComputeTarget == modelship.DefaultLocalTarget {
			continue
		}
		c.mu.Lock()
		busy := c.busy[key(svc.Workspace, ownerName(svc))] != ""
		c.mu.Unlock()
		if busy {
			continue
		}
		if ct, err := c.store().FindComputeTarget(ctx, svc.Workspace, svc.ComputeTarget); err != nil || ct.Type != modelship.TargetKubernetes {
			continue
		}
		if err := c.applyService(ctx, svc); err != nil {
			c.log.Warn("renewing the fetch token", "service", svc.Name, "err", err)
		}
	}
}

// renewFetchTokens runs refreshFetchTokens until the controller stops.
func (c *Controller) renewFetchTokens() {
	defer c.wg.Done()
	t := time.NewTicker(fetchTokenRefresh)
	defer t.Stop()
	for {
		select {
		case <-c.stopped:
			return
		case <-t.C:
			c.refreshFetchTokens(context.Background())
		}
	}
}
