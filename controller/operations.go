package controller

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/compute"
)

// beginOp marks a service busy with a new operation; ECONFLICT when another
// operation is running (as Azure's 409).
func (c *Controller) beginOp(ctx context.Context, svc *modelship.Service, kind string) (*modelship.Operation, error) {
	owner := ownerName(svc)
	k := key(svc.Workspace, owner)
	c.mu.Lock()
	if id := c.busy[k]; id != "" {
		c.mu.Unlock()
		what, verb := "service", "service"
		if svc.Endpoint != "" {
			what, verb = "endpoint", "endpoint"
		}
		return nil, modelship.Errorf(modelship.ECONFLICT, "%s %q is busy with operation %s; wait for it (`modelship %s wait %s`) and try again", what, owner, id, verb, owner)
	}
	op := &modelship.Operation{ID: newID(), Workspace: svc.Workspace, Target: owner, Kind: kind, State: modelship.OpRunning, CreatedTime: time.Now().UTC()}
	c.busy[k] = op.ID
	c.mu.Unlock()
	if err := c.store().CreateOperation(ctx, op); err != nil {
		c.mu.Lock()
		delete(c.busy, k)
		c.mu.Unlock()
		return nil, err
	}
	return op, nil
}

// beginDelete starts a delete operation. A running create or update is
// canceled (its operation ends Failed with code Canceled): a service can be
// deleted in any state, as in Azure, e.g. while it waits for capacity. A
// running delete is a conflict.
func (c *Controller) beginDelete(ctx context.Context, svc *modelship.Service) (*modelship.Operation, error) {
	op, err := c.beginOp(ctx, svc, modelship.OpDelete)
	if modelship.ErrorCode(err) != modelship.ECONFLICT {
		return op, err
	}
	k := key(svc.Workspace, ownerName(svc))
	c.mu.Lock()
	running := c.busy[k]
	c.mu.Unlock()
	cur, ferr := c.store().FindOperation(ctx, running, 1<<30)
	if ferr != nil || cur.Kind == modelship.OpDelete {
		return nil, err
	}
	c.mu.Lock()
	if c.busy[k] == running {
		delete(c.busy, k)
	}
	c.mu.Unlock()
	c.store().AppendOperationLog(ctx, running, "Canceled: the service is being deleted")
	c.store().FinishOperation(ctx, running, modelship.OpFailed, &modelship.ServiceError{Code: "Canceled", Message: "canceled: the service was deleted"})
	return c.beginOp(ctx, svc, modelship.OpDelete)
}

// current reports whether op is still the running operation of its
// service (a delete may have canceled it).
func (c *Controller) current(op *modelship.Operation) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.busy[key(op.Workspace, op.Target)] == op.ID
}

func (c *Controller) logOp(op *modelship.Operation, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if err := c.store().AppendOperationLog(context.Background(), op.ID, msg); err != nil {
		c.log.Error("writing operation log", "op", op.ID, "err", err)
	}
	c.log.Info(msg, "operation", op.ID, "service", op.Target)
}

func (c *Controller) endOp(svc *modelship.Service, op *modelship.Operation, state string, opErr *modelship.ServiceError) {
	c.store().FinishOperation(context.Background(), op.ID, state, opErr)
	k := key(op.Workspace, op.Target)
	c.mu.Lock()
	if c.busy[k] == op.ID {
		delete(c.busy, k)
	}
	c.mu.Unlock()
}

// ownerName is what operations and the busy lock are about: the endpoint
// for an endpoint version, else the service.
func ownerName(svc *modelship.Service) string {
	if svc.Endpoint != "" {
		return svc.Endpoint
	}
	return svc.Name
}

// failOp ends an operation that could not start.
func (c *Controller) failOp(svc *modelship.Service, op *modelship.Operation, code string, err error) {
	se := &modelship.ServiceError{Code: code, Message: modelship.ErrorMessage(err)}
	if modelship.ErrorCode(err) == modelship.EINTERNAL {
		se.Message = err.Error()
	}
	c.logOp(op, "Failed: %s", se.Message)
	svc.State, svc.Error = modelship.StateFailed, se
	c.store().PutService(context.Background(), svc)
	c.endOp(svc, op, modelship.OpFailed, se)
}

// Operation returns an operation with its log lines after seq.
func (c *Controller) Operation(ctx context.Context, id string, afterSeq int) (*modelship.Operation, error) {
	return c.store().FindOperation(ctx, id, afterSeq)
}

// startFollow follows an operation to its end in the background.
func (c *Controller) startFollow(svc *modelship.Service, op *modelship.Operation) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.follow(svc.Workspace, svc.Name, op)
	}()
}

// startObserver makes sure one goroutine keeps the service's state in step
// with its replicas.
func (c *Controller) startObserver(ws, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := key(ws, name)
	if c.observing[k] {
		return
	}
	c.observing[k] = true
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.observe(ws, name)
		c.mu.Lock()
		delete(c.observing, k)
		c.mu.Unlock()
	}()
}

// follow drives one operation: it logs replica progress and ends the
// operation when the service is Healthy, failed, unschedulable for too
// long, or the deploy timeout passes.
func (c *Controller) follow(ws, name string, op *modelship.Operation) {
	ctx := context.Background()
	start := time.Now()
	seen := map[string]string{}
	var unschedSince time.Time
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-c.stopped:
			return
		case <-t.C:
		}
		if !c.current(op) {
			return // canceled by a delete
		}
		svc, err := c.store().FindService(ctx, ws, name)
		if err != nil {
			return
		}
		c.mu.Lock()
		d := c.drivers[c.driverKey(ws, svc.ComputeTarget)]
		c.mu.Unlock()
		if d == nil {
			continue
		}
		st, err := d.Status(ctx, c.deploymentID(ws, name))
		if err != nil {
			continue
		}
		for _, r := range st.Replicas {
			desc := r.State
			if r.Ready {
				desc = "Ready"
			}
			if r.Restarts > 0 && !r.Ready {
				desc = fmt.Sprintf("%s (restarts %d, %s)", r.State, r.Restarts, r.LastExit)
			}
			if seen[r.ID] != desc {
				seen[r.ID] = desc
				c.logOp(op, "Replica %s: %s", r.ID, desc)
			}
		}
		wantRev := svc.Revision
		ready := 0
		for _, r := range st.Replicas {
			if r.Ready && r.Revision == wantRev {
				ready++
			}
		}
		switch {
		case st.RolloutError != "":
			msg := st.RolloutError
			first, rest, _ := strings.Cut(msg, "\n")
			se := &modelship.ServiceError{Code: "DeploymentFailed", Message: "the new version failed to start and was rolled back: " + first}
			if rest != "" {
				se.Details = strings.Split(rest, "\n")
			}
			c.logOp(op, "Update failed; the previous version keeps serving: %s", first)
			c.rollbackRecord(ctx, svc)
			svc, _ = c.store().FindService(ctx, ws, name)
			if svc != nil {
				svc.Error = se
				svc.State = c.stateFor(svc, st, wantRev)
				c.store().PutService(ctx, svc)
			}
			c.endOp(svc, op, modelship.OpFailed, se)
			return
		case st.Unschedulable != "" && ready < svc.DesiredReplicas:
			if unschedSince.IsZero() {
				unschedSince = time.Now()
				c.logOp(op, "Unschedulable: %s", st.Unschedulable)
				svc.State = modelship.StateUnschedulable
				svc.Error = &modelship.ServiceError{Code: "Unschedulable", Message: st.Unschedulable}
				c.store().PutService(ctx, svc)
			}
			if time.Since(unschedSince) > c.cfg.UnschedulableTimeout {
				se := &modelship.ServiceError{Code: "KubernetesError", Message: fmt.Sprintf("Couldn't schedule because the compute target didn't have available resources after trying for %s: %s", c.cfg.UnschedulableTimeout, st.Unschedulable), Details: []string{"Unschedulable"}}
				c.logOp(op, "Failed: %s", se.Message)
				if op.Kind == modelship.OpCreate {
					d.Delete(ctx, c.deploymentID(ws, name))
				} else {
					c.rollbackRecord(ctx, svc)
					svc, _ = c.store().FindService(ctx, ws, name)
				}
				if svc != nil {
					svc.State, svc.Error = modelship.StateFailed, se
					c.store().PutService(ctx, svc)
				}
				c.endOp(svc, op, modelship.OpFailed, se)
				return
			}
			continue
		case crashLooping(st, wantRev) && op.Kind == modelship.OpCreate:
			se := &modelship.ServiceError{Code: "CrashLoopBackOff", Message: "the replica's container crashed repeatedly while starting; see the details or `modelship service get-logs " + name + " --init`"}
			if st.CrashReason != "" {
				se.Details = strings.Split(st.CrashReason, "\n")
			}
			c.logOp(op, "Failed: replicas are in CrashLoopBackOff")
			for _, l := range se.Details {
				c.logOp(op, "  %s", l)
			}
			svc.State, svc.Error = modelship.StateFailed, se
			c.store().PutService(ctx, svc)
			c.endOp(svc, op, modelship.OpFailed, se)
			return
		}
		unschedSince = time.Time{}
		// Replicas of an old revision still draining (Terminating) do not
		// hold the operation back: the new revision serves everything.
		live := 0
		for _, r := range st.Replicas {
			if r.State != compute.ReplicaTerminating {
				live++
			}
		}
		if st.Revision == wantRev && ready >= svc.DesiredReplicas && live == svc.DesiredReplicas {
			svc.State, svc.Error = modelship.StateHealthy, nil
			c.store().PutService(ctx, svc)
			c.logOp(op, "Service %s is Healthy (%d replica(s), took %s)", name, ready, time.Since(start).Round(time.Millisecond))
			c.endOp(svc, op, modelship.OpSucceeded, nil)
			c.publish(ctx)
			return
		}
		if time.Since(start) > c.cfg.DeployTimeout {
			se := &modelship.ServiceError{Code: "DeploymentTimedOut", Message: fmt.Sprintf("the deployment did not become healthy within %s", c.cfg.DeployTimeout)}
			c.logOp(op, "Timed out: %s", se.Message)
			svc.State, svc.Error = modelship.StateUnhealthy, se
			c.store().PutService(ctx, svc)
			c.endOp(svc, op, modelship.OpTimedOut, se)
			return
		}
	}
}

// crashLooping: some replica of the wanted revision crashed 3+ times
// without ever being ready.
func crashLooping(st *compute.Status, rev string) bool {
	for _, r := range st.Replicas {
		if r.Revision == rev && !r.Ready && r.Restarts >= 3 {
			return true
		}
	}
	return false
}

// stateFor derives a service state from the driver's observation.
func (c *Controller) stateFor(svc *modelship.Service, st *compute.Status, rev string) string {
	ready := st.ReadyCount()
	switch {
	case ready == 0 && st.Unschedulable != "":
		return modelship.StateUnschedulable
	case ready == 0:
		if svc.State == modelship.StateFailed {
			return modelship.StateFailed
		}
		return modelship.StateUnhealthy
	default:
		return modelship.StateHealthy
	}
}

// observe keeps a service's state in step with its replicas (Healthy <->
// Unhealthy when replicas crash or recover) while no operation runs.
func (c *Controller) observe(ws, name string) {
	ctx := context.Background()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-c.stopped:
			return
		case <-t.C:
		}
		svc, err := c.store().FindService(ctx, ws, name)
		if err != nil {
			return
		}
		c.mu.Lock()
		busy := c.busy[key(ws, ownerName(svc))] != ""
		c.mu.Unlock()
		if busy {
			continue
		}
		c.mu.Lock()
		d := c.drivers[c.driverKey(ws, svc.ComputeTarget)]
		c.mu.Unlock()
		if d == nil {
			continue
		}
		st, err := d.Status(ctx, c.deploymentID(ws, name))
		if err != nil {
			continue
		}
		state := c.stateFor(svc, st, "")
		if state != svc.State && !(svc.State == modelship.StateFailed && state == modelship.StateUnhealthy) {
			c.log.Info("service state changed", "service", name, "from", svc.State, "to", state)
			svc.State = state
			if state == modelship.StateHealthy && svc.Error != nil && svc.Error.Code == "CrashLoopBackOff" {
				svc.Error = nil
			}
			if state == modelship.StateUnhealthy && st.CrashReason != "" {
				svc.Error = &modelship.ServiceError{Code: "CrashLoopBackOff", Message: "no replica is ready", Details: strings.Split(st.CrashReason, "\n")}
			}
			c.store().PutService(ctx, svc)
		}
	}
}

// rollbackRecord restores the service record saved before an update.
func (c *Controller) rollbackRecord(ctx context.Context, svc *modelship.Service) {
	c.mu.Lock()
	prev := c.previous[key(svc.Workspace, svc.Name)]
	delete(c.previous, key(svc.Workspace, svc.Name))
	c.mu.Unlock()
	if prev == nil {
		return
	}
	prev.State, prev.Error = svc.State, svc.Error
	prev.LastOperation = svc.LastOperation
	c.store().PutService(ctx, prev)
	c.applyService(ctx, prev)
	c.publish(ctx)
}
