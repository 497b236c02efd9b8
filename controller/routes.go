package controller

import (
	"context"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/auth"
	"github.com/modelship/modelship/compute"
)

// publish builds the route table from every service and its ready
// replicas, and hands it to the front end.
func (c *Controller) publish(ctx context.Context) {
	if c.cfg.Publish == nil {
		return
	}
	c.pubMu.Lock()
	defer c.pubMu.Unlock()
	svcs, err := c.store().ListServices(ctx, "")
	if err != nil {
		c.log.Error("building routes", "err", err)
		return
	}
	c.gen++
	table := &modelship.RouteTable{Generation: c.gen, TokenPublicKeys: c.cfg.Signer.PublicKeys(), Routes: []modelship.Route{}}
	byName := map[string]*modelship.Service{}
	// targetOf maps each route to the driver key of its target.
	targetOf := map[string]string{}
	for _, svc := range svcs {
		byName[key(svc.Workspace, svc.Name)] = svc
		if svc.Endpoint != "" {
			targetOf[key(svc.Workspace, svc.Endpoint)] = c.driverKey(svc.Workspace, svc.ComputeTarget)
		}
		if svc.State == modelship.StateDeleting || svc.Endpoint != "" {
			continue
		}
		targetOf[key(svc.Workspace, svc.Name)] = c.driverKey(svc.Workspace, svc.ComputeTarget)
		rt := c.routeFor(modelship.RouteService, svc.Workspace, svc.Name, svc.Settings.AuthMode)
		rt.AppInsights = svc.Settings.AppInsightsEnabled
		v := c.routeVersion(ctx, svc, svc.Name)
		v.TrafficPercent, v.IsDefault = 100, true
		rt.Versions = []modelship.RouteVersion{v}
		table.Routes = append(table.Routes, rt)
	}
	eps, err := c.store().ListEndpoints(ctx, "")
	if err != nil {
		c.log.Error("building routes", "err", err)
		return
	}
	for _, ep := range eps {
		if ep.State == modelship.StateDeleting {
			continue
		}
		rt := c.routeFor(modelship.RouteEndpoint, ep.Workspace, ep.Name, ep.AuthMode)
		rt.AppInsights = ep.AppInsightsEnabled
		eff := modelship.EffectiveTraffic(ep.Versions)
		// A version without a ready replica lends its share to the default
		// version until it has one, so a new version never causes 503s.
		lent := 0.0
		defaultIdx := -1
		for _, ev := range ep.Versions {
			svc := byName[key(ep.Workspace, versionService(ep.Name, ev.Name))]
			if svc == nil || svc.State == modelship.StateDeleting {
				lent += eff[ev.Name]
				continue
			}
			v := c.routeVersion(ctx, svc, ev.Name)
			v.TrafficPercent = eff[ev.Name]
			v.MirrorPercent, v.IsDefault = ev.MirrorPercentile, ev.IsDefault
			v.IsControl = ev.VersionType == modelship.VersionTypeControl
			// In a cluster the front end lends from live EndpointSlices
			// itself (the control plane's view may be stale or absent).
			c.mu.Lock()
			_, remote := c.drivers[c.driverKey(svc.Workspace, svc.ComputeTarget)].(compute.Cluster)
			c.mu.Unlock()
			if !remote && !anyReady(v.Replicas) && !ev.IsDefault {
				lent += v.TrafficPercent
				v.TrafficPercent = 0
			}
			if ev.IsDefault {
				defaultIdx = len(rt.Versions)
			}
			rt.Versions = append(rt.Versions, v)
		}
		if defaultIdx >= 0 {
			rt.Versions[defaultIdx].TrafficPercent += lent
		}
		if len(rt.Versions) > 0 {
			table.Routes = append(table.Routes, rt)
		}
	}
	// Routes of cluster targets are served by their in-cluster front ends;
	// the rest by this server's.
	c.publishClusters(ctx, table, targetOf)
	local := *table
	local.Routes = []modelship.Route{}
	c.mu.Lock()
	for _, rt := range table.Routes {
		if _, remote := c.drivers[targetOf[key(rt.Workspace, rt.Name)]].(compute.Cluster); !remote {
			local.Routes = append(local.Routes, rt)
		}
	}
	c.mu.Unlock()
	c.cfg.Publish(&local)
}

func anyReady(rs []modelship.ReplicaEndpoint) bool {
	for _, r := range rs {
		if r.Ready {
			return true
		}
	}
	return false
}

// routeFor starts the route of a service or endpoint with its auth.
func (c *Controller) routeFor(kind, ws, name, authMode string) modelship.Route {
	rt := modelship.Route{Kind: kind, Workspace: ws, Name: name, Auth: authMode, TokenAudience: audience(ws, name)}
	if authMode == modelship.AuthKey {
		c.mu.Lock()
		keys := c.keys[key(ws, name)]
		c.mu.Unlock()
		for _, k := range keys {
			if k != "" {
				rt.KeyHashes = append(rt.KeyHashes, auth.HashKey(k))
			}
		}
	}
	return rt
}

// routeVersion describes one deployment (a service or endpoint version)
// with its ready replicas.
func (c *Controller) routeVersion(ctx context.Context, svc *modelship.Service, name string) modelship.RouteVersion {
	s := svc.Settings
	v := modelship.RouteVersion{Name: name, Deployment: c.deploymentID(svc.Workspace, svc.Name), MaxConcurrentRequestsPerContainer: max(s.MaxConcurrentRequestsPerContainer, 1),
		MaxQueueWait: s.MaxQueueWait, ScoringTimeout: s.ScoringTimeout, Models: svc.Models,
		Replicas: []modelship.ReplicaEndpoint{}, Autoscale: s.Autoscale()}
	if v.Autoscale != nil && c.cfg.ScaleDownDelay > 0 {
		v.Autoscale.ScaleDownDelay = c.cfg.ScaleDownDelay
	}
	c.mu.Lock()
	d := c.drivers[c.driverKey(svc.Workspace, svc.ComputeTarget)]
	c.mu.Unlock()
	if d != nil {
		if st, err := d.Status(ctx, c.deploymentID(svc.Workspace, svc.Name)); err == nil {
			for _, r := range st.Replicas {
				if r.URL != "" && r.State != "Terminating" {
					v.Replicas = append(v.Replicas, modelship.ReplicaEndpoint{ID: r.ID, URL: r.URL, Ready: r.Ready})
				}
			}
		}
	}
	return v
}

// SetReplicas applies an autoscaling decision of the front end.
func (c *Controller) SetReplicas(ctx context.Context, ws, route, version string, n int) error {
	name := route
	if version != "" && version != route {
		name = versionService(route, version)
	}
	svc, err := c.store().FindService(ctx, ws, name)
	if err != nil {
		return err
	}
	s := svc.Settings
	if !s.AutoscaleEnabled {
		return nil
	}
	n = min(max(n, s.MinReplicas), s.MaxReplicas)
	if n == svc.DesiredReplicas {
		return nil
	}
	d, _, err := c.driverFor(ctx, ws, svc.ComputeTarget)
	if err != nil {
		return err
	}
	if err := d.Scale(ctx, c.deploymentID(ws, svc.Name), n); err != nil {
		return err
	}
	c.log.Info("autoscaling", "service", svc.Name, "from", svc.DesiredReplicas, "to", n)
	svc.DesiredReplicas = n
	return c.store().PutService(ctx, svc)
}
