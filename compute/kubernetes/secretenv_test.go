package kubernetes

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/modelship/modelship/compute"
)

// TestSecretEnvImageAutoscaled: credentials reach pods through a Secret
// (not the pod template), a spec's image overrides the target's, and an
// autoscaled deployment keeps the count the front end set when applied
// again; delete removes the Secret too.
func TestSecretEnvImageAutoscaled(t *testing.T) {
	c := cluster(t)
	c.AddNode(t, "sec-node-1", "8", "16Gi", 0)
	d, n := newTestDriver(t, c, "secenv")
	ctx := context.Background()
	id := "ws/fetchsvc"
	spec := &compute.Spec{ID: id, Revision: "r1", Replicas: 1, CPU: 0.1, MemoryGB: 0.1, Autoscaled: true,
		Image: "registry.example/py-modelship:1", Env: map[string]string{"MODELSHIP_FETCH_URL": "http://cp:8640"},
		SecretEnv: map[string]string{"MODELSHIP_FETCH_TOKEN": "tok-1"}}
	if err := d.Apply(ctx, spec); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, d, n, id, 30*time.Second, "1 ready replica", func(s *compute.Status) bool { return s.ReadyCount() == 1 })

	sec, err := c.Client.CoreV1().Secrets("secenv").Get(ctx, ObjectName(id), metav1.GetOptions{})
	if err != nil {
		t.Fatalf("secret: %v", err)
	}
	if string(sec.Data["MODELSHIP_FETCH_TOKEN"]) != "tok-1" || sec.Labels[LabelDeployment] != LabelValue(id) {
		t.Errorf("secret data %v labels %v", sec.Data, sec.Labels)
	}
	dep, err := c.Client.AppsV1().Deployments("secenv").Get(ctx, ObjectName(id), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctr := dep.Spec.Template.Spec.Containers[0]
	if ctr.Image != spec.Image {
		t.Errorf("image %q, want %q", ctr.Image, spec.Image)
	}
	if len(ctr.EnvFrom) != 1 || ctr.EnvFrom[0].SecretRef == nil || ctr.EnvFrom[0].SecretRef.Name != ObjectName(id) {
		t.Errorf("envFrom %+v, want the deployment's secret", ctr.EnvFrom)
	}
	for _, e := range ctr.Env {
		if e.Name == "MODELSHIP_FETCH_TOKEN" {
			t.Errorf("the token is in the pod template: %+v", e)
		}
	}

	// The front end scales to 3; applying the spec again (a control-plane
	// restart) keeps 3, and a new token does not roll the pods.
	if err := d.Scale(ctx, id, 3); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, d, n, id, 30*time.Second, "3 ready replicas", func(s *compute.Status) bool { return s.ReadyCount() == 3 })
	spec2 := *spec
	spec2.SecretEnv = map[string]string{"MODELSHIP_FETCH_TOKEN": "tok-2"}
	if err := d.Apply(ctx, &spec2); err != nil {
		t.Fatal(err)
	}
	dep2, err := c.Client.AppsV1().Deployments("secenv").Get(ctx, ObjectName(id), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *dep2.Spec.Replicas != 3 || dep2.Generation != dep.Generation+1 {
		t.Errorf("after re-apply: replicas %d generation %d (was %d); want 3 and only the scale change", *dep2.Spec.Replicas, dep2.Generation, dep.Generation)
	}
	sec, _ = c.Client.CoreV1().Secrets("secenv").Get(ctx, ObjectName(id), metav1.GetOptions{})
	if string(sec.Data["MODELSHIP_FETCH_TOKEN"]) != "tok-2" {
		t.Errorf("secret not updated: %v", sec.Data)
	}
	// Without Autoscaled the spec's count wins.
	spec3 := spec2
	spec3.Autoscaled = false
	if err := d.Apply(ctx, &spec3); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, d, n, id, 30*time.Second, "back to 1 replica", func(s *compute.Status) bool { return len(s.Replicas) == 1 && s.ReadyCount() == 1 })

	if err := d.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	assertNothingLabelled(t, c, "secenv", LabelDeployment+"="+LabelValue(id))
}
