package kubernetes

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/compute"
)

// crashLogLines is how many log lines of a crashing container Status adds
// to CrashReason.
const crashLogLines = 10

// Status implements compute.Driver from the watch caches: replicas are the
// deployment's pods (Ready pods have their pod-IP URL), Unschedulable comes
// from PodScheduled=False/Unschedulable, CrashReason from a container in
// CrashLoopBackOff (or a failing init container) with its last log lines,
// RolloutError from the Deployment's ProgressDeadlineExceeded condition.
func (d *Driver) Status(ctx context.Context, id string) (*compute.Status, error) {
	dep, err := d.deployment(ctx, id)
	if err != nil {
		return nil, err
	}
	pods, err := d.pods.Pods(d.cfg.Namespace).List(d.selector(id))
	if err != nil {
		return nil, fmt.Errorf("kubernetes target: listing pods of %s: %w", id, err)
	}
	sortPods(pods)
	desired := dep.Annotations[AnnotationRevision]
	st := &compute.Status{ID: id}
	var crashPod *corev1.Pod
	var crashName string
	for _, p := range pods {
		r := d.replicaStatus(p)
		st.Replicas = append(st.Replicas, r)
		if st.Unschedulable == "" {
			if c := podCondition(p, corev1.PodScheduled); c != nil && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
				st.Unschedulable = c.Message
			}
		}
		if st.CrashReason == "" {
			if reason, container := crashReason(p); reason != "" {
				st.CrashReason, crashPod, crashName = reason, p, container
			}
		}
	}
	if crashPod != nil {
		if lines := d.podLogs(ctx, crashPod, crashName, true, crashLogLines); len(lines) > 0 {
			st.CrashReason += "\n" + strings.Join(lines, "\n")
		}
	}
	if rolledOut(dep) {
		st.Revision = desired
	} else {
		st.Desired = desired
		st.Revision = servingRevision(st.Replicas, desired)
	}
	if msg := dep.Annotations[AnnotationRolloutError]; msg != "" {
		st.RolloutError = msg
	} else if c := deploymentCondition(dep, appsv1.DeploymentProgressing); c != nil &&
		c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
		st.RolloutError = fmt.Sprintf("rollout of revision %s did not finish within %ds: %s", desired, deref(dep.Spec.ProgressDeadlineSeconds), c.Message)
	}
	return st, nil
}

// rolledOut reports whether every replica of dep runs its current
// template and is available.
func rolledOut(dep *appsv1.Deployment) bool {
	want := int32(1)
	if dep.Spec.Replicas != nil {
		want = *dep.Spec.Replicas
	}
	s := dep.Status
	return s.ObservedGeneration >= dep.Generation && s.UpdatedReplicas == want &&
		s.Replicas == want && s.AvailableReplicas == want
}

// servingRevision returns the revision most ready replicas not on desired
// run: what serves while desired rolls out ("" on a first rollout).
func servingRevision(rs []compute.ReplicaStatus, desired string) string {
	count := map[string]int{}
	best := ""
	for _, r := range rs {
		if r.Ready && r.Revision != desired {
			count[r.Revision]++
			if count[r.Revision] > count[best] || best == "" {
				best = r.Revision
			}
		}
	}
	return best
}

// replicaStatus describes one pod.
func (d *Driver) replicaStatus(p *corev1.Pod) compute.ReplicaStatus {
	r := compute.ReplicaStatus{
		ID:        p.Name,
		Revision:  p.Annotations[AnnotationRevision],
		Ready:     podReady(p) && p.DeletionTimestamp == nil,
		StartedAt: p.CreationTimestamp.Time,
		State:     compute.ReplicaStarting,
	}
	if p.Status.StartTime != nil {
		r.StartedAt = p.Status.StartTime.Time
	}
	if p.Status.PodIP != "" {
		r.URL = "http://" + hostPort(p.Status.PodIP, d.cfg.Port)
	}
	cs := containerStatus(p, ContainerName)
	if cs != nil {
		r.Restarts = int(cs.RestartCount)
		if t := cs.LastTerminationState.Terminated; t != nil {
			r.LastExit = describeTermination(t)
		}
	}
	switch {
	case p.DeletionTimestamp != nil:
		r.State = compute.ReplicaTerminating
	case isUnschedulable(p):
		r.State = compute.ReplicaUnschedulable
	case cs != nil && cs.State.Waiting != nil && cs.State.Waiting.Reason == "CrashLoopBackOff":
		r.State = compute.ReplicaCrashLoop
	case p.Status.Phase == corev1.PodRunning:
		r.State = compute.ReplicaRunning
	}
	return r
}

func hostPort(ip string, port int32) string {
	if strings.Contains(ip, ":") {
		return "[" + ip + "]:" + strconv.Itoa(int(port))
	}
	return ip + ":" + strconv.Itoa(int(port))
}

// crashReason explains a crashing container or failing init container of p
// ("" if none) and names the container.
func crashReason(p *corev1.Pod) (reason, container string) {
	for _, cs := range p.Status.InitContainerStatuses {
		if w := cs.State.Waiting; w != nil && (w.Reason == "CrashLoopBackOff" || strings.HasPrefix(w.Reason, "Err") || w.Reason == "InvalidImageName") {
			return fmt.Sprintf("pod %s init container %s: %s%s", p.Name, cs.Name, w.Reason, lastExit(cs)), cs.Name
		}
		if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
			return fmt.Sprintf("pod %s init container %s: %s", p.Name, cs.Name, describeTermination(t)), cs.Name
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && (w.Reason == "CrashLoopBackOff" || strings.HasPrefix(w.Reason, "Err") ||
			w.Reason == "ImagePullBackOff" || w.Reason == "InvalidImageName" || w.Reason == "CreateContainerConfigError") {
			msg := w.Reason
			if w.Message != "" && w.Reason != "CrashLoopBackOff" {
				msg += ": " + w.Message
			}
			return fmt.Sprintf("pod %s container %s: %s (restarts %d)%s", p.Name, cs.Name, msg, cs.RestartCount, lastExit(cs)), cs.Name
		}
	}
	return "", ""
}

func lastExit(cs corev1.ContainerStatus) string {
	if t := cs.LastTerminationState.Terminated; t != nil {
		return "; last exit: " + describeTermination(t)
	}
	return ""
}

// describeTermination renders a terminated container state.
func describeTermination(t *corev1.ContainerStateTerminated) string {
	s := fmt.Sprintf("%s (exit code %d)", t.Reason, t.ExitCode)
	if t.Signal != 0 {
		s += fmt.Sprintf(" signal %d", t.Signal)
	}
	if m := strings.TrimSpace(t.Message); m != "" {
		s += ": " + m
	}
	return s
}

func isUnschedulable(p *corev1.Pod) bool {
	c := podCondition(p, corev1.PodScheduled)
	return c != nil && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable
}

func podReady(p *corev1.Pod) bool {
	c := podCondition(p, corev1.PodReady)
	return c != nil && c.Status == corev1.ConditionTrue
}

func podCondition(p *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

func deploymentCondition(d *appsv1.Deployment, t appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	for i := range d.Status.Conditions {
		if d.Status.Conditions[i].Type == t {
			return &d.Status.Conditions[i]
		}
	}
	return nil
}

func containerStatus(p *corev1.Pod, name string) *corev1.ContainerStatus {
	for i := range p.Status.ContainerStatuses {
		if p.Status.ContainerStatuses[i].Name == name {
			return &p.Status.ContainerStatuses[i]
		}
	}
	return nil
}

func deref(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

// sortPods orders pods by creation time, then name: replica indexes of
// Logs follow this order.
func sortPods(pods []*corev1.Pod) {
	sort.Slice(pods, func(i, j int) bool {
		a, b := pods[i], pods[j]
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		return a.Name < b.Name
	})
}

// Logs implements compute.Driver from the pods' log subresource: per pod
// (opts.Replica indexes the pods in creation order, -1 = all, prefixed with
// the pod name), the last opts.Tail lines of the model container (of its
// previous instance when the current one is waiting to restart). With
// opts.Init: the init containers' output followed by the model container's
// lines written before the pod became Ready (its startup output).
func (d *Driver) Logs(ctx context.Context, id string, opts compute.LogOptions) ([]string, error) {
	if _, err := d.deployment(ctx, id); err != nil {
		return nil, err
	}
	pods, err := d.pods.Pods(d.cfg.Namespace).List(d.selector(id))
	if err != nil {
		return nil, fmt.Errorf("kubernetes target: listing pods of %s: %w", id, err)
	}
	sortPods(pods)
	if opts.Replica >= len(pods) {
		return nil, modelship.Errorf(modelship.ENOTFOUND, "replica %d of %q not found; it has %d replicas", opts.Replica, id, len(pods))
	}
	var out []string
	for i, p := range pods {
		if opts.Replica >= 0 && i != opts.Replica {
			continue
		}
		var lines []string
		if opts.Init {
			for _, c := range p.Spec.InitContainers {
				lines = append(lines, d.podLogs(ctx, p, c.Name, false, 0)...)
			}
			lines = append(lines, d.startupLogs(ctx, p)...)
			if opts.Tail > 0 && len(lines) > opts.Tail {
				lines = lines[len(lines)-opts.Tail:]
			}
		} else {
			cs := containerStatus(p, ContainerName)
			previous := cs != nil && cs.State.Waiting != nil && cs.RestartCount > 0
			lines = d.podLogs(ctx, p, ContainerName, previous, opts.Tail)
		}
		if opts.Replica < 0 && len(pods) > 1 {
			for j, l := range lines {
				lines[j] = "[" + p.Name + "] " + l
			}
		}
		out = append(out, lines...)
	}
	return out, nil
}

// podLogs returns up to tail (0 = all) lines of a container's log; errors
// (a pod without a running container, e.g. on a fake node) yield none.
func (d *Driver) podLogs(ctx context.Context, p *corev1.Pod, container string, previous bool, tail int) []string {
	o := &corev1.PodLogOptions{Container: container, Previous: previous}
	if tail > 0 {
		o.TailLines = ptr(int64(tail))
	}
	return d.readLogs(ctx, p, o)
}

// startupLogs returns the model container's lines stamped before the pod
// turned Ready (all lines when it never did).
func (d *Driver) startupLogs(ctx context.Context, p *corev1.Pod) []string {
	lines := d.readLogs(ctx, p, &corev1.PodLogOptions{Container: ContainerName, Timestamps: true})
	var until time.Time
	if c := podCondition(p, corev1.PodReady); c != nil && c.Status == corev1.ConditionTrue {
		until = c.LastTransitionTime.Time
	}
	var out []string
	for _, l := range lines {
		ts, rest, _ := strings.Cut(l, " ")
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err == nil && !until.IsZero() && t.After(until) {
			break
		}
		out = append(out, rest)
	}
	return out
}

func (d *Driver) readLogs(ctx context.Context, p *corev1.Pod, o *corev1.PodLogOptions) []string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rc, err := d.client.CoreV1().Pods(p.Namespace).GetLogs(p.Name, o).Stream(ctx)
	if err != nil {
		d.log.Debug("reading pod logs", "pod", p.Name, "container", o.Container, "err", err)
		return nil
	}
	defer rc.Close()
	data, _ := io.ReadAll(io.LimitReader(rc, 8<<20))
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// Capacity implements compute.Driver: total is the allocatable CPU, memory
// and nvidia.com/gpu of the Ready, schedulable nodes; free subtracts the
// requests of the pods not finished on those nodes (every namespace).
func (d *Driver) Capacity(ctx context.Context) (total, free compute.Capacity, err error) {
	nodes, err := d.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return total, free, fmt.Errorf("kubernetes target: listing nodes: %w", err)
	}
	pods, err := d.client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
		FieldSelector: "status.phase!=Succeeded,status.phase!=Failed",
	})
	if err != nil {
		return total, free, fmt.Errorf("kubernetes target: listing pods: %w", err)
	}
	return capacity(nodes.Items, pods.Items)
}

// capacity computes Capacity from nodes and (unfinished) pods.
func capacity(nodes []corev1.Node, pods []corev1.Pod) (total, free compute.Capacity, err error) {
	ready := map[string]bool{}
	var cpu, mem, gpu resource.Quantity
	for i := range nodes {
		n := &nodes[i]
		if !nodeUsable(n) {
			continue
		}
		ready[n.Name] = true
		a := n.Status.Allocatable
		cpu.Add(a[corev1.ResourceCPU])
		mem.Add(a[corev1.ResourceMemory])
		gpu.Add(a[ResourceGPU])
	}
	total = toCapacity(cpu, mem, gpu)
	for i := range pods {
		p := &pods[i]
		if !ready[p.Spec.NodeName] || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		req := podRequests(p)
		cpu.Sub(req[corev1.ResourceCPU])
		mem.Sub(req[corev1.ResourceMemory])
		gpu.Sub(req[ResourceGPU])
	}
	free = toCapacity(cpu, mem, gpu)
	return total, free, nil
}

// nodeUsable: Ready and not cordoned.
func nodeUsable(n *corev1.Node) bool {
	if n.Spec.Unschedulable {
		return false
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podRequests is what the scheduler counts for p: the larger of the sum of
// its containers' requests and each init container's requests.
func podRequests(p *corev1.Pod) corev1.ResourceList {
	sum := corev1.ResourceList{}
	for _, c := range p.Spec.Containers {
		for k, v := range c.Resources.Requests {
			q := sum[k]
			q.Add(v)
			sum[k] = q
		}
	}
	for _, c := range p.Spec.InitContainers {
		for k, v := range c.Resources.Requests {
			if q, ok := sum[k]; !ok || v.Cmp(q) > 0 {
				sum[k] = v.DeepCopy()
			}
		}
	}
	for k, v := range p.Spec.Overhead {
		q := sum[k]
		q.Add(v)
		sum[k] = q
	}
	return sum
}

func toCapacity(cpu, mem, gpu resource.Quantity) compute.Capacity {
	return compute.Capacity{
		CPU:      float64(cpu.MilliValue()) / 1000,
		MemoryGB: float64(mem.Value()) / (1 << 30),
		GPUs:     int(gpu.Value()),
	}
}
