package controller

import (
	"context"
	"strings"
	"time"

	"github.com/modelship/modelship"
)

// Update changes a running service (spec §3.4). Replicas are replaced one
// at a time; a new version that never becomes ready is rolled back and the
// old one keeps serving.
func (c *Controller) Update(ctx context.Context, ws, name string, req *modelship.UpdateRequest) (*modelship.Service, *modelship.Operation, error) {
	svc, err := c.findService(ctx, ws, name)
	if err != nil {
		return nil, nil, err
	}
	return c.update(ctx, svc, req)
}

// update changes a service or an endpoint version's deployment.
func (c *Controller) update(ctx context.Context, svc *modelship.Service, req *modelship.UpdateRequest) (*modelship.Service, *modelship.Operation, error) {
	ws, name := svc.Workspace, svc.Name
	hasDC := len(req.DeploymentConfig) > 0 && string(req.DeploymentConfig) != "null" && string(req.DeploymentConfig) != "{}"
	if len(req.Models) == 0 && req.Inference == nil && !hasDC {
		return nil, nil, modelship.Errorf(modelship.EINVALID, "No parameters provided to update. Give models (-m), an inference config (-ic), a deployment config (-dc) or settings flags")
	}
	next := *svc
	next.Settings = *svc.Settings.Clone()
	if hasDC {
		dc, err := modelship.ParseDeploymentConfig(req.DeploymentConfig)
		if err != nil {
			return nil, nil, err
		}
		if dc.Keys != nil {
			return nil, nil, modelship.Errorf(modelship.EINVALID, "keys cannot be changed by update; use `modelship service regen-key %s --key Primary|Secondary [--value ...]`", name)
		}
		settings, err := svc.Settings.ApplyUpdate(dc)
		if err != nil {
			return nil, nil, err
		}
		next.Settings = *settings
		if dc.Tags != nil {
			next.Tags = orEmpty(dc.Tags)
		}
		if dc.Properties != nil {
			for k, v := range dc.Properties {
				if old, ok := svc.Properties[k]; ok && old != v {
					return nil, nil, modelship.Errorf(modelship.EINVALID, "properties are add-only; %q is already set to %q", k, old)
				}
			}
			next.Properties = map[string]string{}
			for k, v := range svc.Properties {
				next.Properties[k] = v
			}
			for k, v := range dc.Properties {
				next.Properties[k] = v
			}
		}
		if dc.Description != nil {
			next.Description = *dc.Description
		}
	}
	models := svc.Models
	if len(req.Models) > 0 {
		mvs, err := c.resolveModels(ctx, ws, req.Models)
		if err != nil {
			return nil, nil, err
		}
		inf := svc.Inference
		if req.Inference != nil {
			inf = *req.Inference
		} else if svc.Inference.EntryScript != "" {
			return nil, nil, modelship.Errorf(modelship.EINVALID, "updating models of a service with a scoring script needs the inference config too (-ic), as in Azure")
		}
		if err := c.checkInference(ctx, &inf, mvs); err != nil {
			return nil, nil, err
		}
		next.Inference = inf
		models = modelIDs(mvs)
	} else if req.Inference != nil {
		inf := *req.Inference
		mvs, err := c.resolveModels(ctx, ws, svc.Models)
		if err != nil {
			return nil, nil, err
		}
		if err := c.checkInference(ctx, &inf, mvs); err != nil {
			return nil, nil, err
		}
		next.Inference = inf
	}
	next.Models = models
	if next.Settings.AutoscaleEnabled {
		next.DesiredReplicas = min(max(svc.DesiredReplicas, next.Settings.MinReplicas), next.Settings.MaxReplicas)
	} else {
		next.DesiredReplicas = next.Settings.NumReplicas
	}
	op, err := c.beginOp(ctx, svc, modelship.OpUpdate)
	if err != nil {
		return nil, nil, err
	}
	prev := *svc
	c.mu.Lock()
	c.previous[key(ws, name)] = &prev
	c.mu.Unlock()
	next.Generation = svc.Generation + 1
	next.UpdatedTime = time.Now().UTC()
	next.State = modelship.StateTransitioning
	next.Error = nil
	next.LastOperation = op.ID
	var changes []string
	if strings.Join(svc.Models, ",") != strings.Join(next.Models, ",") {
		changes = append(changes, "models "+strings.Join(next.Models, ", "))
	}
	if req.Inference != nil {
		changes = append(changes, "inference config")
	}
	if hasDC {
		changes = append(changes, "deployment settings")
	}
	c.logOp(op, "Updating service %s: %s", name, strings.Join(changes, "; "))
	if err := c.applyService(ctx, &next); err != nil {
		c.mu.Lock()
		delete(c.previous, key(ws, name))
		c.mu.Unlock()
		c.logOp(op, "Failed: %s", modelship.ErrorMessage(err))
		c.endOp(svc, op, modelship.OpFailed, &modelship.ServiceError{Code: "DeploymentFailed", Message: modelship.ErrorMessage(err)})
		return nil, nil, err
	}
	if next.Revision == svc.Revision {
		c.logOp(op, "No replica change needed; settings apply at the front end")
	} else {
		c.logOp(op, "Rolling out revision %s (one replica at a time; the old version serves until the new one is ready)", next.Revision)
	}
	if err := c.store().PutService(ctx, &next); err != nil {
		return nil, nil, err
	}
	c.publish(ctx)
	c.startFollow(&next, op)
	c.startObserver(ws, name)
	return c.decorate(ctx, &next), op, nil
}

// replace is Deploy with --overwrite on an existing service: a full
// replacement of its configuration, rolled out like an update. Keys stay
// unless the deployment config gives new ones.
func (c *Controller) replace(ctx context.Context, svc *modelship.Service, target string, models []*modelship.ModelVersion, inf modelship.InferenceSpec, settings *modelship.ServiceSettings, dc *modelship.DeploymentConfig) (*modelship.Service, *modelship.Operation, error) {
	if target != svc.ComputeTarget {
		return nil, nil, modelship.Errorf(modelship.EINVALID, "service %q runs on compute target %q; --overwrite cannot move it to %q (delete it first)", svc.Name, svc.ComputeTarget, target)
	}
	op, err := c.beginOp(ctx, svc, modelship.OpUpdate)
	if err != nil {
		return nil, nil, err
	}
	if dc.Keys != nil {
		keys, err := initialKeys(dc)
		if err == nil {
			var sealed [2]string
			if sealed, err = c.seal(keys); err == nil {
				err = c.store().SetServiceKeys(ctx, svc.Workspace, svc.Name, sealed)
			}
		}
		if err != nil {
			c.endOp(svc, op, modelship.OpFailed, &modelship.ServiceError{Code: "BadRequest", Message: modelship.ErrorMessage(err)})
			return nil, nil, err
		}
		c.loadKeys(ctx, svc.Workspace, svc.Name)
	}
	prev := *svc
	c.mu.Lock()
	c.previous[key(svc.Workspace, svc.Name)] = &prev
	c.mu.Unlock()
	next := *svc
	next.Models, next.Inference, next.Settings = modelIDs(models), inf, *settings
	next.Description, next.Tags, next.Properties = settings.Description, orEmpty(settings.Tags), orEmpty(settings.Properties)
	next.DesiredReplicas = initialReplicas(settings)
	next.Generation++
	next.UpdatedTime = time.Now().UTC()
	next.State, next.Error, next.LastOperation = modelship.StateTransitioning, nil, op.ID
	c.logOp(op, "Overwriting service %s with %s", svc.Name, strings.Join(next.Models, ", "))
	if err := c.applyService(ctx, &next); err != nil {
		c.endOp(svc, op, modelship.OpFailed, &modelship.ServiceError{Code: "DeploymentFailed", Message: modelship.ErrorMessage(err)})
		return nil, nil, err
	}
	c.store().PutService(ctx, &next)
	c.publish(ctx)
	c.startFollow(&next, op)
	c.startObserver(svc.Workspace, svc.Name)
	return c.decorate(ctx, &next), op, nil
}

// Delete drains and removes a service (asynchronous; state Deleting).
func (c *Controller) Delete(ctx context.Context, ws, name string) (*modelship.Operation, error) {
	svc, err := c.findService(ctx, ws, name)
	if err != nil {
		return nil, err
	}
	op, err := c.beginDelete(ctx, svc)
	if err != nil {
		return nil, err
	}
	svc.State, svc.LastOperation = modelship.StateDeleting, op.ID
	c.store().PutService(ctx, svc)
	c.logOp(op, "Deleting service %s: draining replicas", name)
	c.resumeDelete(svc, op)
	return op, nil
}

func (c *Controller) resumeDelete(svc *modelship.Service, op *modelship.Operation) {
	c.mu.Lock()
	c.busy[key(svc.Workspace, svc.Name)] = op.ID
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		ctx := context.Background()
		if d, _, err := c.driverFor(ctx, svc.Workspace, svc.ComputeTarget); err == nil {
			if err := d.Delete(ctx, c.deploymentID(svc.Workspace, svc.Name)); err != nil {
				c.logOp(op, "Stopping replicas: %v", err)
			}
		}
		if err := c.store().DeleteService(ctx, svc.Workspace, svc.Name); err != nil {
			se := &modelship.ServiceError{Code: "InternalError", Message: err.Error()}
			c.endOp(svc, op, modelship.OpFailed, se)
			return
		}
		c.mu.Lock()
		delete(c.keys, key(svc.Workspace, svc.Name))
		c.mu.Unlock()
		c.removeLayout(svc.Workspace, svc.Name)
		c.publish(ctx)
		c.logOp(op, "Service %s deleted", svc.Name)
		c.endOp(svc, op, modelship.OpSucceeded, nil)
	}()
}
