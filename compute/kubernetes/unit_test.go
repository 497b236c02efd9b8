package kubernetes

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/modelship/modelship/compute"
)

func TestNames(t *testing.T) {
	long := "ws/" + strings.Repeat("a", 70)
	tests := []struct {
		id, object, label string
	}{
		{"ws1/svc1", "ms-ws1-svc1", "ws1.svc1"},
		{"ws1/ep1/v1", "ms-ws1-ep1-v1", "ws1.ep1.v1"},
		{"WS/Svc_1", "ms-ws-svc-1-" + shortHash("WS/Svc_1"), "WS.Svc_1"},
		{long, ("ms-ws-" + strings.Repeat("a", 70))[:52] + "-" + shortHash(long), "h-" + shortHash(long)},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			if got := ObjectName(tt.id); got != tt.object {
				t.Errorf("ObjectName = %q, want %q", got, tt.object)
			}
			if errs := validation.IsDNS1035Label(ObjectName(tt.id)); len(errs) > 0 {
				t.Errorf("ObjectName %q: %v", ObjectName(tt.id), errs)
			}
			got := LabelValue(tt.id)
			if tt.label != "" && got != tt.label {
				t.Errorf("LabelValue = %q, want %q", got, tt.label)
			}
			if errs := validation.IsValidLabelValue(got); len(errs) > 0 {
				t.Errorf("LabelValue %q: %v", got, errs)
			}
		})
	}
}

func TestResources(t *testing.T) {
	tests := []struct {
		name        string
		spec        compute.Spec
		req, limits map[corev1.ResourceName]string
	}{
		{"none", compute.Spec{}, nil, nil},
		{"cpu and memory", compute.Spec{CPU: 0.1, MemoryGB: 0.5},
			map[corev1.ResourceName]string{"cpu": "100m", "memory": "512Mi"}, nil},
		{"memory limit and gpu", compute.Spec{CPU: 2, MemoryGB: 1, MemoryLimitGB: 2, GPUs: 1},
			map[corev1.ResourceName]string{"cpu": "2", "memory": "1Gi", ResourceGPU: "1"},
			map[corev1.ResourceName]string{"memory": "2Gi", ResourceGPU: "1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := buildResources(&tt.spec)
			check := func(what string, got corev1.ResourceList, want map[corev1.ResourceName]string) {
				if len(got) != len(want) {
					t.Fatalf("%s = %v, want %v", what, got, want)
				}
				for k, v := range want {
					q := got[k]
					if q.Cmp(resource.MustParse(v)) != 0 {
						t.Errorf("%s[%s] = %s, want %s", what, k, q.String(), v)
					}
				}
			}
			check("requests", r.Requests, tt.req)
			check("limits", r.Limits, tt.limits)
		})
	}
}

func TestCapacity(t *testing.T) {
	node := func(name string, ready bool, cpu, mem string, gpu int64) corev1.Node {
		st := corev1.ConditionFalse
		if ready {
			st = corev1.ConditionTrue
		}
		return corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Status: corev1.NodeStatus{
				Allocatable: corev1.ResourceList{"cpu": resource.MustParse(cpu), "memory": resource.MustParse(mem), ResourceGPU: *resource.NewQuantity(gpu, resource.DecimalSI)},
				Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st}},
			},
		}
	}
	pod := func(nodeName, cpu, mem string, phase corev1.PodPhase) corev1.Pod {
		return corev1.Pod{
			Spec: corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{{Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{"cpu": resource.MustParse(cpu), "memory": resource.MustParse(mem)}}}}},
			Status: corev1.PodStatus{Phase: phase},
		}
	}
	nodes := []corev1.Node{node("a", true, "4", "8Gi", 1), node("b", true, "3500m", "8Gi", 0), node("c", false, "16", "64Gi", 4)}
	pods := []corev1.Pod{
		pod("a", "1", "1Gi", corev1.PodRunning),
		pod("b", "500m", "2Gi", corev1.PodPending),
		pod("c", "8", "8Gi", corev1.PodRunning),   // on a NotReady node
		pod("a", "2", "2Gi", corev1.PodSucceeded), // finished
		pod("", "2", "2Gi", corev1.PodPending),    // not scheduled
	}
	total, free, err := capacity(nodes, pods)
	if err != nil {
		t.Fatal(err)
	}
	if want := (compute.Capacity{CPU: 7.5, MemoryGB: 16, GPUs: 1}); total != want {
		t.Errorf("total = %+v, want %+v", total, want)
	}
	if want := (compute.Capacity{CPU: 6, MemoryGB: 13, GPUs: 1}); free != want {
		t.Errorf("free = %+v, want %+v", free, want)
	}
}

func TestCrashReason(t *testing.T) {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p1"}, Status: corev1.PodStatus{
		ContainerStatuses: []corev1.ContainerStatus{{
			Name: ContainerName, RestartCount: 4,
			State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Error", ExitCode: 3, Message: "init() failed"}},
		}},
	}}
	got, container := crashReason(p)
	want := "pod p1 container model: CrashLoopBackOff (restarts 4); last exit: Error (exit code 3): init() failed"
	if got != want || container != ContainerName {
		t.Errorf("crashReason = %q, %q; want %q", got, container, want)
	}
	d := &Driver{cfg: Config{Port: 5001}}
	r := d.replicaStatus(p)
	if r.State != compute.ReplicaCrashLoop || r.Restarts != 4 || !strings.Contains(r.LastExit, "exit code 3") {
		t.Errorf("replicaStatus = %+v", r)
	}
}

func TestProbes(t *testing.T) {
	spec := &compute.Spec{ID: "w/s", Liveness: compute.Probe{Period: 10 * time.Second, InitialDelay: 310 * time.Second, Timeout: 2 * time.Second, SuccessThreshold: 1, FailureThreshold: 3}}
	c := buildContainer(spec, objectOptions{port: 5001, command: []string{"modelship"}})
	lp := c.LivenessProbe
	if lp == nil || lp.HTTPGet.Path != LivenessPath || lp.PeriodSeconds != 10 || lp.InitialDelaySeconds != 310 || lp.TimeoutSeconds != 2 || lp.FailureThreshold != 3 {
		t.Errorf("liveness = %+v", lp)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != ReadinessPath {
		t.Errorf("readiness = %+v", c.ReadinessProbe)
	}
	if got := strings.Join(c.Command, " "); got != "modelship serve-model" {
		t.Errorf("command = %q", got)
	}
}

func TestRolloutState(t *testing.T) {
	dep := func(gen, observed int64, want, replicas, updated, available int32) *appsv1.Deployment {
		return &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Generation: gen},
			Spec:       appsv1.DeploymentSpec{Replicas: &want},
			Status: appsv1.DeploymentStatus{ObservedGeneration: observed, Replicas: replicas,
				UpdatedReplicas: updated, AvailableReplicas: available},
		}
	}
	tests := []struct {
		name string
		dep  *appsv1.Deployment
		want bool
	}{
		{"done", dep(2, 2, 2, 2, 2, 2), true},
		{"not observed", dep(3, 2, 2, 2, 2, 2), false},
		{"surge pod", dep(2, 2, 2, 3, 2, 2), false},
		{"old pods", dep(2, 2, 2, 2, 1, 2), false},
		{"not available", dep(2, 2, 2, 2, 2, 1), false},
		{"scaled to zero", dep(1, 1, 0, 0, 0, 0), true},
	}
	for _, tt := range tests {
		if got := rolledOut(tt.dep); got != tt.want {
			t.Errorf("%s: rolledOut = %v, want %v", tt.name, got, tt.want)
		}
	}
	rs := []compute.ReplicaStatus{
		{Revision: "r1", Ready: true}, {Revision: "r2", Ready: true}, {Revision: "r1", Ready: true}, {Revision: "r0", Ready: false},
	}
	if got := servingRevision(rs, "r2"); got != "r1" {
		t.Errorf("servingRevision = %q, want r1", got)
	}
	if got := servingRevision(rs[1:2], "r2"); got != "" {
		t.Errorf("servingRevision on a first rollout = %q, want empty", got)
	}
}
