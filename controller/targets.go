package controller

import (
	"context"
	"fmt"

	"github.com/modelship/modelship"
)

// EnsureLocalTarget creates the workspace's built-in "local" target with
// this machine's capacity if it is missing.
func (c *Controller) EnsureLocalTarget(ctx context.Context, ws string) error {
	_, err := c.store().FindComputeTarget(ctx, ws, modelship.DefaultLocalTarget)
	if err == nil {
		return nil
	}
	if modelship.ErrorCode(err) != modelship.ENOTFOUND {
		return err
	}
	cp := c.cfg.LocalCapacity
	ct := &modelship.ComputeTarget{Workspace: ws, Name: modelship.DefaultLocalTarget, Type: modelship.TargetLocal,
		ClusterPurpose: modelship.PurposeDevTest, CPU: cp.CPU, MemoryGB: cp.MemoryGB, GPUs: cp.GPUs,
		Description: "This machine (built in; shared by every workspace)"}
	if err := c.store().CreateComputeTarget(ctx, ct); err != nil && modelship.ErrorCode(err) != modelship.ECONFLICT {
		return err
	}
	return nil
}

// CreateLocalTarget adds a local target with its own capacity budget.
// It returns warnings (e.g. DevTest under 2 vCPU).
func (c *Controller) CreateLocalTarget(ctx context.Context, ct *modelship.ComputeTarget) ([]string, error) {
	if err := modelship.ValidateComputeName(ct.Name); err != nil {
		return nil, err
	}
	if ct.Name == modelship.DefaultLocalTarget {
		return nil, modelship.Errorf(modelship.ECONFLICT, "the local target %q is built in; choose another name", ct.Name)
	}
	ct.Type = modelship.TargetLocal
	if ct.ClusterPurpose == "" {
		ct.ClusterPurpose = modelship.PurposeFastProd
	}
	var warnings []string
	switch ct.ClusterPurpose {
	case modelship.PurposeFastProd, modelship.PurposeDenseProd:
		if ct.CPU < modelship.FastProdMinCPU {
			return nil, modelship.Errorf(modelship.EINVALID, "cluster purpose %s needs at least %d vCPU of capacity, got --cpu %g; give more CPU or use --cluster-purpose DevTest", ct.ClusterPurpose, modelship.FastProdMinCPU, ct.CPU)
		}
	case modelship.PurposeDevTest:
		if ct.CPU < 2 {
			warnings = append(warnings, fmt.Sprintf("DevTest targets should have at least 2 vCPU; this one has %g", ct.CPU))
		}
	default:
		return nil, modelship.Errorf(modelship.EINVALID, "cluster purpose %q is invalid; use FastProd, DenseProd or DevTest", ct.ClusterPurpose)
	}
	if ct.CPU <= 0 || ct.MemoryGB <= 0 || ct.GPUs < 0 {
		return nil, modelship.Errorf(modelship.EINVALID, "capacity must be positive: --cpu %g, --memory-gb %g, --gpus %d", ct.CPU, ct.MemoryGB, ct.GPUs)
	}
	if err := c.store().CreateComputeTarget(ctx, ct); err != nil {
		return nil, err
	}
	return warnings, nil
}

// Target returns a target with its free capacity and service count.
func (c *Controller) Target(ctx context.Context, ws, name string) (*modelship.ComputeTarget, error) {
	ct, err := c.store().FindComputeTarget(ctx, ws, name)
	if err != nil {
		return nil, err
	}
	return c.decorateTarget(ctx, ct), nil
}

// Targets lists a workspace's targets.
func (c *Controller) Targets(ctx context.Context, ws string) ([]*modelship.ComputeTarget, error) {
	if _, err := c.store().FindWorkspace(ctx, ws); err != nil {
		return nil, err
	}
	if err := c.EnsureLocalTarget(ctx, ws); err != nil {
		return nil, err
	}
	cts, err := c.store().ListComputeTargets(ctx, ws)
	if err != nil {
		return nil, err
	}
	for i, ct := range cts {
		cts[i] = c.decorateTarget(ctx, ct)
	}
	return cts, nil
}

func (c *Controller) decorateTarget(ctx context.Context, ct *modelship.ComputeTarget) *modelship.ComputeTarget {
	ct.State = "Succeeded"
	ct.FreeCPU, ct.FreeMemoryGB, ct.FreeGPUs = ct.CPU, ct.MemoryGB, ct.GPUs
	if d, _, err := c.driverFor(ctx, ct.Workspace, ct.Name); err == nil {
		if total, free, err := d.Capacity(ctx); err == nil {
			ct.FreeCPU, ct.FreeMemoryGB, ct.FreeGPUs = round2(free.CPU), round2(free.MemoryGB), free.GPUs
			if ct.Type == modelship.TargetKubernetes {
				// A cluster's capacity is what its nodes have now.
				ct.CPU, ct.MemoryGB, ct.GPUs = round2(total.CPU), round2(total.MemoryGB), total.GPUs
			}
		}
		c.refreshFrontEnd(ctx, ct, d)
	} else if ct.Type == modelship.TargetKubernetes {
		ct.State = "Unreachable: " + modelship.ErrorMessage(err)
	}
	if ct.Kubernetes != nil {
		k := *ct.Kubernetes
		k.SealedKubeconfig = ""
		ct.Kubernetes = &k
	}
	svcs, _ := c.store().ListServices(ctx, "")
	for _, s := range svcs {
		if s.ComputeTarget == ct.Name && (s.Workspace == ct.Workspace || ct.Name == modelship.DefaultLocalTarget) {
			ct.Services++
		}
	}
	return ct
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

// DeleteTarget removes a target no service uses.
func (c *Controller) DeleteTarget(ctx context.Context, ws, name string) error {
	if name == modelship.DefaultLocalTarget {
		return modelship.Errorf(modelship.ECONFLICT, "the built-in %q target cannot be deleted", name)
	}
	ct, err := c.store().FindComputeTarget(ctx, ws, name)
	if err != nil {
		return err
	}
	if ct.Type == modelship.TargetKubernetes {
		return modelship.Errorf(modelship.EINVALID, "compute target %q is an attached Kubernetes cluster; remove it with `computetarget detach %s`", name, name)
	}
	svcs, err := c.store().ListServices(ctx, ws)
	if err != nil {
		return err
	}
	var users []string
	for _, s := range svcs {
		if s.ComputeTarget == name {
			users = append(users, s.Name)
		}
	}
	if len(users) > 0 {
		return modelship.Errorf(modelship.ECONFLICT, "compute target %q is used by %d service(s): %v; delete them first", name, len(users), users)
	}
	c.mu.Lock()
	d := c.drivers[key(ws, name)]
	delete(c.drivers, key(ws, name))
	c.mu.Unlock()
	if d != nil {
		d.Close(ctx)
	}
	return c.store().DeleteComputeTarget(ctx, ws, name)
}
