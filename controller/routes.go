package controller

import (
	"context"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/auth"
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
	for _, svc := range svcs {
		if svc.State == modelship.StateDeleting {
			continue
		}
		s := svc.Settings
		rt := modelship.Route{Kind: modelship.RouteService, Workspace: svc.Workspace, Name: svc.Name, Auth: s.AuthMode, TokenAudience: audience(svc.Workspace, svc.Name)}
		if s.AuthMode == modelship.AuthKey {
			c.mu.Lock()
			keys := c.keys[key(svc.Workspace, svc.Name)]
			c.mu.Unlock()
			for _, k := range keys {
				if k != "" {
					rt.KeyHashes = append(rt.KeyHashes, auth.HashKey(k))
				}
			}
		}
		v := modelship.RouteVersion{Name: svc.Name, TrafficPercent: 100, IsDefault: true,
			MaxConcurrentRequestsPerContainer: max(s.MaxConcurrentRequestsPerContainer, 1), MaxQueueWait: s.MaxQueueWait,
			ScoringTimeout: s.ScoringTimeout, Models: svc.Models, Replicas: []modelship.ReplicaEndpoint{}, Autoscale: s.Autoscale()}
		c.mu.Lock()
		d := c.drivers[c.driverKey(svc.Workspace, svc.ComputeTarget)]
		c.mu.Unlock()
		if d != nil {
			if st, err := d.Status(ctx, c.deploymentID(svc.Workspace, svc.Name)); err == nil {
				for _, r := range st.Replicas {
					if r.URL != "" && (r.State == "Running" || r.State == "Starting" || r.Ready) && r.State != "Terminating" {
						v.Replicas = append(v.Replicas, modelship.ReplicaEndpoint{ID: r.ID, URL: r.URL, Ready: r.Ready})
					}
				}
			}
		}
		if v.Autoscale != nil && c.cfg.ScaleDownDelay > 0 {
			v.Autoscale.ScaleDownDelay = c.cfg.ScaleDownDelay
		}
		rt.Versions = []modelship.RouteVersion{v}
		table.Routes = append(table.Routes, rt)
	}
	c.cfg.Publish(table)
}

// SetReplicas applies an autoscaling decision of the front end.
func (c *Controller) SetReplicas(ctx context.Context, ws, route, version string, n int) error {
	svc, err := c.store().FindService(ctx, ws, route)
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
	if err := d.Scale(ctx, c.deploymentID(ws, route), n); err != nil {
		return err
	}
	c.log.Info("autoscaling", "service", route, "from", svc.DesiredReplicas, "to", n)
	svc.DesiredReplicas = n
	return c.store().PutService(ctx, svc)
}
