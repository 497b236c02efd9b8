// Package kubernetes is the Kubernetes compute driver: each deployment (a
// service, or one version of an endpoint) is a Deployment running
// `modelship serve-model` plus a ClusterIP Service, in one namespace per
// compute target. Status comes from informers (watches) on the target's
// Deployments and Pods, never from polling loops. Attach validates a cluster
// before a target is saved.
//
// The driver creates correct objects and reports the cluster's real status;
// delivering model files to the pods (an init container fetching from the
// control plane's artifact API) and the in-cluster front end are the next
// steps (docs/kubernetes.md).
package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	k8s "k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/compute"
)

// FieldManager is the server-side-apply field manager of modelship.
const FieldManager = "modelship"

// DefaultPort is the container port of serve-model in a pod.
const DefaultPort = 5001

// Config configures a Driver for one compute target.
type Config struct {
	// Kubeconfig and Context select the cluster and credentials (Context
	// "" = the kubeconfig's current context). REST, when set, is used
	// instead (tests, in-cluster).
	Kubeconfig []byte
	Context    string
	REST       *rest.Config
	// Namespace holds every object of the target; created if missing.
	Namespace string
	// Image runs `<Command...> serve-model` in each replica (required).
	Image string
	// ImagePullPolicy defaults to IfNotPresent.
	ImagePullPolicy corev1.PullPolicy
	// Command is the image's modelship executable (default ["modelship"]).
	Command []string
	// Port is the container port serve-model listens on (default 5001).
	Port int32
	// FrontEnd shapes the in-cluster front end InstallFrontEnd installs.
	FrontEnd FrontEndOptions
	// Log receives the driver's own messages (default: slog.Default()).
	Log *slog.Logger
	// OnChange, when set, is called with a deployment ID whenever the
	// cluster reports a change to its Deployment or pods (from the watch;
	// without driver locks held). The caller reads Status then.
	OnChange func(id string)
}

// Driver implements compute.Driver on a Kubernetes cluster.
type Driver struct {
	cfg    Config
	opts   objectOptions
	client k8s.Interface
	log    *slog.Logger

	factory informers.SharedInformerFactory
	deps    appslisters.DeploymentLister
	pods    corelisters.PodLister
	stop    context.CancelFunc

	// changed is closed and replaced on every watch event: waiters (Delete)
	// block on it instead of polling.
	mu      sync.Mutex
	changed chan struct{}
	// pending deployments (object names) for the rollout worker; kick
	// wakes it. nil after Close.
	pending map[string]struct{}
	kick    chan struct{}
}

var _ compute.Driver = (*Driver)(nil)

// RESTConfig loads a REST config from kubeconfig bytes and a context name
// ("" = current context).
func RESTConfig(kubeconfig []byte, kubeContext string) (*rest.Config, error) {
	cfg, err := loadKubeconfig(kubeconfig, kubeContext)
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// New connects to the cluster, creates the namespace if it is missing,
// starts the watches and waits until their caches are filled.
func New(ctx context.Context, cfg Config) (*Driver, error) {
	if cfg.Image == "" {
		return nil, modelship.Errorf(modelship.EINVALID, "kubernetes target: an image is required (the image running modelship serve-model)")
	}
	if cfg.Namespace == "" {
		return nil, modelship.Errorf(modelship.EINVALID, "kubernetes target: a namespace is required")
	}
	rc := cfg.REST
	if rc == nil {
		var err error
		if rc, err = loadKubeconfig(cfg.Kubeconfig, cfg.Context); err != nil {
			return nil, err
		}
	}
	rc = rest.CopyConfig(rc)
	if rc.QPS == 0 {
		rc.QPS, rc.Burst = 50, 100
	}
	client, err := k8s.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes target: creating client: %w", err)
	}
	return newDriver(ctx, cfg, client)
}

// newDriver is New with a ready client (tests pass a fake clientset).
func newDriver(ctx context.Context, cfg Config, client k8s.Interface) (*Driver, error) {
	if cfg.ImagePullPolicy == "" {
		cfg.ImagePullPolicy = corev1.PullIfNotPresent
	}
	if len(cfg.Command) == 0 {
		cfg.Command = []string{"modelship"}
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	d := &Driver{
		cfg:     cfg,
		client:  client,
		log:     cfg.Log.With("target", "kubernetes", "namespace", cfg.Namespace),
		changed: make(chan struct{}),
		pending: map[string]struct{}{},
		kick:    make(chan struct{}, 1),
		opts: objectOptions{
			namespace: cfg.Namespace, image: cfg.Image, pullPolicy: cfg.ImagePullPolicy,
			command: cfg.Command, port: cfg.Port,
		},
	}
	if err := d.ensureNamespace(ctx); err != nil {
		return nil, err
	}
	d.factory = informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithNamespace(cfg.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = LabelManagedBy + "=" + ManagedBy
		}))
	depInf := d.factory.Apps().V1().Deployments()
	podInf := d.factory.Core().V1().Pods()
	d.deps, d.pods = depInf.Lister(), podInf.Lister()
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { d.event(obj) },
		UpdateFunc: func(_, obj any) { d.event(obj) },
		DeleteFunc: func(obj any) { d.event(obj) },
	}
	for _, inf := range []cache.SharedIndexInformer{depInf.Informer(), podInf.Informer()} {
		if _, err := inf.AddEventHandler(handler); err != nil {
			return nil, fmt.Errorf("kubernetes target: adding watch handler: %w", err)
		}
	}
	runCtx, stop := context.WithCancel(context.Background())
	d.stop = stop
	d.factory.Start(runCtx.Done())
	go d.rolloutWorker(runCtx)
	for typ, ok := range d.factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			d.Close(context.Background())
			return nil, fmt.Errorf("kubernetes target: watching %v in namespace %s did not sync: %w", typ, cfg.Namespace, context.Cause(ctx))
		}
	}
	return d, nil
}

// ensureNamespace creates the target namespace when it does not exist. A
// namespace being deleted (e.g. by a detach moments ago) is waited for,
// on a watch, until it is gone or ctx ends.
func (d *Driver) ensureNamespace(ctx context.Context) error {
	ns := d.cfg.Namespace
	cur, err := d.client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	switch {
	case err == nil && cur.DeletionTimestamp == nil:
		return nil
	case err == nil:
		if err := d.waitNamespaceGone(ctx, cur); err != nil {
			return err
		}
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("kubernetes target: reading namespace %s: %w", ns, err)
	}
	_, err = d.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: ns, Labels: map[string]string{LabelManagedBy: ManagedBy},
	}}, metav1.CreateOptions{FieldManager: FieldManager})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("kubernetes target: creating namespace %s: %w", ns, err)
	}
	return nil
}

// waitNamespaceGone waits until the terminating namespace cur is deleted.
func (d *Driver) waitNamespaceGone(ctx context.Context, cur *corev1.Namespace) error {
	w, err := d.client.CoreV1().Namespaces().Watch(ctx, metav1.ListOptions{
		FieldSelector: "metadata.name=" + cur.Name, ResourceVersion: cur.ResourceVersion,
	})
	if err != nil {
		return fmt.Errorf("kubernetes target: watching namespace %s: %w", cur.Name, err)
	}
	defer w.Stop()
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				// The watch ended: look again.
				if _, err := d.client.CoreV1().Namespaces().Get(ctx, cur.Name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
					return nil
				}
				return modelship.Errorf(modelship.EUNAVAILABLE, "kubernetes target: namespace %s is being deleted; try again when it is gone", cur.Name)
			}
			if ev.Type == watch.Deleted {
				return nil
			}
		case <-ctx.Done():
			return modelship.Errorf(modelship.EUNAVAILABLE, "kubernetes target: namespace %s is being deleted and was not gone in time; try again when it is gone", cur.Name)
		}
	}
}

// event handles a watch event on a Deployment or Pod of the target.
func (d *Driver) event(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	d.mu.Lock()
	close(d.changed)
	d.changed = make(chan struct{})
	d.mu.Unlock()
	m, ok := obj.(metav1.Object)
	if !ok {
		return
	}
	id := m.GetAnnotations()[AnnotationID]
	if id == "" {
		return
	}
	if _, isPod := obj.(*corev1.Pod); !isPod || m.GetDeletionTimestamp() == nil {
		d.queueRollout(ObjectName(id))
	}
	if d.cfg.OnChange != nil {
		d.cfg.OnChange(id)
	}
}

// changes returns a channel closed at the next watch event.
func (d *Driver) changes() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.changed
}

// Apply implements compute.Driver: it server-side applies the Deployment
// and Service of spec (creating or updating them). Applying the same spec
// again changes nothing; a new revision changes the pod template and rolls
// the pods (maxUnavailable 0, maxSurge 1).
func (d *Driver) Apply(ctx context.Context, spec *compute.Spec) error {
	if spec.ID == "" || spec.Replicas < 0 {
		return modelship.Errorf(modelship.EINVALID, "kubernetes target: invalid spec (id %q, replicas %d)", spec.ID, spec.Replicas)
	}
	if sec := buildSecret(spec, d.opts); sec != nil {
		if err := d.apply(ctx, "secrets", sec); err != nil {
			return err
		}
	}
	if err := d.apply(ctx, "services", buildService(spec, d.opts)); err != nil {
		return err
	}
	dep := buildDeployment(spec, d.opts)
	if spec.Autoscaled {
		// The front end's autoscaler owns the count of an existing
		// Deployment: keep it.
		if cur, err := d.deployment(ctx, spec.ID); err == nil && cur.Spec.Replicas != nil {
			dep.Spec.Replicas = ptr(*cur.Spec.Replicas)
		}
	}
	return d.apply(ctx, "deployments", dep)
}

// apply server-side applies obj (a typed object with TypeMeta set).
func (d *Driver) apply(ctx context.Context, resource string, obj metav1.Object) error {
	data, err := json.Marshal(obj)
	if err != nil {
		return fmt.Errorf("kubernetes target: encoding %s %s: %w", resource, obj.GetName(), err)
	}
	opts := metav1.PatchOptions{FieldManager: FieldManager, Force: ptr(true)}
	ns, name := d.cfg.Namespace, obj.GetName()
	switch resource {
	case "deployments":
		_, err = d.client.AppsV1().Deployments(ns).Patch(ctx, name, types.ApplyPatchType, data, opts)
	case "services":
		_, err = d.client.CoreV1().Services(ns).Patch(ctx, name, types.ApplyPatchType, data, opts)
	case "secrets":
		_, err = d.client.CoreV1().Secrets(ns).Patch(ctx, name, types.ApplyPatchType, data, opts)
	default:
		err = errUnknownResource
	}
	if err != nil {
		return fmt.Errorf("kubernetes target: applying %s %s/%s: %w", resource, ns, name, err)
	}
	return nil
}

// Scale implements compute.Driver through the Deployment's scale
// subresource (as an autoscaler does), leaving the rest of the spec alone.
func (d *Driver) Scale(ctx context.Context, id string, replicas int) error {
	if replicas < 0 {
		return modelship.Errorf(modelship.EINVALID, "kubernetes target: replicas %d < 0", replicas)
	}
	name, ns := ObjectName(id), d.cfg.Namespace
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		sc, err := d.client.AppsV1().Deployments(ns).GetScale(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if sc.Spec.Replicas == int32(replicas) {
			return nil
		}
		sc.Spec.Replicas = int32(replicas)
		_, err = d.client.AppsV1().Deployments(ns).UpdateScale(ctx, name, &autoscalingv1.Scale{
			ObjectMeta: sc.ObjectMeta, Spec: sc.Spec,
		}, metav1.UpdateOptions{FieldManager: FieldManager})
		return err
	})
	if apierrors.IsNotFound(err) {
		return modelship.Errorf(modelship.ENOTFOUND, "deployment %q not found", id)
	}
	if err != nil {
		return fmt.Errorf("kubernetes target: scaling deployment %s/%s to %d: %w", ns, name, replicas, err)
	}
	return nil
}

// Delete implements compute.Driver: it deletes every Deployment and Service
// labelled with id (foreground, so ReplicaSets and pods go first) and
// returns when no Deployment or pod of id is left, or ctx ends.
func (d *Driver) Delete(ctx context.Context, id string) error {
	ns := d.cfg.Namespace
	sel := d.selector(id)
	lo := metav1.ListOptions{LabelSelector: sel.String()}
	fg := metav1.DeletePropagationForeground
	del := metav1.DeleteOptions{PropagationPolicy: &fg}
	deps, err := d.client.AppsV1().Deployments(ns).List(ctx, lo)
	if err != nil {
		return fmt.Errorf("kubernetes target: listing deployments of %s: %w", id, err)
	}
	for _, o := range deps.Items {
		if err := d.client.AppsV1().Deployments(ns).Delete(ctx, o.Name, del); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("kubernetes target: deleting deployment %s/%s: %w", ns, o.Name, err)
		}
	}
	svcs, err := d.client.CoreV1().Services(ns).List(ctx, lo)
	if err != nil {
		return fmt.Errorf("kubernetes target: listing services of %s: %w", id, err)
	}
	for _, o := range svcs.Items {
		if err := d.client.CoreV1().Services(ns).Delete(ctx, o.Name, del); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("kubernetes target: deleting service %s/%s: %w", ns, o.Name, err)
		}
	}
	secs, err := d.client.CoreV1().Secrets(ns).List(ctx, lo)
	if err != nil {
		return fmt.Errorf("kubernetes target: listing secrets of %s: %w", id, err)
	}
	for _, o := range secs.Items {
		if err := d.client.CoreV1().Secrets(ns).Delete(ctx, o.Name, del); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("kubernetes target: deleting secret %s/%s: %w", ns, o.Name, err)
		}
	}
	// Wait on the watch for the Deployment and its pods to disappear.
	for {
		ch := d.changes()
		ds, _ := d.deps.Deployments(ns).List(sel)
		ps, _ := d.pods.Pods(ns).List(sel)
		if len(ds) == 0 && len(ps) == 0 {
			// ReplicaSets are removed by the garbage collector before
			// a foreground-deleted Deployment disappears.
			return nil
		}
		select {
		case <-ch:
		case <-time.After(5 * time.Second): // resync guard, not a poll loop
		case <-ctx.Done():
			return fmt.Errorf("kubernetes target: waiting for %d deployment(s) and %d pod(s) of %s to go: %w", len(ds), len(ps), id, ctx.Err())
		}
	}
}

// selector matches every object of deployment id.
func (d *Driver) selector(id string) labels.Selector {
	return labels.SelectorFromSet(labels.Set{LabelManagedBy: ManagedBy, LabelDeployment: LabelValue(id)})
}

// Close implements compute.Driver. On Kubernetes it only stops the
// driver's watches: replicas keep serving while the control plane is down
// (use Delete to remove a deployment).
func (d *Driver) Close(ctx context.Context) error {
	d.mu.Lock()
	d.pending = nil
	d.mu.Unlock()
	if d.stop != nil {
		d.stop()
		d.factory.Shutdown()
	}
	return nil
}

// Namespace returns the target namespace.
func (d *Driver) Namespace() string { return d.cfg.Namespace }

// Client returns the driver's clientset (for the control plane's other
// in-cluster pieces).
func (d *Driver) Client() k8s.Interface { return d.client }

// deployment returns the Deployment of id from the watch cache, falling
// back to the API server right after Apply (before the watch delivered it).
func (d *Driver) deployment(ctx context.Context, id string) (*appsv1.Deployment, error) {
	name := ObjectName(id)
	dep, err := d.deps.Deployments(d.cfg.Namespace).Get(name)
	if err == nil {
		return dep, nil
	}
	dep, err = d.client.AppsV1().Deployments(d.cfg.Namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, modelship.Errorf(modelship.ENOTFOUND, "deployment %q not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes target: reading deployment %s: %w", name, err)
	}
	return dep, nil
}

var errUnknownResource = errors.New("unknown resource")
