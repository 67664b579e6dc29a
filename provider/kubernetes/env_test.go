package kubernetes_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/phoenixsre/phoenix/internal/shareddata"
	"github.com/phoenixsre/phoenix/provider"
	"github.com/phoenixsre/phoenix/provider/kubernetes"
)

// The API server every test of the package shares: a real kube-apiserver
// and etcd started by envtest, with no scheduler, controller manager or
// kubelet. Each test works in a namespace of its own.
var (
	apiConfig  *rest.Config
	apiErr     error
	namespaces atomic.Int64
)

const assetsHelp = "KUBEBUILDER_ASSETS is not set: build a kube-apiserver and an etcd with " +
	"../shared/tools/envtest/build-assets.sh DIR and export KUBEBUILDER_ASSETS=DIR " +
	"(DIR = ~/.cache/phoenix-envtest/v1.37.2 is found without the export)"

func TestMain(m *testing.M) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		dir, err := envtestAssets()
		if err != nil {
			fmt.Fprintln(os.Stderr, "envtest assets:", err)
		}
		if dir == "" {
			os.Exit(m.Run())
		}
		os.Setenv("KUBEBUILDER_ASSETS", dir)
	}
	env := &envtest.Environment{}
	apiConfig, apiErr = env.Start()
	code := m.Run()
	if apiErr == nil {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping envtest:", err)
		}
	}
	os.Exit(code)
}

// envtestAssets finds a kube-apiserver and an etcd in the cache directory.
// In CI (CI=true) it builds them there first, from the Go module proxy, with
// the shared script (about 10 minutes cold, at a low priority so that the
// other packages' tests running beside it keep their CPU); the directory is
// reused by later runs. go test's timeout counts the build (the go command
// kills a test binary at its -timeout plus a minute, TestMain included), so
// .ci/run warms the cache first with a longer timeout, running no test.
func envtestAssets() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "phoenix-envtest", "v1.37.2")
	have := func() bool {
		for _, bin := range []string{"kube-apiserver", "etcd"} {
			if fi, err := os.Stat(filepath.Join(dir, bin)); err != nil || fi.Mode()&0o111 == 0 {
				return false
			}
		}
		return true
	}
	if have() {
		return dir, nil
	}
	if os.Getenv("CI") != "true" {
		return "", nil
	}
	script, err := shareddata.Find("tools/envtest/build-assets.sh")
	if err != nil {
		return "", err
	}
	fmt.Fprintln(os.Stderr, "building the envtest assets into", dir, "(once; about 10 minutes)")
	cmd := exec.Command("nice", "-n", "15", "bash", script, dir)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w", script, err)
	}
	if !have() {
		return "", fmt.Errorf("%s did not leave kube-apiserver and etcd in %s", script, dir)
	}
	return dir, nil
}

// apiServer returns a client of the shared API server, or skips the test
// (fails it under CI=true) when there is none.
func apiServer(t testing.TB) k8s.Interface {
	t.Helper()
	switch {
	case apiConfig == nil && apiErr == nil && os.Getenv("CI") == "true":
		t.Fatal(assetsHelp)
	case apiConfig == nil && apiErr == nil:
		t.Skip(assetsHelp)
	case apiErr != nil:
		t.Fatalf("envtest did not start: %v", apiErr)
	}
	cli, err := k8s.NewForConfig(apiConfig)
	if err != nil {
		t.Fatal(err)
	}
	return cli
}

// namespace creates a namespace for the test. Namespaces are not deleted:
// with no namespace controller they would stay Terminating anyway.
func namespace(t testing.TB, cli k8s.Interface) string {
	t.Helper()
	sum := sha256.Sum256(fmt.Appendf(nil, "%s/%d", t.Name(), namespaces.Add(1)))
	name := "t-" + hex.EncodeToString(sum[:])[:12]
	_, err := cli.CoreV1().Namespaces().Create(ctx(t), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	return name
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

const testImage = "registry.invalid/phoenix/replica:test"

func newProvider(t testing.TB, cli k8s.Interface, ns string, edit ...func(*kubernetes.Config)) *kubernetes.Provider {
	t.Helper()
	cfg := kubernetes.Config{Client: cli, Namespace: ns, Image: testImage,
		NodePrice: map[string]float64{"m5.large": 0.2}, Performance: map[string]float64{"c5.large": 1.5}}
	for _, e := range edit {
		e(&cfg)
	}
	p, err := kubernetes.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func spec(id string) provider.Spec {
	return provider.Spec{ID: id, Component: "orders",
		Command: []string{"/replica", "--listen", "{addr}", "--data", "{data_dir}"},
		Env:     map[string]string{"PORT": "{port}", "SELF": "{addr}"}}
}

func provision(t *testing.T, p *kubernetes.Provider, s provider.Spec) provider.Instance {
	t.Helper()
	inst, err := p.Provision(ctx(t), s)
	if err != nil {
		t.Fatalf("Provision(%s): %v", s.ID, err)
	}
	return inst
}

// node adds a Node object and writes its status as a kubelet would: its
// allocatable room and its Ready condition. Nothing runs on it.
type node struct {
	name, zone, itype string
	milliCPU, memMiB  int64
	notReady, cordon  bool
	taint             bool
}

func addNode(t *testing.T, cli k8s.Interface, n node) {
	t.Helper()
	labels := map[string]string{}
	if n.zone != "" {
		labels[kubernetes.LabelZone] = n.zone
	}
	if n.itype != "" {
		labels[kubernetes.LabelInstanceType] = n.itype
	}
	obj := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.name, Labels: labels}, Spec: corev1.NodeSpec{Unschedulable: n.cordon}}
	if n.taint {
		obj.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule}}
	}
	created, err := cli.CoreV1().Nodes().Create(ctx(t), obj, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create node: %v", err)
	}
	t.Cleanup(func() { _ = cli.CoreV1().Nodes().Delete(context.Background(), n.name, metav1.DeleteOptions{}) })
	ready := corev1.ConditionTrue
	if n.notReady {
		ready = corev1.ConditionFalse
	}
	room := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewMilliQuantity(n.milliCPU, resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(n.memMiB<<20, resource.BinarySI),
		corev1.ResourcePods:   *resource.NewQuantity(110, resource.DecimalSI),
	}
	created.Status = corev1.NodeStatus{Capacity: room, Allocatable: room,
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready, Reason: "test", LastHeartbeatTime: metav1.Now()}}}
	updated, err := cli.CoreV1().Nodes().UpdateStatus(ctx(t), created, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("node status: %v", err)
	}
	// The API server taints a new node not-ready; the node lifecycle
	// controller lifts the taint once the node reports Ready.
	if n.notReady {
		return
	}
	var taints []corev1.Taint
	for _, tn := range updated.Spec.Taints {
		if tn.Key != corev1.TaintNodeNotReady {
			taints = append(taints, tn)
		}
	}
	updated.Spec.Taints = taints
	if _, err := cli.CoreV1().Nodes().Update(ctx(t), updated, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("untaint node: %v", err)
	}
}

// boundPod adds a Pod already bound to a node (spec.nodeName), as the
// scheduler would leave it, asking for cpu and memory.
func boundPod(t *testing.T, cli k8s.Interface, ns, name, nodeName string, milliCPU, memMiB int64, labels map[string]string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels}, Spec: corev1.PodSpec{
		NodeName: nodeName,
		Containers: []corev1.Container{{Name: "c", Image: "registry.invalid/x", Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{
				corev1.ResourceCPU:    *resource.NewMilliQuantity(milliCPU, resource.DecimalSI),
				corev1.ResourceMemory: *resource.NewQuantity(memMiB<<20, resource.BinarySI)}}}}}}
	created, err := cli.CoreV1().Pods(ns).Create(ctx(t), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod: %v", err)
	}
	return created
}

// quota adds a ResourceQuota and writes its status as the quota controller
// would: hard as given, used as given.
func quota(t *testing.T, cli k8s.Interface, ns, name string, hard, used corev1.ResourceList) {
	t.Helper()
	q, err := cli.CoreV1().ResourceQuotas(ns).Create(ctx(t), &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.ResourceQuotaSpec{Hard: hard}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create quota: %v", err)
	}
	for k := range hard {
		if _, ok := used[k]; !ok {
			used[k] = resource.MustParse("0")
		}
	}
	q.Status = corev1.ResourceQuotaStatus{Hard: hard, Used: used}
	if _, err := cli.CoreV1().ResourceQuotas(ns).UpdateStatus(ctx(t), q, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("quota status: %v", err)
	}
}

// owned lists the namespace's objects of the provider's owner, as
// "kind/name" strings, leaving out those being deleted.
func owned(t *testing.T, cli k8s.Interface, ns string) []string {
	t.Helper()
	sel := metav1.ListOptions{LabelSelector: kubernetes.LabelOwner + "=phoenix"}
	var out []string
	deps, err := cli.AppsV1().Deployments(ns).List(ctx(t), sel)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range deps.Items {
		out = append(out, "deployment/"+d.Name)
	}
	svcs, err := cli.CoreV1().Services(ns).List(ctx(t), sel)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range svcs.Items {
		out = append(out, "service/"+s.Name)
	}
	pvcs, err := cli.CoreV1().PersistentVolumeClaims(ns).List(ctx(t), sel)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range pvcs.Items {
		if c.DeletionTimestamp == nil {
			out = append(out, "claim/"+c.Name)
		}
	}
	return out
}

func kinds(objs []string) string {
	n := map[string]int{}
	for _, o := range objs {
		kind, _, _ := strings.Cut(o, "/")
		n[kind]++
	}
	return fmt.Sprintf("%d deployment, %d service, %d claim", n["deployment"], n["service"], n["claim"])
}
