package kubernetes_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/provider"
	"github.com/phoenixsre/phoenix/provider/kubernetes"
)

// TestObjectsCarryTheSpec: the Deployment, Service and claim say what the
// spec asked for, placeholders filled, pinned to the offer's nodes.
func TestObjectsCarryTheSpec(t *testing.T) {
	cli := apiServer(t)
	ns := namespace(t, cli)
	addNode(t, cli, node{name: ns + "-a1", zone: "zone-a", itype: "m5.large", milliCPU: 4000, memMiB: 8192})
	p := newProvider(t, cli, ns)
	s := spec("orders.a1")
	s.Resources = phoenix.Resources{MilliCPU: 250, MemoryBytes: 300 << 20, DiskBytes: 1536<<20 - 10}
	s.Offer = "zone-a/m5.large"
	inst := provision(t, p, s)

	if inst.Provider != "kubernetes" || inst.Component != "orders" || inst.State != provider.StateRunning || inst.DataDir != "/data" {
		t.Errorf("instance %+v", inst)
	}
	host, port, _ := strings.Cut(inst.Addr, ":")
	if !strings.HasSuffix(host, "."+ns+".svc.cluster.local") || port != "8080" {
		t.Errorf("Addr %q, want the Service's DNS name and port 8080", inst.Addr)
	}
	name := strings.TrimSuffix(host, "."+ns+".svc.cluster.local")
	d, err := cli.AppsV1().Deployments(ns).Get(ctx(t), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType || d.Annotations[kubernetes.AnnotationID] != s.ID {
		t.Errorf("deployment spec %+v, annotations %v", d.Spec, d.Annotations)
	}
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	if c.Image != testImage || !slices.Equal(c.Command, []string{"/replica", "--listen", "0.0.0.0:8080", "--data", "/data"}) {
		t.Errorf("container image %q command %q", c.Image, c.Command)
	}
	if len(c.Env) != 2 || c.Env[0] != (corev1.EnvVar{Name: "PORT", Value: "8080"}) || c.Env[1] != (corev1.EnvVar{Name: "SELF", Value: "0.0.0.0:8080"}) {
		t.Errorf("env %+v", c.Env)
	}
	if c.Resources.Requests.Cpu().MilliValue() != 250 || c.Resources.Requests.Memory().Value() != 300<<20 ||
		c.Resources.Limits.Memory().Value() != 300<<20 || !c.Resources.Limits.Cpu().IsZero() {
		t.Errorf("resources %+v: want 250m and 300Mi requested, memory limited to it, CPU not", c.Resources)
	}
	if pod.NodeSelector[kubernetes.LabelZone] != "zone-a" || pod.NodeSelector[kubernetes.LabelInstanceType] != "m5.large" {
		t.Errorf("node selector %v", pod.NodeSelector)
	}
	if len(pod.Volumes) != 1 || pod.Volumes[0].PersistentVolumeClaim == nil || c.VolumeMounts[0].MountPath != "/data" {
		t.Fatalf("volumes %+v mounts %+v", pod.Volumes, c.VolumeMounts)
	}
	pvc, err := cli.CoreV1().PersistentVolumeClaims(ns).Get(ctx(t), pod.Volumes[0].PersistentVolumeClaim.ClaimName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; got.Value() != 1536<<20 || pvc.Spec.AccessModes[0] != corev1.ReadWriteOnce {
		t.Errorf("claim asks %s %v, want 1536Mi ReadWriteOnce", got.String(), pvc.Spec.AccessModes)
	}
	svc, err := cli.CoreV1().Services(ns).Get(ctx(t), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range svc.Spec.Selector {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("service selector %v does not select the pod template's labels %v", svc.Spec.Selector, d.Spec.Template.Labels)
		}
	}
	if svc.Spec.Type != corev1.ServiceTypeClusterIP || svc.Spec.Ports[0].Port != 8080 || svc.Spec.ClusterIP == "" {
		t.Errorf("service %+v", svc.Spec)
	}

	// Without disk, an emptyDir: no claim is made.
	s2 := spec("stateless")
	inst2 := provision(t, p, s2)
	d2, err := cli.AppsV1().Deployments(ns).Get(ctx(t), strings.Split(inst2.Addr, ".")[0], metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v := d2.Spec.Template.Spec.Volumes[0]; v.EmptyDir == nil || d2.Spec.Template.Spec.NodeSelector != nil {
		t.Errorf("a spec without disk or offer got volume %+v, node selector %v", v, d2.Spec.Template.Spec.NodeSelector)
	}
	if got := kinds(owned(t, cli, ns)); got != "2 deployment, 2 service, 1 claim" {
		t.Errorf("objects: %s", got)
	}
}

// TestProvisionIsIdempotent: a second Provision, from this Provider, a new
// one (a restarted daemon) or several at once, returns the same instance
// and makes nothing more.
func TestProvisionIsIdempotent(t *testing.T) {
	cli := apiServer(t)
	ns := namespace(t, cli)
	p := newProvider(t, cli, ns)
	s := spec("orders-1.orders")
	s.Resources.DiskBytes = 1 << 30
	a := provision(t, p, s)
	b := provision(t, p, s)
	if a.Addr != b.Addr || a.Detail != b.Detail || a.DataDir != b.DataDir || a.State != provider.StateRunning {
		t.Fatalf("second Provision gave another instance: %+v then %+v", a, b)
	}
	// A restarted daemon: a new Provider sees and adopts it.
	p2 := newProvider(t, cli, ns)
	st, err := p2.Status(ctx(t), s.ID)
	if err != nil || st.State != provider.StateRunning || st.Detail != a.Detail {
		t.Fatalf("a new provider does not see the instance: %+v, %v", st, err)
	}
	if c := provision(t, p2, s); c.Detail != a.Detail || c.Addr != a.Addr {
		t.Fatalf("a new provider made a duplicate: %+v, first %+v", c, a)
	}
	// Racing Provisions of a new ID, from two providers (two daemons) and
	// several goroutines: one instance.
	s2 := spec("raced")
	s2.Resources.DiskBytes = 1 << 20
	var wg sync.WaitGroup
	insts := make([]provider.Instance, 6)
	errs := make([]error, 6)
	for i := range insts {
		pv := p
		if i%2 == 1 {
			pv = p2
		}
		wg.Go(func() { insts[i], errs[i] = pv.Provision(ctx(t), s2) })
	}
	wg.Wait()
	for i := range insts {
		if errs[i] != nil {
			t.Fatalf("racing Provision %d: %v", i, errs[i])
		}
		if insts[i].Detail != insts[0].Detail || insts[i].Addr != insts[0].Addr {
			t.Fatalf("racing Provisions made two instances: %+v and %+v", insts[0], insts[i])
		}
	}
	if got := kinds(owned(t, cli, ns)); got != "2 deployment, 2 service, 2 claim" {
		t.Fatalf("objects after racing: %s (%v)", got, owned(t, cli, ns))
	}
}

// TestStatusAndRelease: Release deletes what Provision made, a second
// Release is fine, and Status then says ErrNotFound; the same ID later
// starts from a new, empty claim.
func TestStatusAndRelease(t *testing.T) {
	cli := apiServer(t)
	ns := namespace(t, cli)
	p := newProvider(t, cli, ns)
	s := spec("release-me")
	s.Resources.DiskBytes = 1 << 30
	inst := provision(t, p, s)
	st, err := p.Status(ctx(t), s.ID)
	if err != nil || st.State != provider.StateRunning || st.Addr != inst.Addr {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	claimBefore := owned(t, cli, ns)
	if err := p.Release(ctx(t), s.ID); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if left := owned(t, cli, ns); len(left) != 0 {
		t.Fatalf("after Release: %v", left)
	}
	if _, err := p.Status(ctx(t), s.ID); !errors.Is(err, provider.ErrNotFound) {
		t.Fatalf("Status after Release: %v, want ErrNotFound", err)
	}
	if err := p.Release(ctx(t), s.ID); err != nil {
		t.Fatalf("second Release: %v", err)
	}
	for _, id := range []string{"never-provisioned", "../escape", ""} {
		if _, err := p.Status(ctx(t), id); !errors.Is(err, provider.ErrNotFound) {
			t.Errorf("Status(%q): %v, want ErrNotFound", id, err)
		}
	}
	// The old claim is Terminating (its protection finalizer waits for a
	// controller that does not run here); the ID gets a new claim.
	provision(t, p, s)
	after := owned(t, cli, ns)
	var claims []string
	for _, o := range append(claimBefore, after...) {
		if strings.HasPrefix(o, "claim/") {
			claims = append(claims, o)
		}
	}
	if len(claims) != 2 || claims[0] == claims[1] {
		t.Fatalf("claims before and after a Release: %v, want two different ones", claims)
	}
}

// TestCrashedInstanceIsReplaced: the Deployment deleted behind Phoenix's
// back reads as exited; Provision makes a new one and keeps the address
// and the claim (the data).
func TestCrashedInstanceIsReplaced(t *testing.T) {
	cli := apiServer(t)
	ns := namespace(t, cli)
	p := newProvider(t, cli, ns)
	s := spec("crashy")
	s.Resources.DiskBytes = 1 << 30
	inst := provision(t, p, s)
	before := owned(t, cli, ns)
	name := strings.Split(inst.Addr, ".")[0]
	if err := cli.AppsV1().Deployments(ns).Delete(ctx(t), name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err := p.Status(ctx(t), s.ID)
	if err != nil || st.State != provider.StateExited || !strings.Contains(st.Detail, "deployment gone") {
		t.Fatalf("Status after the deployment was deleted: %+v, %v", st, err)
	}
	again := provision(t, p, s)
	if again.Detail == inst.Detail || again.State != provider.StateRunning || again.Addr != inst.Addr {
		t.Fatalf("after a crash: %+v, before %+v", again, inst)
	}
	if after := owned(t, cli, ns); !slices.Equal(after, before) {
		t.Fatalf("objects before the crash %v, after %v: the claim must be kept", before, after)
	}
}

func TestBadSpecsAreRefused(t *testing.T) {
	cli := apiServer(t)
	ns := namespace(t, cli)
	p := newProvider(t, cli, ns)
	good := spec("x")
	for _, s := range []provider.Spec{
		{ID: "", Command: good.Command},
		{ID: "../escape", Command: good.Command},
		{ID: "no-command"},
		{ID: "bad-env", Command: good.Command, Env: map[string]string{"A=B": "1"}},
		{ID: "bad-offer", Command: good.Command, Offer: "zone a/m5"},
		{ID: "negative", Command: good.Command, Resources: phoenix.Resources{MilliCPU: -1}},
	} {
		if _, err := p.Provision(ctx(t), s); err == nil {
			t.Errorf("Provision(%+v) succeeded, want an error", s)
		}
	}
	if got := owned(t, cli, ns); len(got) != 0 {
		t.Fatalf("refused specs left %v", got)
	}
}

// TestStatusReadsWhatTheClusterWrites: the provider reads the statuses the
// scheduler, the kubelet and the controllers write. None of them runs
// here, so the test writes each status as they would, through the API.
func TestStatusReadsWhatTheClusterWrites(t *testing.T) {
	cli := apiServer(t)
	ns := namespace(t, cli)
	p := newProvider(t, cli, ns)
	waiting := func(reason string) func(*corev1.Pod) {
		return func(pod *corev1.Pod) {
			pod.Status.Phase = corev1.PodRunning
			pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "replica", Image: testImage,
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: "back-off restarting"}}}}
		}
	}
	tests := []struct {
		name string
		// pod, if set, writes the status of a Pod of the Deployment; old
		// puts that Pod in an earlier incarnation.
		pod  func(*corev1.Pod)
		old  bool
		dep  func(*appsv1.Deployment)
		want string // "" for running, else a substring of the exited Detail
	}{
		{"pod pending, not yet scheduled", func(*corev1.Pod) {}, false, nil, ""},
		{"pod running", func(pod *corev1.Pod) {
			pod.Status.Phase = corev1.PodRunning
			pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "replica", Image: testImage, Ready: true,
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}}}
		}, false, nil, ""},
		{"crash loop", waiting("CrashLoopBackOff"), false, nil, "container replica CrashLoopBackOff"},
		{"image not pullable", waiting("ImagePullBackOff"), false, nil, "ImagePullBackOff"},
		{"crash loop of the replaced incarnation is ignored", waiting("CrashLoopBackOff"), true, nil, ""},
		{"unschedulable", func(pod *corev1.Pod) {
			pod.Status.Phase = corev1.PodPending
			pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
				Reason: corev1.PodReasonUnschedulable, Message: "0/3 nodes are available: 3 Insufficient cpu."}}
		}, false, nil, "unschedulable: 0/3 nodes are available: 3 Insufficient cpu."},
		{"pod failed", func(pod *corev1.Pod) { pod.Status.Phase = corev1.PodFailed; pod.Status.Reason = "Evicted" }, false, nil, "failed (Evicted)"},
		{"quota refused the pod", nil, false, func(d *appsv1.Deployment) {
			d.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentReplicaFailure, Status: corev1.ConditionTrue,
				Reason: "FailedCreate", Message: `pods "x" is forbidden: exceeded quota: q`}}
		}, "cannot create its pod (FailedCreate)"},
		{"progress deadline exceeded", nil, false, func(d *appsv1.Deployment) {
			d.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse,
				Reason: "ProgressDeadlineExceeded", Message: "ReplicaSet has timed out progressing."}}
		}, "not progressing (ProgressDeadlineExceeded)"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := spec("status-" + string(rune('a'+i)))
			inst := provision(t, p, s)
			name := strings.Split(inst.Addr, ".")[0]
			d, err := cli.AppsV1().Deployments(ns).Get(ctx(t), name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if tt.pod != nil {
				labels := d.Spec.Template.Labels
				if tt.old {
					labels = map[string]string{}
					for k, v := range d.Spec.Template.Labels {
						labels[k] = v
					}
					labels[kubernetes.LabelIncarnation] = "replaced"
				}
				pod := boundPod(t, cli, ns, name+"-pod", "", 10, 10, labels)
				tt.pod(pod)
				if _, err := cli.CoreV1().Pods(ns).UpdateStatus(ctx(t), pod, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			if tt.dep != nil {
				tt.dep(d)
				if _, err := cli.AppsV1().Deployments(ns).UpdateStatus(ctx(t), d, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			st, err := p.Status(ctx(t), s.ID)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == "" && st.State != provider.StateRunning || tt.want != "" && (st.State != provider.StateExited || !strings.Contains(st.Detail, tt.want)) {
				t.Fatalf("Status = %s %q, want %q", st.State, st.Detail, tt.want)
			}
			if tt.want == "" {
				return
			}
			// Provision replaces the failed Deployment; the failed Pod is
			// the old incarnation's and no longer speaks for it.
			again := provision(t, p, s)
			if again.State != provider.StateRunning || again.Detail == inst.Detail {
				t.Fatalf("Provision after %q: %+v", tt.want, again)
			}
		})
	}
}

// TestClaimDeletedBehindOurBack: the instance reads as exited, and
// Provision gives it a new claim.
func TestClaimDeletedBehindOurBack(t *testing.T) {
	cli := apiServer(t)
	ns := namespace(t, cli)
	p := newProvider(t, cli, ns)
	s := spec("lost-claim")
	s.Resources.DiskBytes = 1 << 20
	provision(t, p, s)
	var claim string
	for _, o := range owned(t, cli, ns) {
		if c, ok := strings.CutPrefix(o, "claim/"); ok {
			claim = c
		}
	}
	if err := cli.CoreV1().PersistentVolumeClaims(ns).Delete(ctx(t), claim, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err := p.Status(ctx(t), s.ID)
	if err != nil || st.State != provider.StateExited || !strings.Contains(st.Detail, "claim "+claim+" is gone") {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	if again := provision(t, p, s); again.State != provider.StateRunning {
		t.Fatalf("Provision after the claim was lost: %+v", again)
	}
	if got := kinds(owned(t, cli, ns)); got != "1 deployment, 1 service, 1 claim" {
		t.Fatalf("objects: %s", got)
	}
}

// TestListAndReleaseAll: List shows every instance of the owner, and only
// its own; ReleaseAll removes them and leaves another owner's alone.
func TestListAndReleaseAll(t *testing.T) {
	cli := apiServer(t)
	ns := namespace(t, cli)
	p := newProvider(t, cli, ns)
	other := newProvider(t, cli, ns, func(c *kubernetes.Config) { c.Owner = "staging" })
	provision(t, p, spec("a"))
	provision(t, p, spec("b"))
	provision(t, other, spec("a"))
	list, err := p.List(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, i := range list {
		ids = append(ids, i.ID)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"a", "b"}) {
		t.Fatalf("List = %v", ids)
	}
	if err := p.ReleaseAll(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if list, _ := p.List(ctx(t)); len(list) != 0 {
		t.Fatalf("after ReleaseAll: %+v", list)
	}
	if st, err := other.Status(ctx(t), "a"); err != nil || st.State != provider.StateRunning {
		t.Fatalf("another owner's instance after ReleaseAll: %+v, %v", st, err)
	}
}

func TestNodePortAddress(t *testing.T) {
	cli := apiServer(t)
	ns := namespace(t, cli)
	p := newProvider(t, cli, ns, func(c *kubernetes.Config) {
		c.ServiceType = corev1.ServiceTypeNodePort
		c.NodeAddress = "10.1.2.3"
	})
	inst := provision(t, p, spec("np"))
	host, port, ok := strings.Cut(inst.Addr, ":")
	if !ok || host != "10.1.2.3" || port < "30000" || port > "32767" || len(port) != 5 {
		t.Fatalf("Addr %q, want 10.1.2.3 and a node port", inst.Addr)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	cli := apiServer(t)
	tests := []struct {
		name string
		cfg  kubernetes.Config
		want string
	}{
		{"no client", kubernetes.Config{Namespace: "a", Image: "i"}, "client is required"},
		{"no image", kubernetes.Config{Client: cli, Namespace: "a"}, "image is required"},
		{"bad namespace", kubernetes.Config{Client: cli, Namespace: "A_b", Image: "i"}, "namespace"},
		{"bad owner", kubernetes.Config{Client: cli, Namespace: "a", Image: "i", Owner: "a/b"}, "owner"},
		{"bad port", kubernetes.Config{Client: cli, Namespace: "a", Image: "i", Port: 70000}, "port"},
		{"relative data path", kubernetes.Config{Client: cli, Namespace: "a", Image: "i", DataPath: "data"}, "absolute"},
		{"node port without address", kubernetes.Config{Client: cli, Namespace: "a", Image: "i", ServiceType: corev1.ServiceTypeNodePort}, "node_address"},
		{"load balancer", kubernetes.Config{Client: cli, Namespace: "a", Image: "i", ServiceType: corev1.ServiceTypeLoadBalancer}, "ClusterIP or NodePort"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := kubernetes.New(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want %q", err, tt.want)
			}
		})
	}
}

// TestMissingNamespaceIsClear: a namespace that does not exist gives an
// error that names it.
func TestMissingNamespaceIsClear(t *testing.T) {
	cli := apiServer(t)
	p := newProvider(t, cli, "no-such-namespace")
	_, err := p.Provision(context.Background(), spec("x"))
	if err == nil || !strings.Contains(err.Error(), "no-such-namespace") {
		t.Fatalf("Provision into a missing namespace: %v", err)
	}
}
