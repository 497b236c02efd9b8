package incluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/compute/kubernetes"
	"github.com/modelship/modelship/gateway"
)

// FieldManager names the front end's writes (the scale subresource).
const FieldManager = "modelship-frontend"

// Scaler implements gateway.Scaler on Kubernetes: the gateway's autoscaler
// (the same algorithm as on the local target; no HorizontalPodAutoscaler)
// sets the replica count of a version's Deployment through its scale
// subresource.
type Scaler struct {
	// Client talks to the API server; Namespace holds the Deployments.
	Client    k8s.Interface
	Namespace string
	// Table returns the current route table (Discovery.Table), where the
	// version's Deployment ID is looked up.
	Table func() *modelship.RouteTable
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

var _ gateway.Scaler = (*Scaler)(nil)

// SetReplicas sets the replica count of the Deployment behind version of
// route (in workspace) to n. It is idempotent: asking for the current
// count writes nothing. A plain service's version has the route's name.
func (s *Scaler) SetReplicas(ctx context.Context, workspace, route, version string, n int) error {
	if n < 0 {
		return fmt.Errorf("incluster: replicas %d < 0", n)
	}
	id, err := s.deploymentOf(workspace, route, version)
	if err != nil {
		return err
	}
	name := kubernetes.ObjectName(id)
	deps := s.Client.AppsV1().Deployments(s.Namespace)
	from := int32(-1)
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		sc, err := deps.GetScale(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		from = sc.Spec.Replicas
		if sc.Spec.Replicas == int32(n) {
			return nil
		}
		_, err = deps.UpdateScale(ctx, name, &autoscalingv1.Scale{
			ObjectMeta: sc.ObjectMeta, Spec: autoscalingv1.ScaleSpec{Replicas: int32(n)},
		}, metav1.UpdateOptions{FieldManager: FieldManager})
		return err
	})
	if apierrors.IsNotFound(err) {
		return modelship.Errorf(modelship.ENOTFOUND, "incluster: deployment %s/%s of %s is not found", s.Namespace, name, id)
	}
	if err != nil {
		return fmt.Errorf("incluster: scaling deployment %s/%s to %d: %w", s.Namespace, name, n, err)
	}
	if from != int32(n) {
		log := s.Logger
		if log == nil {
			log = slog.Default()
		}
		log.Info("incluster: scaled deployment", "deployment", id, "object", name, "from", from, "to", n)
	}
	return nil
}

// deploymentOf finds the Deployment ID of a version in the current table.
func (s *Scaler) deploymentOf(workspace, route, version string) (string, error) {
	if s.Table == nil {
		return "", errors.New("incluster: Scaler has no route table")
	}
	t := s.Table()
	if t == nil {
		return "", modelship.Errorf(modelship.ENOTFOUND, "incluster: no route table yet")
	}
	for i := range t.Routes {
		r := &t.Routes[i]
		if r.Name != route || (workspace != "" && r.Workspace != workspace) {
			continue
		}
		if version == "" {
			version = route
		}
		for j := range r.Versions {
			v := &r.Versions[j]
			if v.Name != version {
				continue
			}
			if v.Deployment == "" {
				return "", modelship.Errorf(modelship.EINVALID, "incluster: version %q of %q names no deployment", version, route)
			}
			return v.Deployment, nil
		}
		return "", modelship.Errorf(modelship.ENOTFOUND, "incluster: %q has no version %q", route, version)
	}
	return "", modelship.Errorf(modelship.ENOTFOUND, "incluster: no route %q in workspace %q", route, workspace)
}

// PolicyRules are the permissions the front end's ServiceAccount needs in
// the target namespace (a Role bound to it): read and watch the route
// Secret (by name: the watch selects it with a field selector), list and
// watch EndpointSlices, and read and write the scale subresource of
// Deployments (the autoscaler).
func PolicyRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{kubernetes.RoutesSecretName}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list", "watch"}},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments/scale"}, Verbs: []string{"get", "update"}},
	}
}
