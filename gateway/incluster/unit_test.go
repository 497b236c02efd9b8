package incluster

import (
	"reflect"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/compute/kubernetes"
)

func ptr[T any](v T) *T { return &v }

// slice returns an EndpointSlice of Service svc.
func slice(name, svc string, ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			discoveryv1.LabelServiceName: svc, kubernetes.LabelManagedBy: kubernetes.ManagedBy}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       ports,
		Endpoints:   eps,
	}
}

func endpoint(ready *bool, terminating *bool, pod string, addrs ...string) discoveryv1.Endpoint {
	ep := discoveryv1.Endpoint{Addresses: addrs, Conditions: discoveryv1.EndpointConditions{Ready: ready, Terminating: terminating}}
	if pod != "" {
		ep.TargetRef = &corev1.ObjectReference{Kind: "Pod", Name: pod}
	}
	return ep
}

func TestReplicas(t *testing.T) {
	http := []discoveryv1.EndpointPort{{Name: ptr("metrics"), Port: ptr(int32(9000))}, {Name: ptr("http"), Port: ptr(int32(5001))}}
	unnamed := []discoveryv1.EndpointPort{{Port: nil}, {Name: ptr("grpc"), Port: ptr(int32(7000))}}
	got := replicas([]*discoveryv1.EndpointSlice{
		slice("a", "svc", http,
			endpoint(nil, nil, "pod-b", "10.0.0.2"),                // nil ready = ready
			endpoint(ptr(false), nil, "pod-a", "10.0.0.1"),         // not ready
			endpoint(ptr(false), ptr(true), "pod-old", "10.0.0.9"), // terminating: skipped
			endpoint(ptr(true), nil, "", "10.0.0.3"),               // no targetRef: ID = address
			endpoint(ptr(true), ptr(false), "pod-c", "10.0.0.4")),  // terminating=false counts
		slice("b", "svc", http, endpoint(ptr(true), nil, "pod-a", "10.0.0.1")), // duplicate, ready here
		slice("c", "svc", unnamed, endpoint(ptr(true), nil, "pod-d", "10.0.0.5")),
		slice("d", "svc", nil, endpoint(ptr(true), nil, "pod-e", "10.0.0.6")), // no port: skipped
		{AddressType: discoveryv1.AddressTypeIPv6, Ports: http, Endpoints: []discoveryv1.Endpoint{endpoint(ptr(true), nil, "pod-6", "fd00::1")}},
	})
	want := []modelship.ReplicaEndpoint{
		{ID: "10.0.0.3", URL: "http://10.0.0.3:5001", Ready: true},
		{ID: "pod-6", URL: "http://[fd00::1]:5001", Ready: true},
		{ID: "pod-a", URL: "http://10.0.0.1:5001", Ready: true},
		{ID: "pod-b", URL: "http://10.0.0.2:5001", Ready: true},
		{ID: "pod-c", URL: "http://10.0.0.4:5001", Ready: true},
		{ID: "pod-d", URL: "http://10.0.0.5:7000", Ready: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("replicas:\n got %+v\nwant %+v", got, want)
	}
}

func TestBuildTable(t *testing.T) {
	base := &modelship.RouteTable{Generation: 7, TokenPublicKeys: [][]byte{make([]byte, 32)}, Routes: []modelship.Route{
		{Kind: modelship.RouteService, Workspace: "ws", Name: "svc", Auth: modelship.AuthKey, KeyHashes: []string{"ab"},
			Versions: []modelship.RouteVersion{{Name: "svc", Deployment: "ws/svc", TrafficPercent: 100, IsDefault: true}}},
		{Kind: modelship.RouteEndpoint, Workspace: "ws", Name: "ep", Versions: []modelship.RouteVersion{
			{Name: "v1", Deployment: "ws/ep.v1", TrafficPercent: 50, IsDefault: true},
			{Name: "v2", Deployment: "ws/ep.v2", TrafficPercent: 30},
			{Name: "v3", Deployment: "ws/ep.v3", TrafficPercent: 20},
		}},
		{Kind: modelship.RouteService, Workspace: "ws", Name: "static", Versions: []modelship.RouteVersion{
			{Name: "static", TrafficPercent: 100, Replicas: []modelship.ReplicaEndpoint{{ID: "x", URL: "http://127.0.0.1:1", Ready: true}}}}},
	}}
	port := []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(5001))}}
	sl := []*discoveryv1.EndpointSlice{
		slice("s1", kubernetes.ObjectName("ws/svc"), port, endpoint(nil, nil, "p1", "10.0.0.1")),
		slice("s2", kubernetes.ObjectName("ws/ep.v1"), port, endpoint(nil, nil, "p2", "10.0.0.2")),
		slice("s3", kubernetes.ObjectName("ws/ep.v2"), port, endpoint(ptr(false), nil, "p3", "10.0.0.3")),
		slice("s4", kubernetes.ObjectName("ws/ep.v3"), port, endpoint(ptr(true), nil, "p4", "10.0.0.4")),
		slice("other", "not-a-route", port, endpoint(nil, nil, "p9", "10.0.0.9")),
	}
	got := buildTable(base, sl)
	if got.Generation != 7 || len(got.Routes) != 3 || len(got.TokenPublicKeys) != 1 {
		t.Fatalf("table %+v", got)
	}
	if r := got.Routes[0].Versions[0].Replicas; len(r) != 1 || r[0] != (modelship.ReplicaEndpoint{ID: "p1", URL: "http://10.0.0.1:5001", Ready: true}) {
		t.Errorf("svc replicas %+v", r)
	}
	ep := got.Routes[1].Versions
	// v2 has no ready replica: its 30 % go to the default v1.
	if ep[0].TrafficPercent != 80 || ep[1].TrafficPercent != 0 || ep[2].TrafficPercent != 20 {
		t.Errorf("traffic v1 %v v2 %v v3 %v, want 80 0 20", ep[0].TrafficPercent, ep[1].TrafficPercent, ep[2].TrafficPercent)
	}
	if len(ep[1].Replicas) != 1 || ep[1].Replicas[0].Ready {
		t.Errorf("v2 replicas %+v", ep[1].Replicas)
	}
	if r := got.Routes[2].Versions[0].Replicas; len(r) != 1 || r[0].URL != "http://127.0.0.1:1" {
		t.Errorf("a version without a deployment keeps the Secret's replicas: %+v", r)
	}
	// The base is not modified.
	if base.Routes[1].Versions[1].TrafficPercent != 30 || base.Routes[0].Versions[0].Replicas != nil {
		t.Errorf("buildTable modified its base: %+v", base.Routes)
	}
	// No slices: every version without a deployment has an empty, non-nil list.
	empty := buildTable(base, nil)
	if r := empty.Routes[0].Versions[0].Replicas; r == nil || len(r) != 0 {
		t.Errorf("replicas without slices: %#v", r)
	}
}

// TestInstalledRoleCoversPolicyRules: the Role the Kubernetes driver
// installs for the front end grants everything the front end uses.
func TestInstalledRoleCoversPolicyRules(t *testing.T) {
	grants := func(group, resource, name, verb string) bool {
		for _, r := range kubernetes.FrontEndRules {
			if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb) &&
				(len(r.ResourceNames) == 0 || slices.Contains(r.ResourceNames, name)) {
				return true
			}
		}
		return false
	}
	for _, r := range PolicyRules() {
		names := r.ResourceNames
		if len(names) == 0 {
			names = []string{""}
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, n := range names {
					for _, v := range r.Verbs {
						if !grants(g, res, n, v) {
							t.Errorf("kubernetes.FrontEndRules do not grant %s %s.%s %q", v, res, g, n)
						}
					}
				}
			}
		}
	}
}
