package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/compute"
)

// Cluster purposes (as Azure's AKS attach) and their minimum capacity.
const (
	PurposeFastProd = modelship.PurposeFastProd
	PurposeDevTest  = modelship.PurposeDevTest
	// DevTestWarnCPU: a DevTest cluster with fewer allocatable vCPU gets a
	// warning.
	DevTestWarnCPU = 2
)

// attachTimeout bounds each API call of Attach (an unreachable server
// fails fast).
const attachTimeout = 10 * time.Second

// Permission is one verb on one resource that modelship needs.
type Permission struct {
	Verb, Group, Resource, Subresource string
	// Namespaced: checked in the target namespace; otherwise
	// cluster-wide.
	Namespaced bool
	// Name restricts the check to one object (e.g. kube-system).
	Name string
	// Why says what modelship does with it.
	Why string
}

// string renders p as "verb resource[/sub][.group] [name] [in namespace ns]".
func (p Permission) string(ns string) string {
	r := p.Resource
	if p.Subresource != "" {
		r += "/" + p.Subresource
	}
	if p.Group != "" {
		r += "." + p.Group
	}
	s := p.Verb + " " + r
	if p.Name != "" {
		s += " " + p.Name
	}
	if p.Namespaced {
		s += " in namespace " + ns
	} else {
		s += " (cluster-wide)"
	}
	return s
}

// Permissions lists what the driver does in a cluster today (see
// docs/kubernetes.md for the matching Role and ClusterRole). Attach also
// checks "get" on the target namespace and, when it does not exist yet,
// "create namespaces" and "delete" on it (Uninstall deletes a namespace
// modelship created).
var Permissions = func() []Permission {
	var ps []Permission
	add := func(group, res, sub string, namespaced bool, why string, verbs ...string) {
		for _, v := range verbs {
			ps = append(ps, Permission{Verb: v, Group: group, Resource: res, Subresource: sub, Namespaced: namespaced, Why: why})
		}
	}
	add("apps", "deployments", "", true, "run each deployment", "get", "list", "watch", "create", "update", "patch", "delete")
	add("apps", "deployments", "scale", true, "scale (autoscaler)", "get", "update", "patch")
	add("apps", "replicasets", "", true, "roll a failed rollout back", "list")
	add("", "services", "", true, "a Service per deployment", "get", "list", "create", "update", "patch", "delete")
	add("", "pods", "", true, "replica status", "get", "list", "watch")
	add("", "pods", "log", true, "replica logs", "get")
	// The in-cluster front end (InstallFrontEnd, PublishRoutes,
	// Uninstall). RBAC lets modelship create the front end's Role only
	// when it holds every permission the Role grants (FrontEndRules):
	// secrets get/list/watch, endpointslices list/watch, deployments get,
	// deployments/scale get/update/patch.
	add("", "secrets", "", true, "the route table Secret of the front end", "get", "list", "watch", "create", "update", "patch", "delete")
	add("", "serviceaccounts", "", true, "the front end's ServiceAccount", "get", "list", "create", "update", "patch", "delete")
	add("rbac.authorization.k8s.io", "roles", "", true, "the front end's Role", "get", "list", "create", "update", "patch", "delete")
	add("rbac.authorization.k8s.io", "rolebindings", "", true, "the front end's RoleBinding", "get", "list", "create", "update", "patch", "delete")
	add("discovery.k8s.io", "endpointslices", "", true, "granted to the front end (replica discovery)", "list", "watch")
	add("", "configmaps", "", true, "uninstall removes every object modelship created", "list", "delete")
	add("", "nodes", "", false, "capacity", "list")
	add("", "pods", "", false, "free capacity (requests of every pod)", "list")
	ps = append(ps, Permission{Verb: "get", Resource: "namespaces", Name: "kube-system", Why: "cluster identity"})
	return ps
}()

// AttachInfo is what Attach learned about a cluster.
type AttachInfo struct {
	// ClusterID identifies the cluster: the UID of its kube-system
	// namespace. The same cluster must not be attached twice.
	ClusterID string `json:"clusterId"`
	// Server is the API server URL; Context the kubeconfig context used.
	Server  string `json:"server"`
	Context string `json:"context"`
	// Namespace holds the target's objects; NamespaceExists is false when
	// the driver will create it.
	Namespace       string `json:"namespace"`
	NamespaceExists bool   `json:"namespaceExists"`
	// Version is the API server's version (e.g. v1.37.2).
	Version string `json:"version"`
	// ReadyNodes counts Ready, schedulable nodes; Allocatable sums them.
	ReadyNodes  int              `json:"readyNodes"`
	Allocatable compute.Capacity `json:"allocatable"`
	Purpose     string           `json:"purpose"`
	// Warnings are shown to the user but do not stop the attachment.
	Warnings []string `json:"warnings,omitempty"`
}

// Attach validates a cluster for a compute target before anything is
// saved or created: the API server is reachable with the kubeconfig's
// credentials (context "" = current), they hold every Permission in
// namespace (and may create it when it does not exist), and the cluster
// is big enough for purpose (FastProd needs FastProdMinCPU allocatable vCPU
// across Ready nodes; DevTest warns under DevTestWarnCPU). It returns the
// cluster identity; the caller refuses a ClusterID that is already
// attached. Errors are *modelship.Error: EINVALID (bad kubeconfig, too
// small), EUNAVAILABLE (unreachable), EFORBIDDEN (missing permissions,
// each listed).
func Attach(ctx context.Context, kubeconfig []byte, kubeContext, namespace, purpose string) (*AttachInfo, error) {
	if purpose == "" {
		purpose = PurposeFastProd
	}
	if purpose != PurposeFastProd && purpose != PurposeDevTest && purpose != modelship.PurposeDenseProd {
		return nil, modelship.Errorf(modelship.EINVALID, "cluster purpose %q is invalid; use FastProd, DenseProd or DevTest", purpose)
	}
	if namespace == "" {
		namespace = "default"
	}
	rc, err := loadKubeconfig(kubeconfig, kubeContext)
	if err != nil {
		return nil, err
	}
	rc = rest.CopyConfig(rc)
	rc.Timeout = attachTimeout
	rc.QPS, rc.Burst = 50, 100 // one access review per permission
	client, err := k8s.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("attach: creating client for %s: %w", rc.Host, err)
	}
	info := &AttachInfo{Server: rc.Host, Context: kubeContext, Namespace: namespace, Purpose: purpose}
	if info.Context == "" {
		info.Context = currentContext(kubeconfig)
	}

	// 1. Reachable, and the credentials authenticate.
	v, err := client.Discovery().ServerVersion()
	if err != nil {
		return nil, reachError(rc.Host, err)
	}
	info.Version = v.GitVersion

	// 2. Permissions (SelfSubjectAccessReview, one per verb/resource).
	_, nsErr := client.CoreV1().Namespaces().Get(ctx, namespace, metav1.GetOptions{})
	switch {
	case nsErr == nil:
		info.NamespaceExists = true
	case apierrors.IsNotFound(nsErr) || apierrors.IsForbidden(nsErr):
		// Forbidden: may still exist; creating it then fails with
		// AlreadyExists, which the driver accepts.
	default:
		return nil, fmt.Errorf("attach: reading namespace %s: %w", namespace, nsErr)
	}
	need := append(Permissions[:len(Permissions):len(Permissions)],
		Permission{Verb: "get", Resource: "namespaces", Name: namespace, Why: "check the target namespace"})
	if !info.NamespaceExists {
		need = append(need,
			Permission{Verb: "create", Resource: "namespaces", Why: "create namespace " + namespace},
			Permission{Verb: "delete", Resource: "namespaces", Name: namespace, Why: "uninstall deletes the namespace modelship created"})
	}
	var missing []string
	for _, p := range need {
		ra := &authorizationv1.ResourceAttributes{Verb: p.Verb, Group: p.Group, Resource: p.Resource, Subresource: p.Subresource, Name: p.Name}
		if p.Namespaced {
			ra.Namespace = namespace
		}
		res, err := client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: ra},
		}, metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("attach: checking permission %q: %w", p.string(namespace), err)
		}
		if !res.Status.Allowed {
			missing = append(missing, p.string(namespace))
		}
	}
	if len(missing) > 0 {
		return nil, modelship.Errorf(modelship.EFORBIDDEN,
			"the credentials of %s may not do what modelship needs; missing %d permission(s): %s (docs/kubernetes.md has a Role and ClusterRole granting them)",
			rc.Host, len(missing), strings.Join(missing, "; "))
	}

	// 3. Capacity.
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("attach: listing nodes: %w", err)
	}
	for i := range nodes.Items {
		if nodeUsable(&nodes.Items[i]) {
			info.ReadyNodes++
		}
	}
	info.Allocatable, _, _ = capacity(nodes.Items, nil)
	switch {
	case purpose == PurposeFastProd && info.Allocatable.CPU < modelship.FastProdMinCPU:
		return nil, modelship.Errorf(modelship.EINVALID,
			"a FastProd cluster needs at least %d allocatable vCPU across Ready nodes; %s has %g on %d Ready node(s): add nodes or attach it with --cluster-purpose DevTest",
			modelship.FastProdMinCPU, rc.Host, info.Allocatable.CPU, info.ReadyNodes)
	case purpose == PurposeDevTest && info.Allocatable.CPU < DevTestWarnCPU:
		info.Warnings = append(info.Warnings, fmt.Sprintf("the cluster has %g allocatable vCPU on %d Ready node(s), under %d: deployments may not fit", info.Allocatable.CPU, info.ReadyNodes, DevTestWarnCPU))
	}

	// 4. Identity.
	ks, err := client.CoreV1().Namespaces().Get(ctx, metav1.NamespaceSystem, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("attach: reading namespace kube-system (cluster identity): %w", err)
	}
	info.ClusterID = string(ks.UID)
	return info, nil
}

// ClusterID returns the identity of the cluster client talks to: the UID of its
// kube-system namespace.
func ClusterID(ctx context.Context, client k8s.Interface) (string, error) {
	ks, err := client.CoreV1().Namespaces().Get(ctx, metav1.NamespaceSystem, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("reading namespace kube-system: %w", err)
	}
	return string(ks.UID), nil
}

// reachError turns a failed first call into a user-facing error.
func reachError(host string, err error) error {
	switch {
	case apierrors.IsUnauthorized(err):
		return modelship.Errorf(modelship.EUNAUTHORIZED, "the API server %s rejected the kubeconfig's credentials: %v", host, err)
	case apierrors.IsForbidden(err):
		return modelship.Errorf(modelship.EFORBIDDEN, "the API server %s refused the version request: %v", host, err)
	}
	var ne net.Error
	var ue *url.Error
	if errors.As(err, &ne) || errors.As(err, &ue) {
		return modelship.Errorf(modelship.EUNAVAILABLE, "the API server %s is unreachable: %v", host, err)
	}
	return modelship.Errorf(modelship.EUNAVAILABLE, "the API server %s did not answer: %v", host, err)
}

// loadKubeconfig builds a REST config from kubeconfig bytes and a context.
func loadKubeconfig(kubeconfig []byte, kubeContext string) (*rest.Config, error) {
	if len(kubeconfig) == 0 {
		return nil, modelship.Errorf(modelship.EINVALID, "a kubeconfig is required")
	}
	raw, err := clientcmd.Load(kubeconfig)
	if err != nil {
		return nil, modelship.Errorf(modelship.EINVALID, "the kubeconfig is invalid: %v", err)
	}
	if kubeContext != "" {
		if _, ok := raw.Contexts[kubeContext]; !ok {
			return nil, modelship.Errorf(modelship.EINVALID, "the kubeconfig has no context %q", kubeContext)
		}
	}
	rc, err := clientcmd.NewNonInteractiveClientConfig(*raw, kubeContext, &clientcmd.ConfigOverrides{}, nil).ClientConfig()
	if err != nil {
		return nil, modelship.Errorf(modelship.EINVALID, "the kubeconfig is unusable: %v", err)
	}
	return rc, nil
}

func currentContext(kubeconfig []byte) string {
	raw, err := clientcmd.Load(kubeconfig)
	if err != nil {
		return ""
	}
	return raw.CurrentContext
}
