package kubernetes

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/provider"
)

// Labels and annotations Phoenix puts on its objects. The owner and
// instance labels are how a restarted daemon finds what it made; the
// annotations keep what a label value cannot hold (the ID is up to 128
// characters, a label value 63).
const (
	LabelManagedBy      = "app.kubernetes.io/managed-by"
	LabelOwner          = "phoenix.phoenixsre.io/owner"
	LabelInstance       = "phoenix.phoenixsre.io/instance"
	LabelComponent      = "phoenix.phoenixsre.io/component"
	AnnotationID        = "phoenix.phoenixsre.io/instance-id"
	AnnotationComponent = "phoenix.phoenixsre.io/component"
	AnnotationOffer     = "phoenix.phoenixsre.io/offer"
	annotationClaimGen  = "phoenix.phoenixsre.io/claim-generation"
	managedBy           = "phoenix"
)

// The node labels offers are grouped by.
const (
	LabelZone         = "topology.kubernetes.io/zone"
	LabelInstanceType = "node.kubernetes.io/instance-type"
)

const containerName = "replica"

// objectName is the Deployment's and Service's name for an instance: "phx-",
// a readable part of the ID, and a hash of owner and ID, so that it is a
// valid DNS label (a Service name) whatever the ID, and differs between
// owners sharing a namespace.
func objectName(owner, id string) string {
	sum := sha256.Sum256([]byte(owner + "\x00" + id))
	hash := hex.EncodeToString(sum[:])[:10]
	slug := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '-'
	}, id)
	const room = validation.DNS1035LabelMaxLength - len("phx-") - len("-") - 10
	if len(slug) > room {
		slug = slug[:room]
	}
	slug = strings.Trim(slug, "-")
	if slug == "" {
		return "phx-" + hash
	}
	return "phx-" + slug + "-" + hash
}

// claimName is the claim of one generation of an instance. A released
// claim may stay Terminating for a while (its protection finalizer waits
// for the Pod to go), so the next one gets a new name.
func claimName(base string, gen int) string { return base + "-data-" + strconv.Itoa(gen) }

// formatOfferID is "zone/instance-type", "-" standing for a node without
// the label: label values never are "-", so the form is unambiguous.
func formatOfferID(zone, itype string) string {
	if zone == "" {
		zone = "-"
	}
	if itype == "" {
		itype = "-"
	}
	return zone + "/" + itype
}

// parseOfferID reverses formatOfferID, refusing what it cannot have made.
func parseOfferID(id string) (zone, itype string, err error) {
	zone, itype, ok := strings.Cut(id, "/")
	if !ok {
		return "", "", fmt.Errorf("offer %q: want zone/instance-type", id)
	}
	for _, part := range []*string{&zone, &itype} {
		switch {
		case *part == "-":
			*part = ""
		case *part == "" || len(validation.IsValidLabelValue(*part)) > 0:
			return "", "", fmt.Errorf("offer %q: %q is not a label value", id, *part)
		}
	}
	return zone, itype, nil
}

// selector picks one instance's objects.
func (p *Provider) selector(name string) string {
	return LabelManagedBy + "=" + managedBy + "," + LabelOwner + "=" + p.cfg.Owner + "," + LabelInstance + "=" + name
}

// ownerSelector picks all of this owner's objects.
func (p *Provider) ownerSelector() string {
	return LabelManagedBy + "=" + managedBy + "," + LabelOwner + "=" + p.cfg.Owner
}

// meta is an object's metadata: named name, labelled as instance base's.
func (p *Provider) meta(base, name string, spec provider.Spec) metav1.ObjectMeta {
	labels := map[string]string{LabelManagedBy: managedBy, LabelOwner: p.cfg.Owner, LabelInstance: base}
	if len(validation.IsValidLabelValue(string(spec.Component))) == 0 && spec.Component != "" {
		labels[LabelComponent] = string(spec.Component)
	}
	return metav1.ObjectMeta{Name: name, Namespace: p.cfg.Namespace, Labels: labels,
		Annotations: map[string]string{AnnotationID: spec.ID, AnnotationComponent: string(spec.Component)}}
}

// requests is what the instance asks the scheduler for: the spec's
// resources, the slot's where the spec gives none.
func (p *Provider) requests(r phoenix.Resources) phoenix.Resources {
	if r.MilliCPU <= 0 {
		r.MilliCPU = p.cfg.Slot.MilliCPU
	}
	if r.MemoryBytes <= 0 {
		r.MemoryBytes = p.cfg.Slot.MemoryBytes
	}
	return r
}

func (p *Provider) claim(name string, gen int, spec provider.Spec) *corev1.PersistentVolumeClaim {
	m := p.meta(name, claimName(name, gen), spec)
	m.Annotations[annotationClaimGen] = strconv.Itoa(gen)
	c := &corev1.PersistentVolumeClaim{ObjectMeta: m, Spec: corev1.PersistentVolumeClaimSpec{
		AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{
			corev1.ResourceStorage: *resource.NewQuantity(roundMiB(spec.Resources.DiskBytes), resource.BinarySI)}},
	}}
	if p.cfg.StorageClass != "" {
		c.Spec.StorageClassName = &p.cfg.StorageClass
	}
	return c
}

// roundMiB rounds a size up to a whole MiB, as storage is sold.
func roundMiB(b int64) int64 { return (b + 1<<20 - 1) &^ (1<<20 - 1) }

func (p *Provider) service(name string, spec provider.Spec) *corev1.Service {
	return &corev1.Service{ObjectMeta: p.meta(name, name, spec), Spec: corev1.ServiceSpec{
		Type:     p.cfg.ServiceType,
		Selector: map[string]string{LabelOwner: p.cfg.Owner, LabelInstance: name},
		Ports: []corev1.ServicePort{{Name: "http", Port: p.cfg.Port, TargetPort: intstr.FromInt32(p.cfg.Port),
			Protocol: corev1.ProtocolTCP}},
	}}
}

// deployment is the instance's workload. Memory is limited to the request
// (a replica that outgrows its requirement should fail where it is seen,
// not starve its node); CPU is not limited, because throttling shows as
// latency, which is what the replica is there to avoid.
func (p *Provider) deployment(name, claim, incarnation string, spec provider.Spec, zone, itype string) *appsv1.Deployment {
	port := strconv.Itoa(int(p.cfg.Port))
	fill := strings.NewReplacer("{addr}", "0.0.0.0:"+port, "{port}", port, "{data_dir}", p.cfg.DataPath).Replace
	cmd := make([]string, len(spec.Command))
	for i, a := range spec.Command {
		cmd[i] = fill(a)
	}
	env := make([]corev1.EnvVar, 0, len(spec.Env))
	for k, v := range spec.Env {
		env = append(env, corev1.EnvVar{Name: k, Value: fill(v)})
	}
	sort.Slice(env, func(i, j int) bool { return env[i].Name < env[j].Name })
	req := p.requests(spec.Resources)
	vol := corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
	if claim != "" {
		vol.VolumeSource = corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}
	}
	var nodeSel map[string]string
	if zone != "" || itype != "" {
		nodeSel = map[string]string{}
		if zone != "" {
			nodeSel[LabelZone] = zone
		}
		if itype != "" {
			nodeSel[LabelInstanceType] = itype
		}
	}
	m := p.meta(name, name, spec)
	if spec.Offer != "" {
		m.Annotations[AnnotationOffer] = spec.Offer
	}
	one := int32(1)
	podLabels := map[string]string{LabelManagedBy: managedBy, LabelOwner: p.cfg.Owner, LabelInstance: name,
		LabelIncarnation: incarnation}
	return &appsv1.Deployment{ObjectMeta: m, Spec: appsv1.DeploymentSpec{
		Replicas: &one,
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{LabelOwner: p.cfg.Owner, LabelInstance: name}},
		// Recreate: a ReadWriteOnce claim cannot be mounted by the new Pod
		// while the old one holds it.
		Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
		Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: podLabels, Annotations: map[string]string{AnnotationID: spec.ID}},
			Spec: corev1.PodSpec{
				NodeSelector: nodeSel,
				Containers: []corev1.Container{{
					Name: containerName, Image: p.cfg.Image, ImagePullPolicy: p.cfg.ImagePullPolicy,
					Command: cmd, Env: env,
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: p.cfg.Port, Protocol: corev1.ProtocolTCP}},
					Resources: corev1.ResourceRequirements{
						Requests: corev1.ResourceList{
							corev1.ResourceCPU:    *resource.NewMilliQuantity(req.MilliCPU, resource.DecimalSI),
							corev1.ResourceMemory: *resource.NewQuantity(req.MemoryBytes, resource.BinarySI)},
						Limits: corev1.ResourceList{corev1.ResourceMemory: *resource.NewQuantity(req.MemoryBytes, resource.BinarySI)},
					},
					VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: p.cfg.DataPath}},
				}},
				Volumes: []corev1.Volume{vol},
			},
		},
	}}
}

// claimOf is the claim a Deployment mounts, "" if none.
func claimOf(d *appsv1.Deployment) string {
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			return v.PersistentVolumeClaim.ClaimName
		}
	}
	return ""
}

// requestsOf is what a Deployment's Pod asks for.
func requestsOf(d *appsv1.Deployment) phoenix.Resources {
	var r phoenix.Resources
	for _, c := range d.Spec.Template.Spec.Containers {
		r.MilliCPU += c.Resources.Requests.Cpu().MilliValue()
		r.MemoryBytes += c.Resources.Requests.Memory().Value()
	}
	return r
}
