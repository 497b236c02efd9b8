package kubernetes

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AnnotationRolloutError records on a Deployment why its last rollout was
// rolled back ("" = none); Apply clears it.
const AnnotationRolloutError = "modelship.io/rollout-error"

// crashLoopRollback: a new revision whose pod restarted this many times
// without ever being ready is rolled back (as the local driver does).
const crashLoopRollback = 3

// rollbackManager is the field manager of rollbacks.
const rollbackManager = "modelship-rollback"

// queueRollout asks the rollout worker to check deployment name.
func (d *Driver) queueRollout(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pending == nil {
		return // closed
	}
	if _, ok := d.pending[name]; ok {
		return
	}
	d.pending[name] = struct{}{}
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// rolloutWorker checks queued deployments until ctx ends.
func (d *Driver) rolloutWorker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.kick:
		}
		for {
			d.mu.Lock()
			var name string
			for n := range d.pending {
				name = n
				break
			}
			if name != "" {
				delete(d.pending, name)
			}
			d.mu.Unlock()
			if name == "" {
				break
			}
			if err := d.checkRollout(ctx, name); err != nil && ctx.Err() == nil {
				d.log.Warn("checking rollout", "deployment", name, "err", err)
			}
		}
	}
}

// checkRollout rolls a failing rollout of deployment name back to the
// previous pod template: when Kubernetes reports ProgressDeadlineExceeded
// (the spec's StartTimeout) or a new pod restarted crashLoopRollback times
// without becoming ready. The old ReplicaSet keeps serving meanwhile
// (maxUnavailable 0); the reason is kept in AnnotationRolloutError.
func (d *Driver) checkRollout(ctx context.Context, name string) error {
	ns := d.cfg.Namespace
	dep, err := d.deps.Deployments(ns).Get(name)
	if err != nil {
		return nil // gone
	}
	if dep.DeletionTimestamp != nil || dep.Status.ObservedGeneration < dep.Generation {
		return nil // the controller has not looked at the latest spec yet
	}
	desired := dep.Annotations[AnnotationRevision]
	if rolledOut(dep) {
		return nil
	}
	reason := ""
	if c := deploymentCondition(dep, appsv1.DeploymentProgressing); c != nil && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
		reason = fmt.Sprintf("new replicas of revision %s were not ready within %ds: %s", desired, deref(dep.Spec.ProgressDeadlineSeconds), c.Message)
		// The condition outlives the rollout it is about (after a
		// rollback or a new Apply it still names the old ReplicaSet
		// until the controller re-evaluates): act only when it names
		// the ReplicaSet of the current template.
		cur, err := d.currentReplicaSet(ctx, dep)
		if err != nil {
			return err
		}
		if cur == nil || !strings.Contains(c.Message, `"`+cur.Name+`"`) {
			return nil
		}
	}
	if reason == "" {
		pods, _ := d.pods.Pods(ns).List(d.selector(dep.Annotations[AnnotationID]))
		for _, p := range pods {
			cs := containerStatus(p, ContainerName)
			if p.Annotations[AnnotationRevision] == desired && cs != nil && cs.RestartCount >= crashLoopRollback && !podReady(p) {
				reason = fmt.Sprintf("new replica %s of revision %s restarted %d times before becoming ready", p.Name, desired, cs.RestartCount)
				if r, _ := crashReason(p); r != "" {
					reason += ": " + r
				}
				break
			}
		}
	}
	if reason == "" {
		return nil
	}
	// The previous template: the newest other ReplicaSet of the Deployment.
	rss, err := d.client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: d.selector(dep.Annotations[AnnotationID]).String()})
	if err != nil {
		return fmt.Errorf("listing replica sets of %s: %w", name, err)
	}
	var prev *appsv1.ReplicaSet
	prevNum := -1
	for i := range rss.Items {
		rs := &rss.Items[i]
		if !ownedBy(rs, dep) || rs.Spec.Template.Annotations[AnnotationRevision] == desired {
			continue
		}
		if n, _ := strconv.Atoi(rs.Annotations["deployment.kubernetes.io/revision"]); n > prevNum {
			prev, prevNum = rs, n
		}
	}
	upd := dep.DeepCopy()
	if upd.Annotations[AnnotationRolloutError] == reason {
		return nil
	}
	upd.Annotations[AnnotationRolloutError] = reason
	if prev != nil {
		tmpl := prev.Spec.Template.DeepCopy()
		delete(tmpl.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
		upd.Spec.Template = *tmpl
		upd.Annotations[AnnotationRevision] = tmpl.Annotations[AnnotationRevision]
		d.log.Warn("rollout failed; rolling back", "deployment", name, "to", tmpl.Annotations[AnnotationRevision], "reason", reason)
	} else {
		d.log.Warn("rollout failed; no previous revision to roll back to", "deployment", name, "reason", reason)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = d.client.AppsV1().Deployments(ns).Update(ctx, upd, metav1.UpdateOptions{FieldManager: rollbackManager})
	if apierrors.IsConflict(err) {
		d.queueRollout(name) // changed meanwhile: look again
		return nil
	}
	if err != nil {
		return fmt.Errorf("rolling back %s: %w", name, err)
	}
	return nil
}

// currentReplicaSet returns the ReplicaSet of dep's current pod template
// (nil if the controller has not created it yet).
func (d *Driver) currentReplicaSet(ctx context.Context, dep *appsv1.Deployment) (*appsv1.ReplicaSet, error) {
	rss, err := d.client.AppsV1().ReplicaSets(dep.Namespace).List(ctx, metav1.ListOptions{LabelSelector: d.selector(dep.Annotations[AnnotationID]).String()})
	if err != nil {
		return nil, fmt.Errorf("listing replica sets of %s: %w", dep.Name, err)
	}
	for i := range rss.Items {
		rs := &rss.Items[i]
		if ownedBy(rs, dep) && rs.Annotations["deployment.kubernetes.io/revision"] == dep.Annotations["deployment.kubernetes.io/revision"] {
			return rs, nil
		}
	}
	return nil, nil
}

func ownedBy(rs *appsv1.ReplicaSet, dep *appsv1.Deployment) bool {
	for _, o := range rs.OwnerReferences {
		if o.UID == dep.UID {
			return true
		}
	}
	return false
}
