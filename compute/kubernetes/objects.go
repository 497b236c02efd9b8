package kubernetes

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/modelship/modelship/compute"
)

// Labels and annotations modelship puts on every object it creates.
const (
	// LabelManagedBy is "modelship" on everything modelship owns.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "modelship"
	// LabelName is the app name of model-server pods.
	LabelName = "app.kubernetes.io/name"
	// LabelDeployment identifies one deployment: "<workspace>.<name>" (an
	// endpoint version: "<workspace>.<endpoint>.<version>"), or a hash
	// when that is not a valid label value.
	LabelDeployment = "modelship.io/deployment"
	// AnnotationID holds the compute.Spec ID ("<workspace>/<name>...").
	AnnotationID = "modelship.io/id"
	// AnnotationRevision holds the compute.Spec revision (on the
	// Deployment and its pod template, so a new revision rolls the pods).
	AnnotationRevision = "modelship.io/revision"
)

// ContainerName is the model-server container of a pod.
const ContainerName = "model"

// ServicePort is the port of every deployment's Service.
const ServicePort = 5001

// Probe paths served by `modelship serve-model`.
const (
	LivenessPath  = "/"
	ReadinessPath = "/v2/health/ready"
)

// defaultProgressDeadline is the rollout deadline when the spec gives no
// StartTimeout.
const defaultProgressDeadline = 10 * time.Minute

var (
	dnsUnsafe  = regexp.MustCompile(`[^a-z0-9-]+`)
	labelValid = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
)

// ObjectName returns the name of the Deployment and Service of deployment
// id: "ms-<workspace>-<name>[-<version>]", a valid DNS-1035 label of at most
// 63 characters (longer names are cut and suffixed with a hash of id).
func ObjectName(id string) string {
	raw := "ms-" + strings.ReplaceAll(id, "/", "-")
	name := "ms-" + strings.Trim(dnsUnsafe.ReplaceAllString(strings.ToLower(strings.ReplaceAll(id, "/", "-")), "-"), "-")
	if len(name) <= 63 && name == raw {
		return name
	}
	h := shortHash(id)
	if len(name) > 63-len(h)-1 {
		name = strings.TrimRight(name[:63-len(h)-1], "-")
	}
	return name + "-" + h
}

// LabelValue returns the LabelDeployment value of deployment id:
// "<workspace>.<name>[.<version>]", or "h-<hash>" when that is not a valid
// label value (over 63 characters).
func LabelValue(id string) string {
	v := strings.ReplaceAll(id, "/", ".")
	if len(v) <= 63 && labelValid.MatchString(v) {
		return v
	}
	return "h-" + shortHash(id)
}

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:10]
}

// objectOptions are the target settings that shape the objects.
type objectOptions struct {
	namespace  string
	image      string
	pullPolicy corev1.PullPolicy
	command    []string
	port       int32
}

// objectLabels returns the labels of every object of deployment id.
func objectLabels(id string) map[string]string {
	return map[string]string{
		LabelManagedBy:  ManagedBy,
		LabelName:       "modelship-model",
		LabelDeployment: LabelValue(id),
	}
}

// buildDeployment returns the Deployment running spec.
func buildDeployment(spec *compute.Spec, o objectOptions) *appsv1.Deployment {
	name := ObjectName(spec.ID)
	lbl := objectLabels(spec.ID)
	ann := map[string]string{AnnotationID: spec.ID, AnnotationRevision: spec.Revision}
	// A new Apply clears the reason of an earlier rollback.
	depAnn := map[string]string{AnnotationID: spec.ID, AnnotationRevision: spec.Revision, AnnotationRolloutError: ""}
	replicas := int32(spec.Replicas)
	maxUnavailable, maxSurge := intstr.FromInt32(0), intstr.FromInt32(1)
	deadline := spec.StartTimeout
	if deadline <= 0 {
		deadline = defaultProgressDeadline
	}
	history := int32(3)
	grace := int64(30)
	noToken := false
	noLinks := false
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: o.namespace, Labels: lbl, Annotations: depAnn},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{LabelDeployment: lbl[LabelDeployment]}},
			Strategy: appsv1.DeploymentStrategy{
				Type:          appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: &maxUnavailable, MaxSurge: &maxSurge},
			},
			ProgressDeadlineSeconds: ptr(int32(math.Ceil(deadline.Seconds()))),
			RevisionHistoryLimit:    &history,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: lbl, Annotations: ann},
				Spec: corev1.PodSpec{
					Containers:                    []corev1.Container{buildContainer(spec, o)},
					TerminationGracePeriodSeconds: &grace,
					AutomountServiceAccountToken:  &noToken,
					EnableServiceLinks:            &noLinks,
				},
			},
		},
	}
}

func ptr[T any](v T) *T { return &v }

// buildContainer returns the model-server container of spec.
func buildContainer(spec *compute.Spec, o objectOptions) corev1.Container {
	keys := make([]string, 0, len(spec.Env))
	for k := range spec.Env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var env []corev1.EnvVar
	for _, k := range keys {
		switch k {
		case "MODELSHIP_HOST", "MODELSHIP_PORT", "MODELSHIP_REPLICA_ID":
			continue // set below: the pod owns its address and identity
		}
		env = append(env, corev1.EnvVar{Name: k, Value: spec.Env[k]})
	}
	env = append(env,
		corev1.EnvVar{Name: "MODELSHIP_HOST", Value: "0.0.0.0"},
		corev1.EnvVar{Name: "MODELSHIP_PORT", Value: fmt.Sprint(o.port)},
		corev1.EnvVar{Name: "MODELSHIP_REPLICA_ID", ValueFrom: &corev1.EnvVarSource{
			FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"},
		}},
	)
	image := o.image
	if spec.Image != "" {
		image = spec.Image
	}
	var envFrom []corev1.EnvFromSource
	if len(spec.SecretEnv) > 0 {
		envFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: ObjectName(spec.ID)}}}}
	}
	c := corev1.Container{
		Name:            ContainerName,
		Image:           image,
		ImagePullPolicy: o.pullPolicy,
		Command:         append(slices.Clone(o.command), "serve-model"),
		Env:             env,
		EnvFrom:         envFrom,
		Ports:           []corev1.ContainerPort{{Name: "http", ContainerPort: o.port, Protocol: corev1.ProtocolTCP}},
		Resources:       buildResources(spec),
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: ReadinessPath, Port: intstr.FromString("http")}},
			PeriodSeconds:    1,
			TimeoutSeconds:   1,
			SuccessThreshold: 1,
			FailureThreshold: 3,
		},
	}
	if p := spec.Liveness; p != (compute.Probe{}) {
		c.LivenessProbe = &corev1.Probe{
			ProbeHandler:        corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: LivenessPath, Port: intstr.FromString("http")}},
			InitialDelaySeconds: seconds(p.InitialDelay, 0),
			PeriodSeconds:       seconds(p.Period, 10),
			TimeoutSeconds:      seconds(p.Timeout, 1),
			// Kubernetes requires 1 for liveness probes.
			SuccessThreshold: 1,
			FailureThreshold: max(int32(p.FailureThreshold), 1),
		}
	}
	return c
}

// seconds converts d to whole seconds (rounded up), def when d is 0.
func seconds(d time.Duration, def int32) int32 {
	if d <= 0 {
		return def
	}
	return int32(math.Ceil(d.Seconds()))
}

// buildResources maps the spec's resources: CPU in millicores, memory in
// MiB (1 GB = 1024 MiB, as Azure's memoryInGB), GPUs as nvidia.com/gpu
// (request = limit, as Kubernetes requires for extended resources).
func buildResources(spec *compute.Spec) corev1.ResourceRequirements {
	r := corev1.ResourceRequirements{Requests: corev1.ResourceList{}}
	if spec.CPU > 0 {
		r.Requests[corev1.ResourceCPU] = *resource.NewMilliQuantity(int64(math.Round(spec.CPU*1000)), resource.DecimalSI)
	}
	if spec.MemoryGB > 0 {
		r.Requests[corev1.ResourceMemory] = mib(spec.MemoryGB)
	}
	if spec.MemoryLimitGB > 0 || spec.GPUs > 0 {
		r.Limits = corev1.ResourceList{}
	}
	if spec.MemoryLimitGB > 0 {
		r.Limits[corev1.ResourceMemory] = mib(spec.MemoryLimitGB)
	}
	if spec.GPUs > 0 {
		g := *resource.NewQuantity(int64(spec.GPUs), resource.DecimalSI)
		r.Requests[ResourceGPU], r.Limits[ResourceGPU] = g, g
	}
	if len(r.Requests) == 0 {
		r.Requests = nil
	}
	return r
}

// ResourceGPU is the extended resource of NVIDIA's device plugin.
const ResourceGPU corev1.ResourceName = "nvidia.com/gpu"

func mib(gb float64) resource.Quantity {
	return *resource.NewQuantity(int64(math.Round(gb*1024))*1024*1024, resource.BinarySI)
}

// buildService returns the ClusterIP Service in front of spec's pods.
func buildService(spec *compute.Spec, o objectOptions) *corev1.Service {
	lbl := objectLabels(spec.ID)
	return &corev1.Service{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{
			Name: ObjectName(spec.ID), Namespace: o.namespace, Labels: lbl,
			Annotations: map[string]string{AnnotationID: spec.ID},
		},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: map[string]string{LabelDeployment: lbl[LabelDeployment]},
			Ports: []corev1.ServicePort{{
				Name: "http", Port: ServicePort, Protocol: corev1.ProtocolTCP,
				TargetPort: intstr.FromString("http"),
			}},
		},
	}
}

// buildSecret returns the Secret holding spec's SecretEnv (nil when it has
// none). Pods read it at start (envFrom), so a new value reaches new pods
// without rolling the running ones.
func buildSecret(spec *compute.Spec, o objectOptions) *corev1.Secret {
	if len(spec.SecretEnv) == 0 {
		return nil
	}
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: ObjectName(spec.ID), Namespace: o.namespace, Labels: objectLabels(spec.ID), Annotations: map[string]string{AnnotationID: spec.ID}},
		Type:       corev1.SecretTypeOpaque,
		StringData: maps.Clone(spec.SecretEnv),
	}
}
