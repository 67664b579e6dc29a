package kubernetes_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"
)

// BenchmarkProvision measures Provision against the API server (the
// objects made; with no kubelet here, never a ready Pod) beside the
// baseline of creating the same three objects with client-go directly, in
// the same run, and reports both medians and their ratio: the provider's
// overhead is its lookups and capacity reads.
//
//	KUBEBUILDER_ASSETS=... go test -run XXX -bench Provision -benchtime 50x ./provider/kubernetes/
func BenchmarkProvision(b *testing.B) {
	cli := apiServer(b)
	ns := namespace(b, cli)
	p := newProvider(b, cli, ns)
	var prov, base []time.Duration
	for i := 0; b.Loop(); i++ {
		s := spec(fmt.Sprintf("bench-%d", i))
		s.Resources.DiskBytes = 1 << 30
		start := time.Now()
		if _, err := p.Provision(context.Background(), s); err != nil {
			b.Fatal(err)
		}
		prov = append(prov, time.Since(start))
		start = time.Now()
		if err := createDirect(cli, ns, fmt.Sprintf("direct-%d", i)); err != nil {
			b.Fatal(err)
		}
		base = append(base, time.Since(start))
	}
	mp, mb := median(prov), median(base)
	b.ReportMetric(float64(mp.Microseconds())/1000, "provision-ms")
	b.ReportMetric(float64(mb.Microseconds())/1000, "direct-create-ms")
	b.ReportMetric(float64(mp)/float64(mb), "ratio")
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// createDirect makes a claim, a Service and a Deployment like the
// provider's, with no lookup or check: the floor any provider pays.
func createDirect(cli k8s.Interface, ns, name string) error {
	ctx := context.Background()
	labels := map[string]string{"app": name}
	one := int32(1)
	if _, err := cli.CoreV1().PersistentVolumeClaims(ns).Create(ctx, &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}, Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}}},
		metav1.CreateOptions{}); err != nil {
		return err
	}
	if _, err := cli.CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 8080}}}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	_, err := cli.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: appsv1.DeploymentSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "replica", Image: testImage, Command: []string{"/replica"}}},
				Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
					PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: name}}}}}}}},
		metav1.CreateOptions{})
	return err
}
