package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/compute"
)

var _ compute.Cluster = (*Driver)(nil)

// The in-cluster front end: a Deployment running `modelship gateway` in the
// target namespace, behind a Service, that serves scoring traffic for the
// services and endpoint versions of the target. It never talks to the control
// plane: the control plane writes the route table (routes, auth modes, key
// hashes, token public keys, traffic splits, autoscale settings) into a
// Secret, and the front end finds each version's replicas through the
// EndpointSlices of its Kubernetes Service.
const (
	// RoutesSecretName is the Secret holding the target's route table.
	RoutesSecretName = "modelship-routes"
	// RoutesSecretKey is the key of the route table (JSON of
	// modelship.RouteTable, replicas omitted) in that Secret.
	RoutesSecretKey = "routes.json"
	// FrontEndName names the front end's Deployment, Service,
	// ServiceAccount, Role and RoleBinding.
	FrontEndName = "modelship-frontend"
	// FrontEndPort is the port the front end listens on (container and
	// Service port).
	FrontEndPort = 8641
)

// Labels of the front end's objects (besides LabelManagedBy).
const (
	// LabelComponent is "frontend" on every object of the front end (and
	// the routes Secret); model deployments do not carry it.
	LabelComponent    = "app.kubernetes.io/component"
	ComponentFrontEnd = "frontend"
	// FrontEndContainer is the container of a front-end pod.
	FrontEndContainer = "gateway"
)

// Probe paths served by `modelship gateway` on FrontEndPort
// (docs/frontend.md): readiness /readyz (503 until the Secret and
// EndpointSlice watches have synced, and again after SIGTERM), liveness
// /healthz (200 while the process serves).
const (
	FrontEndReadinessPath = "/readyz"
	FrontEndLivenessPath  = "/healthz"
)

// frontEndShutdownDelay: after SIGTERM the gateway fails /readyz this long
// before it closes its listener, so the Service drops the pod first; then
// requests in flight get the gateway's --shutdown-grace (30 s).
const (
	frontEndShutdownDelay = "5s"
	frontEndGracePeriod   = 40 // seconds: delay + grace + margin
)

// Defaults of FrontEndOptions.
const (
	// DefaultFrontEndReplicas: two, so one front end keeps serving while
	// the other restarts or moves (rolling updates add a third first).
	DefaultFrontEndReplicas = 2
	DefaultFrontEndType     = corev1.ServiceTypeNodePort
)

// FrontEndOptions shape the front end's Deployment and Service.
type FrontEndOptions struct {
	// Replicas of the front end (0 = DefaultFrontEndReplicas).
	Replicas int32
	// ServiceType is NodePort (default), LoadBalancer or ClusterIP.
	ServiceType corev1.ServiceType
	// NodePort fixes the node port (NodePort and LoadBalancer; 0 = the
	// API server picks one, 30000-32767 by default).
	NodePort int32
	// ServiceAnnotations go on the Service (e.g. a cloud's internal load
	// balancer annotation).
	ServiceAnnotations map[string]string
	// Resources of the gateway container (nil = requests of 100m CPU and
	// 128Mi memory, no limits).
	Resources *corev1.ResourceRequirements
}

// frontEndLabels are the labels of every front-end object (and of its pods).
func frontEndLabels() map[string]string {
	return map[string]string{LabelManagedBy: ManagedBy, LabelName: FrontEndName, LabelComponent: ComponentFrontEnd}
}

// frontEndSelector selects the front end's pods.
func frontEndSelector() map[string]string {
	return map[string]string{LabelName: FrontEndName, LabelComponent: ComponentFrontEnd}
}

// FrontEndRules are the permissions of the front end's Role: read the
// routes Secret (list and watch only with the field selector
// metadata.name=RoutesSecretName, which is how RBAC authorizes a named
// list or watch), discover replicas through EndpointSlices, and scale model
// Deployments through the scale subresource. The control plane must hold
// each of them to create the Role (RBAC forbids granting what one does not
// hold); Permissions includes them.
var FrontEndRules = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{RoutesSecretName}, Verbs: []string{"get", "list", "watch"}},
	{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list", "watch"}},
	{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get"}},
	{APIGroups: []string{"apps"}, Resources: []string{"deployments/scale"}, Verbs: []string{"get", "update", "patch"}},
}

// frontEndObjects returns the ServiceAccount, Role, RoleBinding, Service and
// Deployment of the front end, in the order they are applied.
func (d *Driver) frontEndObjects(o FrontEndOptions) []metav1.Object {
	ns := d.cfg.Namespace
	objMeta := func(ann map[string]string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: FrontEndName, Namespace: ns, Labels: frontEndLabels(), Annotations: ann}
	}
	sa := &corev1.ServiceAccount{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"}, ObjectMeta: objMeta(nil)}
	role := &rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
		ObjectMeta: objMeta(nil),
		Rules:      FrontEndRules,
	}
	rb := &rbacv1.RoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
		ObjectMeta: objMeta(nil),
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: FrontEndName},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: FrontEndName, Namespace: ns}},
	}

	port := corev1.ServicePort{Name: "http", Port: FrontEndPort, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("http")}
	if o.ServiceType != corev1.ServiceTypeClusterIP {
		port.NodePort = o.NodePort
	}
	svc := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: objMeta(o.ServiceAnnotations),
		Spec: corev1.ServiceSpec{
			Type:     o.ServiceType,
			Selector: frontEndSelector(),
			Ports:    []corev1.ServicePort{port},
		},
	}

	res := corev1.ResourceRequirements{Requests: corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("100m"),
		corev1.ResourceMemory: resource.MustParse("128Mi"),
	}}
	if o.Resources != nil {
		res = *o.Resources
	}
	replicas := o.Replicas
	maxUnavailable, maxSurge := intstr.FromInt32(0), intstr.FromInt32(1)
	history := int32(3)
	grace := int64(frontEndGracePeriod)
	uid := int64(65532) // "nonroot" of distroless images
	c := corev1.Container{
		Name:            FrontEndContainer,
		Image:           d.cfg.Image,
		ImagePullPolicy: d.cfg.ImagePullPolicy,
		Command:         slices.Clone(d.cfg.Command),
		Args:            []string{"gateway", "--listen", "0.0.0.0:" + strconv.Itoa(FrontEndPort), "--shutdown-delay", frontEndShutdownDelay},
		Env: []corev1.EnvVar{{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{
			FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"},
		}}},
		Ports:     []corev1.ContainerPort{{Name: "http", ContainerPort: FrontEndPort, Protocol: corev1.ProtocolTCP}},
		Resources: res,
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: FrontEndReadinessPath, Port: intstr.FromString("http")}},
			PeriodSeconds:    2,
			TimeoutSeconds:   1,
			SuccessThreshold: 1,
			FailureThreshold: 3,
		},
		LivenessProbe: &corev1.Probe{
			ProbeHandler:        corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: FrontEndLivenessPath, Port: intstr.FromString("http")}},
			InitialDelaySeconds: 10,
			PeriodSeconds:       10,
			TimeoutSeconds:      2,
			SuccessThreshold:    1,
			FailureThreshold:    3,
		},
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		},
	}
	dep := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: objMeta(nil),
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: frontEndSelector()},
			Strategy: appsv1.DeploymentStrategy{
				Type:          appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: &maxUnavailable, MaxSurge: &maxSurge},
			},
			RevisionHistoryLimit: &history,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: frontEndLabels()},
				Spec: corev1.PodSpec{
					ServiceAccountName:            FrontEndName,
					AutomountServiceAccountToken:  ptr(true),
					EnableServiceLinks:            ptr(false),
					TerminationGracePeriodSeconds: &grace,
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   ptr(true),
						RunAsUser:      &uid,
						RunAsGroup:     &uid,
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					// Spread the replicas over nodes when there are several.
					TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{
						MaxSkew:           1,
						TopologyKey:       "kubernetes.io/hostname",
						WhenUnsatisfiable: corev1.ScheduleAnyway,
						LabelSelector:     &metav1.LabelSelector{MatchLabels: frontEndSelector()},
					}},
					Containers: []corev1.Container{c},
				},
			},
		},
	}
	return []metav1.Object{sa, role, rb, svc, dep}
}

// InstallFrontEnd implements compute.Cluster: InstallFrontEndWith the
// target's front-end options.
//
// The options are Config.FrontEnd (zero: a NodePort Service, 2 replicas).
func (d *Driver) InstallFrontEnd(ctx context.Context) error {
	return d.InstallFrontEndWith(ctx, d.cfg.FrontEnd)
}

// InstallFrontEndWith creates or updates (server-side apply, field manager
// FieldManager) the in-cluster front end in the target namespace: the
// ServiceAccount, Role (FrontEndRules) and RoleBinding FrontEndName, a
// Deployment FrontEndName running `<Command> gateway --listen
// 0.0.0.0:FrontEndPort --shutdown-delay 5s` with the target's image
// (o.Replicas replicas, default 2; RollingUpdate maxUnavailable 0, maxSurge
// 1; non-root; readiness GET /readyz, liveness GET /healthz; POD_NAMESPACE
// from the downward API)
// and a Service FrontEndName of o.ServiceType (default NodePort) on port
// FrontEndPort. Every object is labelled managed-by=modelship and
// app.kubernetes.io/component=frontend. Installing again with the same
// options changes nothing. The route table comes from PublishRoutes.
func (d *Driver) InstallFrontEndWith(ctx context.Context, o FrontEndOptions) error {
	if o.Replicas < 0 {
		return modelship.Errorf(modelship.EINVALID, "kubernetes target: front-end replicas %d < 0", o.Replicas)
	}
	if o.Replicas == 0 {
		o.Replicas = DefaultFrontEndReplicas
	}
	switch o.ServiceType {
	case "":
		o.ServiceType = DefaultFrontEndType
	case corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeClusterIP:
	default:
		return modelship.Errorf(modelship.EINVALID, "kubernetes target: front-end service type %q is invalid; use NodePort, LoadBalancer or ClusterIP", o.ServiceType)
	}
	if o.NodePort != 0 && (o.ServiceType == corev1.ServiceTypeClusterIP || o.NodePort < 1 || o.NodePort > 65535) {
		return modelship.Errorf(modelship.EINVALID, "kubernetes target: node port %d is invalid for a %s front end", o.NodePort, o.ServiceType)
	}
	for _, obj := range d.frontEndObjects(o) {
		if err := d.applyObject(ctx, obj); err != nil {
			return err
		}
	}
	return nil
}

// applyObject server-side applies one typed object (TypeMeta set) of the
// front end.
func (d *Driver) applyObject(ctx context.Context, obj metav1.Object) error {
	data, err := json.Marshal(obj)
	if err != nil {
		return fmt.Errorf("kubernetes target: encoding %T %s: %w", obj, obj.GetName(), err)
	}
	opts := metav1.PatchOptions{FieldManager: FieldManager, Force: ptr(true)}
	ns, name := d.cfg.Namespace, obj.GetName()
	var kind string
	switch obj.(type) {
	case *corev1.ServiceAccount:
		kind = "serviceaccount"
		_, err = d.client.CoreV1().ServiceAccounts(ns).Patch(ctx, name, types.ApplyPatchType, data, opts)
	case *rbacv1.Role:
		kind = "role"
		_, err = d.client.RbacV1().Roles(ns).Patch(ctx, name, types.ApplyPatchType, data, opts)
	case *rbacv1.RoleBinding:
		kind = "rolebinding"
		_, err = d.client.RbacV1().RoleBindings(ns).Patch(ctx, name, types.ApplyPatchType, data, opts)
	case *corev1.Service:
		kind = "service"
		_, err = d.client.CoreV1().Services(ns).Patch(ctx, name, types.ApplyPatchType, data, opts)
	case *appsv1.Deployment:
		kind = "deployment"
		_, err = d.client.AppsV1().Deployments(ns).Patch(ctx, name, types.ApplyPatchType, data, opts)
	default:
		err = errUnknownResource
	}
	if err != nil {
		return fmt.Errorf("kubernetes target: applying %s %s/%s: %w", kind, ns, name, err)
	}
	return nil
}

// FrontEndAddress returns the base URL clients use to reach the front end,
// by its Service's type:
//
//   - LoadBalancer: http://<ingress IP or hostname>:FrontEndPort; an
//     EUNAVAILABLE error saying the address is pending until the cloud
//     assigns one;
//   - NodePort: http://<InternalIP (else ExternalIP) of the first Ready
//     node, by name>:<node port> (any node forwards; pick another if that
//     one is not reachable from the client);
//   - ClusterIP: http://<cluster IP>:FrontEndPort, reachable only from
//     inside the cluster (pods, or kubectl port-forward).
//
// ENOTFOUND when the front end is not installed.
func (d *Driver) FrontEndAddress(ctx context.Context) (string, error) {
	ns := d.cfg.Namespace
	svc, err := d.client.CoreV1().Services(ns).Get(ctx, FrontEndName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", modelship.Errorf(modelship.ENOTFOUND, "kubernetes target: the front end is not installed in namespace %s", ns)
	}
	if err != nil {
		return "", fmt.Errorf("kubernetes target: reading service %s/%s: %w", ns, FrontEndName, err)
	}
	var port corev1.ServicePort
	for _, p := range svc.Spec.Ports {
		if p.Name == "http" || port.Port == 0 {
			port = p
		}
	}
	if port.Port == 0 {
		return "", fmt.Errorf("kubernetes target: service %s/%s has no port", ns, FrontEndName)
	}
	hostURL := func(host string, port int32) string {
		return "http://" + net.JoinHostPort(host, strconv.Itoa(int(port)))
	}
	switch svc.Spec.Type {
	case corev1.ServiceTypeLoadBalancer:
		for _, in := range svc.Status.LoadBalancer.Ingress {
			if in.IP != "" {
				return hostURL(in.IP, port.Port), nil
			}
			if in.Hostname != "" {
				return hostURL(in.Hostname, port.Port), nil
			}
		}
		return "", modelship.Errorf(modelship.EUNAVAILABLE, "kubernetes target: the front end's load balancer address is pending (service %s/%s has no ingress yet; the cloud provider assigns one, or the cluster has no load-balancer controller)", ns, FrontEndName)
	case corev1.ServiceTypeNodePort:
		if port.NodePort == 0 {
			return "", modelship.Errorf(modelship.EUNAVAILABLE, "kubernetes target: service %s/%s has no node port yet", ns, FrontEndName)
		}
		nodes, err := d.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return "", fmt.Errorf("kubernetes target: listing nodes: %w", err)
		}
		slices.SortFunc(nodes.Items, func(a, b corev1.Node) int { return strings.Compare(a.Name, b.Name) })
		for _, typ := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP} {
			for i := range nodes.Items {
				n := &nodes.Items[i]
				if !nodeReady(n) {
					continue
				}
				for _, a := range n.Status.Addresses {
					if a.Type == typ && a.Address != "" {
						return hostURL(a.Address, port.NodePort), nil
					}
				}
			}
		}
		return "", modelship.Errorf(modelship.EUNAVAILABLE, "kubernetes target: no Ready node with an InternalIP or ExternalIP address to reach node port %d", port.NodePort)
	default:
		if svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
			return "", fmt.Errorf("kubernetes target: service %s/%s has no cluster IP", ns, FrontEndName)
		}
		return hostURL(svc.Spec.ClusterIP, port.Port), nil
	}
}

// nodeReady reports whether n's Ready condition is True.
func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// FrontEndStatus is the state of the front end, for `computetarget show`.
type FrontEndStatus struct {
	// Installed is false when the front end's Deployment does not exist
	// (the other fields are then empty).
	Installed bool `json:"installed"`
	// Desired, Ready and Updated count the front end's replicas: wanted,
	// Ready, and running the current pod template.
	Desired int32 `json:"desired"`
	Ready   int32 `json:"ready"`
	Updated int32 `json:"updated"`
	// Image is the front end's image.
	Image string `json:"image,omitempty"`
	// ServiceType is the front end's Service type.
	ServiceType corev1.ServiceType `json:"serviceType,omitempty"`
	// Address is FrontEndAddress; AddressError why there is none yet
	// (e.g. a pending load balancer).
	Address      string `json:"address,omitempty"`
	AddressError string `json:"addressError,omitempty"`

	addressErr error
}

// FrontEnd implements compute.Cluster: the front end's address
// (FrontEndAddress; "" with the reason while it is not known) and its ready
// replicas.
func (d *Driver) FrontEnd(ctx context.Context) (url string, ready int, err error) {
	st, err := d.FrontEndStatus(ctx)
	if err != nil {
		return "", 0, err
	}
	if !st.Installed {
		return "", 0, modelship.Errorf(modelship.ENOTFOUND, "kubernetes target: the front end is not installed in namespace %s", d.cfg.Namespace)
	}
	if st.AddressError != "" {
		return "", int(st.Ready), st.addressErr
	}
	return st.Address, int(st.Ready), nil
}

// FrontEndStatus reports the front end's replicas (from the watch cache)
// and address.
func (d *Driver) FrontEndStatus(ctx context.Context) (*FrontEndStatus, error) {
	ns := d.cfg.Namespace
	dep, err := d.deps.Deployments(ns).Get(FrontEndName)
	if apierrors.IsNotFound(err) {
		dep, err = d.client.AppsV1().Deployments(ns).Get(ctx, FrontEndName, metav1.GetOptions{})
	}
	if apierrors.IsNotFound(err) {
		return &FrontEndStatus{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes target: reading deployment %s/%s: %w", ns, FrontEndName, err)
	}
	st := &FrontEndStatus{Installed: true, Desired: deref(dep.Spec.Replicas), Ready: dep.Status.ReadyReplicas, Updated: dep.Status.UpdatedReplicas}
	if dep.Status.ObservedGeneration < dep.Generation {
		st.Updated = 0 // the controller has not seen the new template yet
	}
	if cs := dep.Spec.Template.Spec.Containers; len(cs) > 0 {
		st.Image = cs[0].Image
	}
	if svc, err := d.client.CoreV1().Services(ns).Get(ctx, FrontEndName, metav1.GetOptions{}); err == nil {
		st.ServiceType = svc.Spec.Type
	}
	st.Address, st.addressErr = d.FrontEndAddress(ctx)
	if st.addressErr != nil {
		st.AddressError = st.addressErr.Error()
	}
	return st, nil
}

// Uninstall removes everything modelship created in the target namespace:
// every Deployment, Service, Secret, ConfigMap, ServiceAccount, Role and
// RoleBinding labelled managed-by=modelship (the front end, the routes
// Secret and every model deployment), and waits until their pods are gone.
// When model deployments exist and force is false it refuses with
// ECONFLICT naming them. When modelship created the namespace (it carries
// the managed-by label) the namespace is deleted too; Kubernetes finishes
// that in the background (the namespace is Terminating for a moment). The
// driver's watches end with the namespace: Close the driver afterwards.
func (d *Driver) Uninstall(ctx context.Context, force bool) error {
	ns := d.cfg.Namespace
	managed := labels.SelectorFromSet(labels.Set{LabelManagedBy: ManagedBy})
	lo := metav1.ListOptions{LabelSelector: managed.String()}
	deps, err := d.client.AppsV1().Deployments(ns).List(ctx, lo)
	if err != nil {
		return fmt.Errorf("kubernetes target: listing deployments: %w", err)
	}
	var models []string
	for _, dep := range deps.Items {
		if dep.Labels[LabelComponent] != ComponentFrontEnd {
			models = append(models, dep.Name)
		}
	}
	slices.Sort(models)
	if len(models) > 0 && !force {
		return modelship.Errorf(modelship.ECONFLICT,
			"kubernetes target: namespace %s still has %d model deployment(s): %s; delete the services and endpoints first, or uninstall with force to remove them too",
			ns, len(models), strings.Join(models, ", "))
	}

	fg := metav1.DeletePropagationForeground
	del := metav1.DeleteOptions{PropagationPolicy: &fg}
	for _, dep := range deps.Items {
		if err := d.client.AppsV1().Deployments(ns).Delete(ctx, dep.Name, del); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("kubernetes target: deleting deployment %s/%s: %w", ns, dep.Name, err)
		}
	}
	svcs, err := d.client.CoreV1().Services(ns).List(ctx, lo)
	if err != nil {
		return fmt.Errorf("kubernetes target: listing services: %w", err)
	}
	for _, o := range svcs.Items {
		if err := d.client.CoreV1().Services(ns).Delete(ctx, o.Name, del); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("kubernetes target: deleting service %s/%s: %w", ns, o.Name, err)
		}
	}

	// Wait on the watch until no Deployment or pod with the label is left
	// (ReplicaSets go before a foreground-deleted Deployment does).
	for {
		ch := d.changes()
		ds, _ := d.deps.Deployments(ns).List(managed)
		ps, _ := d.pods.Pods(ns).List(managed)
		if len(ds) == 0 && len(ps) == 0 {
			break
		}
		select {
		case <-ch:
		case <-time.After(5 * time.Second): // resync guard, not a poll loop
		case <-ctx.Done():
			return fmt.Errorf("kubernetes target: uninstall: waiting for %d deployment(s) and %d pod(s) in namespace %s to go: %w", len(ds), len(ps), ns, ctx.Err())
		}
	}

	if err := d.deleteLabelled(ctx, lo); err != nil {
		return err
	}

	nsObj, err := d.client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case apierrors.IsForbidden(err):
		// Attach checks "get" on the namespace; without it we cannot tell
		// whether modelship created it: leave it.
		d.log.Warn("uninstall: cannot read the namespace; leaving it", "err", err)
		return nil
	case err != nil:
		return fmt.Errorf("kubernetes target: reading namespace %s: %w", ns, err)
	}
	if nsObj.Labels[LabelManagedBy] != ManagedBy || nsObj.DeletionTimestamp != nil {
		return nil
	}
	err = d.client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &nsObj.UID},
	})
	if apierrors.IsForbidden(err) {
		return modelship.Errorf(modelship.EFORBIDDEN, "kubernetes target: modelship created namespace %s but may not delete it (grant \"delete namespaces\" on %s, or delete it yourself): %v", ns, ns, err)
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("kubernetes target: deleting namespace %s: %w", ns, err)
	}
	return nil
}

// deleteLabelled deletes the Secrets, ConfigMaps, RoleBindings, Roles and
// ServiceAccounts of the namespace that match lo.
func (d *Driver) deleteLabelled(ctx context.Context, lo metav1.ListOptions) error {
	ns := d.cfg.Namespace
	core, rbac := d.client.CoreV1(), d.client.RbacV1()
	steps := []struct {
		kind string
		run  func() error
	}{
		{"secrets", func() error { return deleteAll(ctx, lo, core.Secrets(ns)) }},
		{"configmaps", func() error { return deleteAll(ctx, lo, core.ConfigMaps(ns)) }},
		{"rolebindings", func() error { return deleteAll(ctx, lo, rbac.RoleBindings(ns)) }},
		{"roles", func() error { return deleteAll(ctx, lo, rbac.Roles(ns)) }},
		{"serviceaccounts", func() error { return deleteAll(ctx, lo, core.ServiceAccounts(ns)) }},
	}
	for _, s := range steps {
		if err := s.run(); err != nil {
			return fmt.Errorf("kubernetes target: deleting %s in namespace %s: %w", s.kind, ns, err)
		}
	}
	return nil
}

// lister is the List and Delete of one typed client (Secrets(ns), ...).
type lister[L any] interface {
	List(context.Context, metav1.ListOptions) (L, error)
	Delete(context.Context, string, metav1.DeleteOptions) error
}

// deleteAll deletes every object c lists with lo.
func deleteAll[L runtime.Object](ctx context.Context, lo metav1.ListOptions, c lister[L]) error {
	l, err := c.List(ctx, lo)
	if err != nil {
		return err
	}
	objs, err := meta.ExtractList(l)
	if err != nil {
		return err
	}
	for _, o := range objs {
		m, err := meta.Accessor(o)
		if err != nil {
			return err
		}
		if err := c.Delete(ctx, m.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("%s: %w", m.GetName(), err)
		}
	}
	return nil
}
