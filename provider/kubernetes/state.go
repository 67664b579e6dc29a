package kubernetes

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LabelIncarnation tells one Deployment of an instance from the one it
// replaced: Pods of the old one may linger while the garbage collector
// removes them, and must not speak for the new one.
const LabelIncarnation = "phoenix.phoenixsre.io/incarnation"

// found is what the API server holds of one instance. Objects being
// deleted are left out, except that a terminating claim still counts for
// the next claim's generation.
type found struct {
	id       string
	dep      *appsv1.Deployment
	svc      *corev1.Service
	claim    *corev1.PersistentVolumeClaim
	claimGen int
	// claimGone is the claim the Deployment mounts when it no longer exists.
	claimGone string
	pods      []corev1.Pod
}

func (f found) component() string {
	for _, m := range []*metav1.ObjectMeta{depMeta(f.dep), svcMeta(f.svc), claimMeta(f.claim)} {
		if m != nil && m.Annotations[AnnotationComponent] != "" {
			return m.Annotations[AnnotationComponent]
		}
	}
	return ""
}

func depMeta(d *appsv1.Deployment) *metav1.ObjectMeta {
	if d == nil {
		return nil
	}
	return &d.ObjectMeta
}

func svcMeta(s *corev1.Service) *metav1.ObjectMeta {
	if s == nil {
		return nil
	}
	return &s.ObjectMeta
}

func claimMeta(c *corev1.PersistentVolumeClaim) *metav1.ObjectMeta {
	if c == nil {
		return nil
	}
	return &c.ObjectMeta
}

// lookup lists the instance's objects by label. An object under the
// instance's label whose annotation names another ID is refused rather than
// adopted: it would be a hash collision or someone else's object.
func (p *Provider) lookup(ctx context.Context, id string) (found, error) {
	f := found{id: id}
	ns := p.cfg.Namespace
	list := metav1.ListOptions{LabelSelector: p.selector(objectName(p.cfg.Owner, id))}
	own := func(m metav1.ObjectMeta) error {
		if got := m.Annotations[AnnotationID]; got != id {
			return fmt.Errorf("%s carries instance id %q, not %q: not adopting it", m.Name, got, id)
		}
		return nil
	}
	deps, err := p.cli.AppsV1().Deployments(ns).List(ctx, list)
	if err != nil {
		return f, fmt.Errorf("list deployments: %w", apiErr(err))
	}
	for i := range deps.Items {
		if d := &deps.Items[i]; d.DeletionTimestamp == nil {
			if err := own(d.ObjectMeta); err != nil {
				return f, err
			}
			f.dep = d
		}
	}
	svcs, err := p.cli.CoreV1().Services(ns).List(ctx, list)
	if err != nil {
		return f, fmt.Errorf("list services: %w", apiErr(err))
	}
	for i := range svcs.Items {
		if s := &svcs.Items[i]; s.DeletionTimestamp == nil {
			if err := own(s.ObjectMeta); err != nil {
				return f, err
			}
			f.svc = s
		}
	}
	if err := p.lookupClaim(ctx, &f, list, own); err != nil {
		return f, err
	}
	if f.dep != nil {
		pods, err := p.cli.CoreV1().Pods(ns).List(ctx, list)
		if err != nil {
			return f, fmt.Errorf("list pods: %w", apiErr(err))
		}
		inc := f.dep.Spec.Template.Labels[LabelIncarnation]
		for _, pod := range pods.Items {
			if pod.DeletionTimestamp == nil && pod.Labels[LabelIncarnation] == inc {
				f.pods = append(f.pods, pod)
			}
		}
	}
	return f, nil
}

// lookupClaim finds the live claim (the one the Deployment mounts, if
// any) and the highest generation of any claim, terminating or not.
func (p *Provider) lookupClaim(ctx context.Context, f *found, list metav1.ListOptions, own func(metav1.ObjectMeta) error) error {
	pvcs, err := p.cli.CoreV1().PersistentVolumeClaims(p.cfg.Namespace).List(ctx, list)
	if err != nil {
		return fmt.Errorf("list claims: %w", apiErr(err))
	}
	want := ""
	if f.dep != nil {
		want = claimOf(f.dep)
	}
	for i := range pvcs.Items {
		c := &pvcs.Items[i]
		if err := own(c.ObjectMeta); err != nil {
			return err
		}
		gen, _ := strconv.Atoi(c.Annotations[annotationClaimGen])
		f.claimGen = max(f.claimGen, gen)
		if c.DeletionTimestamp != nil {
			continue
		}
		if f.claim == nil || c.Name == want || (f.claim.Name != want && gen > genOf(f.claim)) {
			f.claim = c
		}
	}
	if want != "" && (f.claim == nil || f.claim.Name != want) {
		f.claimGone = want
	}
	return nil
}

func genOf(c *corev1.PersistentVolumeClaim) int {
	n, _ := strconv.Atoi(c.Annotations[annotationClaimGen])
	return n
}

// waitingFailure is whether a container waiting for this reason will not
// get out of it by waiting.
func waitingFailure(reason string) bool {
	switch reason {
	case "CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "InvalidImageName",
		"CreateContainerConfigError", "CreateContainerError", "RunContainerError":
		return true
	}
	return false
}

// failure says why the instance is not running, "" while it runs or is
// still starting. It reads what the controllers, the scheduler and the
// kubelet write: the Deployment's conditions, and its Pods' phase,
// scheduling condition and container states.
func (f found) failure() string {
	if f.dep == nil {
		if f.svc != nil || f.claim != nil {
			return "its service or claim remain (deleted outside Phoenix?)"
		}
		return ""
	}
	if f.claimGone != "" {
		return "its claim " + f.claimGone + " is gone"
	}
	for _, c := range f.dep.Status.Conditions {
		switch {
		case c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse:
			return fmt.Sprintf("not progressing (%s): %s", c.Reason, c.Message)
		case c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue:
			return fmt.Sprintf("cannot create its pod (%s): %s", c.Reason, c.Message)
		}
	}
	var why []string
	for _, pod := range f.pods {
		if w := podFailure(pod); w != "" {
			why = append(why, "pod "+pod.Name+" "+w)
		}
	}
	// One healthy Pod is enough: with one replica, a failed Pod next to a
	// running one is the old one on its way out.
	if len(why) == 0 || len(why) < len(f.pods) {
		return ""
	}
	return strings.Join(why, "; ")
}

func podFailure(pod corev1.Pod) string {
	if pod.Status.Phase == corev1.PodFailed {
		return fmt.Sprintf("failed (%s): %s", pod.Status.Reason, pod.Status.Message)
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return "unschedulable: " + c.Message
		}
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && waitingFailure(w.Reason) {
			return fmt.Sprintf("container %s %s: %s", cs.Name, w.Reason, w.Message)
		}
	}
	return ""
}
