// Package incluster is the glue of the in-cluster front end: `modelship
// gateway` running as a Deployment next to the model pods of a Kubernetes
// compute target. It never talks to the control plane:
//
//   - Discovery watches the target's route table (the Secret
//     kubernetes.RoutesSecretName, key kubernetes.RoutesSecretKey, written
//     by the control plane with every version's replicas left empty) and
//     the EndpointSlices of the model Services, fills in each version's
//     replicas, and publishes the complete table to the gateway.
//   - Scaler applies the gateway autoscaler's decisions through the scale
//     subresource of the version's Deployment.
//
// Both use watches only (client-go informers on the one namespace): a
// change in the cluster reaches the gateway in one event, with no polling.
package incluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	k8s "k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/compute/kubernetes"
)

// Config configures a Discovery.
type Config struct {
	// Client talks to the API server (required).
	Client k8s.Interface
	// Namespace is the compute target's namespace (required): the route
	// Secret, the model Services and their EndpointSlices live there.
	Namespace string
	// Publish receives every new complete route table (required), e.g.
	// (*gateway.Gateway).Update. It is called from one goroutine at a
	// time, never with an unchanged table, and must not modify it.
	Publish func(*modelship.RouteTable)
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Resync is the informers' resync period; 0 (the default) means none:
	// only watch events cause work.
	Resync time.Duration
}

// Discovery builds the front end's route table from the route Secret and
// the EndpointSlices of the target namespace. Create it with NewDiscovery,
// start it with Start, stop it with Close.
type Discovery struct {
	cfg Config
	log *slog.Logger

	secretFactory informers.SharedInformerFactory
	sliceFactory  informers.SharedInformerFactory
	secrets       corelisters.SecretLister
	slices        discoverylisters.EndpointSliceLister

	kick   chan struct{} // buffered 1: a rebuild is due
	stop   context.CancelFunc
	done   chan struct{}
	synced atomic.Bool

	// Owned by the rebuild goroutine (and Start before it runs).
	secretRV  string                // resourceVersion of the last parsed Secret ("" = none)
	base      *modelship.RouteTable // last good table from the Secret
	gen       int64
	published []byte // JSON of the last published table, Generation zeroed

	current atomic.Pointer[modelship.RouteTable]
	once    sync.Once
}

// NewDiscovery checks cfg and sets up the informers; it starts nothing.
func NewDiscovery(cfg Config) (*Discovery, error) {
	if cfg.Client == nil {
		return nil, errors.New("incluster: a Kubernetes client is required")
	}
	if cfg.Namespace == "" {
		return nil, errors.New("incluster: a namespace is required")
	}
	if cfg.Publish == nil {
		return nil, errors.New("incluster: a Publish function is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	d := &Discovery{
		cfg:  cfg,
		log:  cfg.Logger.With("namespace", cfg.Namespace),
		kick: make(chan struct{}, 1),
		done: make(chan struct{}),
		base: &modelship.RouteTable{},
	}
	d.current.Store(&modelship.RouteTable{Routes: []modelship.Route{}})
	// Two factories: list options apply to every informer of a factory,
	// and the Secret is selected by name, the slices by label.
	d.secretFactory = informers.NewSharedInformerFactoryWithOptions(cfg.Client, cfg.Resync,
		informers.WithNamespace(cfg.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", kubernetes.RoutesSecretName).String()
		}))
	d.sliceFactory = informers.NewSharedInformerFactoryWithOptions(cfg.Client, cfg.Resync,
		informers.WithNamespace(cfg.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = kubernetes.LabelManagedBy + "=" + kubernetes.ManagedBy
		}))
	secretInf := d.secretFactory.Core().V1().Secrets()
	sliceInf := d.sliceFactory.Discovery().V1().EndpointSlices()
	d.secrets, d.slices = secretInf.Lister(), sliceInf.Lister()
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { d.trigger() },
		UpdateFunc: func(any, any) { d.trigger() },
		DeleteFunc: func(any) { d.trigger() },
	}
	for _, inf := range []cache.SharedIndexInformer{secretInf.Informer(), sliceInf.Informer()} {
		if _, err := inf.AddEventHandler(handler); err != nil {
			return nil, fmt.Errorf("incluster: adding watch handler: %w", err)
		}
	}
	return d, nil
}

// trigger asks the rebuild goroutine for a new table; events arriving
// while one is being built coalesce into one more rebuild.
func (d *Discovery) trigger() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// Start starts the watches, waits until their caches are filled (or ctx
// ends), publishes the first table and returns. Later changes are
// published in the background until Close.
func (d *Discovery) Start(ctx context.Context) error {
	runCtx, stop := context.WithCancel(context.Background())
	d.stop = stop
	d.secretFactory.Start(runCtx.Done())
	d.sliceFactory.Start(runCtx.Done())
	for _, f := range []informers.SharedInformerFactory{d.secretFactory, d.sliceFactory} {
		for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
			if !ok {
				d.Close()
				return fmt.Errorf("incluster: watching %v in namespace %s did not sync: %w", typ, d.cfg.Namespace, context.Cause(ctx))
			}
		}
	}
	// The events of the initial lists are in kick; this first rebuild
	// covers them.
	d.rebuild()
	d.synced.Store(true)
	go d.loop(runCtx)
	return nil
}

func (d *Discovery) loop(ctx context.Context) {
	defer close(d.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.kick:
			d.rebuild()
		}
	}
}

// Synced reports whether Start has filled the caches and published the
// first table (the front end's readiness).
func (d *Discovery) Synced() bool { return d.synced.Load() }

// Table returns the last published table (empty before Start). The caller
// must not modify it.
func (d *Discovery) Table() *modelship.RouteTable { return d.current.Load() }

// Close stops the watches. It is idempotent.
func (d *Discovery) Close() {
	d.once.Do(func() {
		if d.stop == nil {
			close(d.done)
			return
		}
		d.stop()
		d.secretFactory.Shutdown()
		d.sliceFactory.Shutdown()
		if d.synced.Load() {
			<-d.done
		}
	})
}

// rebuild reads the Secret (when it changed) and the slices from the
// informer caches, builds the full table and publishes it when it differs
// from the last one.
func (d *Discovery) rebuild() {
	d.readSecret()
	t := buildTable(d.base, d.sliceList())
	t.Generation = 0
	b, err := json.Marshal(t)
	if err == nil && bytes.Equal(b, d.published) {
		return
	}
	d.published = b
	d.gen++
	t.Generation = d.gen
	d.current.Store(t)
	d.log.Debug("incluster: publishing route table", "generation", t.Generation, "routes", len(t.Routes))
	d.cfg.Publish(t)
}

// readSecret updates d.base from the route Secret when its
// resourceVersion changed: a missing Secret empties the table, a malformed
// one keeps the last good table.
func (d *Discovery) readSecret() {
	s, err := d.secrets.Secrets(d.cfg.Namespace).Get(kubernetes.RoutesSecretName)
	if apierrors.IsNotFound(err) {
		if d.secretRV != "-" {
			d.log.Warn("incluster: route Secret not found; serving no routes until the control plane writes it",
				"secret", kubernetes.RoutesSecretName)
			d.secretRV = "-"
			d.base = &modelship.RouteTable{}
		}
		return
	}
	if err != nil {
		d.log.Error("incluster: reading the route Secret from the cache", "err", err)
		return
	}
	if s.ResourceVersion == d.secretRV {
		return
	}
	d.secretRV = s.ResourceVersion
	t, err := parseSecret(s)
	if err != nil {
		d.log.Error("incluster: route Secret is invalid; keeping the last good route table",
			"secret", kubernetes.RoutesSecretName, "resourceVersion", s.ResourceVersion, "err", err)
		return
	}
	d.base = t
	d.log.Info("incluster: route table read", "secret", kubernetes.RoutesSecretName,
		"resourceVersion", s.ResourceVersion, "generation", t.Generation, "routes", len(t.Routes))
}

// parseSecret decodes the route table of the Secret.
func parseSecret(s *corev1.Secret) (*modelship.RouteTable, error) {
	data, ok := s.Data[kubernetes.RoutesSecretKey]
	if !ok {
		return nil, fmt.Errorf("key %q is missing", kubernetes.RoutesSecretKey)
	}
	t := &modelship.RouteTable{}
	if err := json.Unmarshal(data, t); err != nil {
		return nil, fmt.Errorf("key %q: %w", kubernetes.RoutesSecretKey, err)
	}
	return t, nil
}

func (d *Discovery) sliceList() []*discoveryv1.EndpointSlice {
	l, err := d.slices.EndpointSlices(d.cfg.Namespace).List(labels.Everything())
	if err != nil {
		d.log.Error("incluster: listing EndpointSlices from the cache", "err", err)
	}
	return l
}

// buildTable returns a deep copy of base with every version that names a
// Deployment given the replicas of its Service's slices; a version of an
// endpoint without a ready replica lends its traffic share to the default
// version (as the control plane does for local targets), so a version that
// is still starting never causes 503s.
func buildTable(base *modelship.RouteTable, sl []*discoveryv1.EndpointSlice) *modelship.RouteTable {
	bySvc := map[string][]*discoveryv1.EndpointSlice{}
	for _, s := range sl {
		if name := s.Labels[discoveryv1.LabelServiceName]; name != "" {
			bySvc[name] = append(bySvc[name], s)
		}
	}
	t := &modelship.RouteTable{
		Generation:      base.Generation,
		Routes:          make([]modelship.Route, 0, len(base.Routes)),
		TokenPublicKeys: base.TokenPublicKeys,
	}
	for _, r := range base.Routes {
		r.KeyHashes = slices.Clone(r.KeyHashes)
		r.Versions = slices.Clone(r.Versions)
		lent, def := 0.0, -1
		for i := range r.Versions {
			v := &r.Versions[i]
			v.Models = slices.Clone(v.Models)
			if v.Autoscale != nil {
				a := *v.Autoscale
				v.Autoscale = &a
			}
			if v.Deployment == "" {
				v.Replicas = slices.Clone(v.Replicas)
			} else {
				v.Replicas = replicas(bySvc[kubernetes.ObjectName(v.Deployment)])
			}
			if v.Replicas == nil {
				v.Replicas = []modelship.ReplicaEndpoint{}
			}
			if v.IsDefault && def < 0 {
				def = i
			}
			if r.Kind == modelship.RouteEndpoint && v.Deployment != "" && !v.IsDefault && !anyReady(v.Replicas) {
				lent += v.TrafficPercent
				v.TrafficPercent = 0
			}
		}
		if def >= 0 {
			r.Versions[def].TrafficPercent += lent
		}
		t.Routes = append(t.Routes, r)
	}
	return t
}

// replicas turns the slices of one Service into replica endpoints: one per
// address, terminating endpoints skipped, duplicates (an endpoint in two
// slices while the controller moves it) merged, sorted by ID and URL.
func replicas(sl []*discoveryv1.EndpointSlice) []modelship.ReplicaEndpoint {
	byURL := map[string]int{}
	var out []modelship.ReplicaEndpoint
	for _, s := range sl {
		port, ok := slicePort(s)
		if !ok {
			continue
		}
		for _, ep := range s.Endpoints {
			if ep.Conditions.Terminating != nil && *ep.Conditions.Terminating {
				continue
			}
			ready := ep.Conditions.Ready == nil || *ep.Conditions.Ready
			for _, addr := range ep.Addresses {
				u := "http://" + net.JoinHostPort(addr, strconv.Itoa(int(port)))
				if i, dup := byURL[u]; dup {
					out[i].Ready = out[i].Ready || ready
					continue
				}
				id := addr
				if ep.TargetRef != nil && ep.TargetRef.Name != "" {
					id = ep.TargetRef.Name
				}
				byURL[u] = len(out)
				out = append(out, modelship.ReplicaEndpoint{ID: id, URL: u, Ready: ready})
			}
		}
	}
	slices.SortFunc(out, func(a, b modelship.ReplicaEndpoint) int {
		if a.ID != b.ID {
			if a.ID < b.ID {
				return -1
			}
			return 1
		}
		if a.URL < b.URL {
			return -1
		}
		if a.URL > b.URL {
			return 1
		}
		return 0
	})
	return out
}

// slicePort is the slice's port named "http", else its first port with a
// number.
func slicePort(s *discoveryv1.EndpointSlice) (int32, bool) {
	for _, p := range s.Ports {
		if p.Name != nil && *p.Name == "http" && p.Port != nil {
			return *p.Port, true
		}
	}
	for _, p := range s.Ports {
		if p.Port != nil {
			return *p.Port, true
		}
	}
	return 0, false
}

func anyReady(rs []modelship.ReplicaEndpoint) bool {
	for _, r := range rs {
		if r.Ready {
			return true
		}
	}
	return false
}
