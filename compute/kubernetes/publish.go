package kubernetes

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/modelship/modelship"
)

// maxRoutesSize is the limit of a Secret's data (etcd's 1 MiB object limit).
const maxRoutesSize = 1 << 20

// publishAttempts bounds PublishRoutes' read-compare-write retries when
// other writers change the Secret concurrently.
const publishAttempts = 8

// PublishRoutes writes rt to the Secret RoutesSecretName (type Opaque,
// labelled managed-by=modelship and component=frontend), key
// RoutesSecretKey, as JSON with every version's Replicas emptied: the front
// end discovers replicas through EndpointSlices. A nil rt publishes an empty
// table.
//
// The write is skipped when the Secret already holds the same table apart
// from Generation (the control plane publishes on every replica change,
// which changes nothing here), so the front end's watch only fires for real
// changes. The comparison is with the Secret in the cluster, not with
// driver memory: it holds across control-plane restarts and several
// writers. Concurrent calls are safe: each write is conditional on the
// resourceVersion it compared against and is retried on a conflict; the
// last table to be written wins (callers serialize publishes whose order
// matters, as the controller does).
func (d *Driver) PublishRoutes(ctx context.Context, rt *modelship.RouteTable) error {
	data, err := encodeRoutes(rt)
	if err != nil {
		return err
	}
	if len(data) > maxRoutesSize {
		return modelship.Errorf(modelship.ETOOLARGE, "kubernetes target: the route table is %d bytes; a Secret holds at most %d", len(data), maxRoutesSize)
	}
	want, err := normalizedRoutes(data)
	if err != nil {
		return err
	}
	ns := d.cfg.Namespace
	secrets := d.client.CoreV1().Secrets(ns)
	for range publishAttempts {
		cur, err := secrets.Get(ctx, RoutesSecretName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = secrets.Create(ctx, routesSecret(ns, data), metav1.CreateOptions{FieldManager: FieldManager})
			if apierrors.IsAlreadyExists(err) {
				continue // another writer created it: compare with theirs
			}
			if err != nil {
				return fmt.Errorf("kubernetes target: creating secret %s/%s: %w", ns, RoutesSecretName, err)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("kubernetes target: reading secret %s/%s: %w", ns, RoutesSecretName, err)
		}
		if cur.Type != corev1.SecretTypeOpaque && cur.Type != "" {
			return modelship.Errorf(modelship.ECONFLICT, "kubernetes target: secret %s/%s has type %s, not Opaque; delete it and publish again", ns, RoutesSecretName, cur.Type)
		}
		if have, err := normalizedRoutes(cur.Data[RoutesSecretKey]); err == nil && bytes.Equal(have, want) && labelled(cur.Labels) {
			return nil
		}
		next := cur.DeepCopy()
		next.Labels = labelsWith(cur.Labels, frontEndLabels())
		next.Data = map[string][]byte{RoutesSecretKey: data}
		_, err = secrets.Update(ctx, next, metav1.UpdateOptions{FieldManager: FieldManager})
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			continue // changed or deleted since we read it
		}
		if err != nil {
			return fmt.Errorf("kubernetes target: updating secret %s/%s: %w", ns, RoutesSecretName, err)
		}
		return nil
	}
	return modelship.Errorf(modelship.ECONFLICT, "kubernetes target: secret %s/%s kept changing while publishing routes (%d attempts)", ns, RoutesSecretName, publishAttempts)
}

// routesSecret is a new routes Secret holding data.
func routesSecret(ns string, data []byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: RoutesSecretName, Namespace: ns, Labels: frontEndLabels()},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{RoutesSecretKey: data},
	}
}

// labelled reports whether l carries every front-end label.
func labelled(l map[string]string) bool {
	for k, v := range frontEndLabels() {
		if l[k] != v {
			return false
		}
	}
	return true
}

// labelsWith returns a copy of l with add set.
func labelsWith(l, add map[string]string) map[string]string {
	out := maps.Clone(l)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, add)
	return out
}

// encodeRoutes returns the JSON of a copy of rt (nil = an empty table) with
// every version's Replicas emptied (the caller's table is not changed).
func encodeRoutes(rt *modelship.RouteTable) ([]byte, error) {
	if rt == nil {
		rt = &modelship.RouteTable{}
	}
	raw, err := json.Marshal(rt)
	if err != nil {
		return nil, fmt.Errorf("kubernetes target: encoding the route table: %w", err)
	}
	var t modelship.RouteTable // a deep copy
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, fmt.Errorf("kubernetes target: copying the route table: %w", err)
	}
	stripReplicas(&t)
	return json.Marshal(&t)
}

func stripReplicas(t *modelship.RouteTable) {
	if t.Routes == nil {
		t.Routes = []modelship.Route{}
	}
	for i := range t.Routes {
		for j := range t.Routes[i].Versions {
			t.Routes[i].Versions[j].Replicas = []modelship.ReplicaEndpoint{}
		}
	}
}

// normalizedRoutes returns the table in data normalized for comparison: decoded,
// Generation 0, replicas emptied, encoded again.
func normalizedRoutes(data []byte) ([]byte, error) {
	var t modelship.RouteTable
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, fmt.Errorf("kubernetes target: decoding the route table: %w", err)
	}
	t.Generation = 0
	stripReplicas(&t)
	return json.Marshal(&t)
}
