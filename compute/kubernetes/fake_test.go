package kubernetes

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/modelship/modelship/compute"
)

// TestCrashLoopRollback: KWOK pods never crash, so the crash-loop path of
// the rollout check runs against client-go's fake clientset: a new pod
// that restarted 3 times without becoming ready rolls the Deployment back
// to the previous ReplicaSet's template, and Status reports the crash.
func TestCrashLoopRollback(t *testing.T) {
	const ns = "crash"
	id := "ws/svc"
	name := ObjectName(id)
	o := objectOptions{namespace: ns, image: "img", pullPolicy: corev1.PullIfNotPresent, command: []string{"modelship"}, port: 5001}
	old := buildDeployment(&compute.Spec{ID: id, Revision: "r1", Replicas: 1}, o)
	dep := buildDeployment(&compute.Spec{ID: id, Revision: "r2", Replicas: 1}, o)
	dep.UID, dep.Generation = types.UID("dep-uid"), 2
	dep.Annotations["deployment.kubernetes.io/revision"] = "2"
	dep.Status = appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 2, UpdatedReplicas: 1, AvailableReplicas: 1}
	rs := func(rev string, tmpl corev1.PodTemplateSpec, hash string) *appsv1.ReplicaSet {
		tmpl = *tmpl.DeepCopy()
		tmpl.Labels[appsv1.DefaultDeploymentUniqueLabelKey] = hash
		return &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{
				Name: name + "-" + hash, Namespace: ns, Labels: tmpl.Labels,
				Annotations:     map[string]string{"deployment.kubernetes.io/revision": rev},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: name, UID: dep.UID}},
			},
			Spec: appsv1.ReplicaSetSpec{Template: tmpl},
		}
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-new", Namespace: ns, Labels: dep.Spec.Template.Labels, Annotations: dep.Spec.Template.Annotations},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.1.2.3", ContainerStatuses: []corev1.ContainerStatus{{
			Name: ContainerName, RestartCount: 3,
			State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Error", ExitCode: 3}},
		}}},
	}
	client := fake.NewClientset(dep, rs("1", old.Spec.Template, "aaa"), rs("2", dep.Spec.Template, "bbb"), pod)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := newDriver(ctx, Config{Namespace: ns, Image: "img"}, client)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(ctx)

	st, err := d.Status(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(st.CrashReason, "CrashLoopBackOff (restarts 3); last exit: Error (exit code 3)") {
		t.Errorf("CrashReason = %q", st.CrashReason)
	}
	for {
		got, err := client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Spec.Template.Annotations[AnnotationRevision] == "r1" {
			if _, hashed := got.Spec.Template.Labels[appsv1.DefaultDeploymentUniqueLabelKey]; hashed ||
				got.Annotations[AnnotationRevision] != "r1" ||
				!strings.Contains(got.Annotations[AnnotationRolloutError], "restarted 3 times") {
				t.Errorf("rolled back deployment: annotations %v, template labels %v", got.Annotations, got.Spec.Template.Labels)
			}
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no rollback: template annotations %v", got.Spec.Template.Annotations)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
