package kubernetes_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/allocate"
	"github.com/phoenixsre/phoenix/provider"
	"github.com/phoenixsre/phoenix/provider/kubernetes"
)

func offersByID(t *testing.T, p *kubernetes.Provider) map[string]provider.Offer {
	t.Helper()
	offers, err := p.Offers(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]provider.Offer{}
	for _, o := range offers {
		out[o.ID] = o
	}
	return out
}

// TestOffers: schedulable nodes grouped by zone and instance type, less
// what is bound to them, priced by share, capped by the quota.
func TestOffers(t *testing.T) {
	cli := apiServer(t)
	ns := namespace(t, cli)
	for _, n := range []node{
		{name: ns + "-a1", zone: "zone-a", itype: "m5.large", milliCPU: 4000, memMiB: 8192},
		{name: ns + "-a2", zone: "zone-a", itype: "m5.large", milliCPU: 4000, memMiB: 8192},
		{name: ns + "-b1", zone: "zone-b", itype: "c5.large", milliCPU: 2000, memMiB: 4096},
		{name: ns + "-bare", milliCPU: 1000, memMiB: 1024},
		{name: ns + "-cordoned", zone: "zone-c", itype: "m5.large", milliCPU: 4000, memMiB: 8192, cordon: true},
		{name: ns + "-notready", zone: "zone-c", itype: "m5.large", milliCPU: 4000, memMiB: 8192, notReady: true},
		{name: ns + "-tainted", zone: "zone-c", itype: "m5.large", milliCPU: 4000, memMiB: 8192, taint: true},
	} {
		addNode(t, cli, n)
	}
	// 3 CPUs taken on a1: one slot left there, four on a2.
	boundPod(t, cli, ns, "busy", ns+"-a1", 3000, 1024, nil)
	p := newProvider(t, cli, ns)
	got := offersByID(t, p)
	want := map[string]provider.Offer{
		"zone-a/m5.large": {ID: "zone-a/m5.large", Zone: "zone-a", PricePerHour: 0.2 * 0.25, Performance: 1, Free: 5},
		"zone-b/c5.large": {ID: "zone-b/c5.large", Zone: "zone-b", PricePerHour: 0, Performance: 1.5, Free: 2},
		"-/-":             {ID: "-/-", Zone: "", Performance: 1, Free: 1},
	}
	if len(got) != len(want) {
		t.Fatalf("offers %v, want %v (cordoned, not ready and tainted nodes left out)", got, want)
	}
	for id, w := range want {
		g := got[id]
		w.Provider, w.Size = "kubernetes", phoenix.Resources{MilliCPU: 1000, MemoryBytes: 1 << 30}
		if math.Abs(g.PricePerHour-w.PricePerHour) > 1e-12 {
			t.Errorf("%s price %v, want %v", id, g.PricePerHour, w.PricePerHour)
		}
		g.PricePerHour = w.PricePerHour
		if g != w {
			t.Errorf("offer %s = %+v\nwant %+v", id, g, w)
		}
	}

	// A quota of 3 CPUs with 1 in use caps every offer at 2.
	quota(t, cli, ns, "cpu", corev1.ResourceList{corev1.ResourceRequestsCPU: resource.MustParse("3")},
		corev1.ResourceList{corev1.ResourceRequestsCPU: resource.MustParse("1")})
	got = offersByID(t, p)
	if got["zone-a/m5.large"].Free != 2 || got["zone-b/c5.large"].Free != 2 || got["-/-"].Free != 1 {
		t.Fatalf("with a quota of 2 more CPUs: %+v", got)
	}
}

// TestOffersCountWhatRuns: every instance pinned to an offer takes a slot,
// though no scheduler binds its Pod here; the next one beyond the room is
// refused with ErrNoCapacity and leaves nothing; a Release gives the slot
// back. Then a placement made on the offers is carried out.
func TestOffersCountWhatRuns(t *testing.T) {
	cli := apiServer(t)
	ns := namespace(t, cli)
	addNode(t, cli, node{name: ns + "-a1", zone: "zone-a", itype: "m5.large", milliCPU: 2500, memMiB: 4096})
	p := newProvider(t, cli, ns)
	const offer = "zone-a/m5.large"
	free := func() int { return offersByID(t, p)[offer].Free }
	if free() != 2 {
		t.Fatalf("Free = %d, want 2", free())
	}
	at := func(i int) provider.Spec {
		s := spec(fmt.Sprintf("slot-%d", i))
		s.Offer, s.Resources = offer, phoenix.Resources{MilliCPU: 1000, MemoryBytes: 1 << 30, DiskBytes: 1 << 20}
		return s
	}
	for i := range 2 {
		provision(t, p, at(i))
		if got := free(); got != 1-i {
			t.Fatalf("after %d instances Free = %d, want %d", i+1, got, 1-i)
		}
	}
	if _, err := p.Provision(ctx(t), at(2)); !errors.Is(err, provider.ErrNoCapacity) {
		t.Fatalf("Provision beyond the offer: %v, want ErrNoCapacity", err)
	}
	if _, err := p.Status(ctx(t), at(2).ID); !errors.Is(err, provider.ErrNotFound) {
		t.Fatalf("a refused spec left something: %v", err)
	}
	// Provision of a running instance is not refused for lack of room: it
	// is already there.
	provision(t, p, at(1))
	if err := p.Release(ctx(t), at(0).ID); err != nil {
		t.Fatal(err)
	}
	if got := free(); got != 1 {
		t.Fatalf("after a Release Free = %d, want 1", got)
	}
	provision(t, p, at(2))

	// Larger than any node, with no offer named: refused.
	big := spec("big")
	big.Resources = phoenix.Resources{MilliCPU: 8000, MemoryBytes: 1 << 30}
	if _, err := p.Provision(ctx(t), big); !errors.Is(err, provider.ErrNoCapacity) {
		t.Fatalf("Provision larger than every node: %v, want ErrNoCapacity", err)
	}
	// An offer whose nodes are gone: refused, so the next offer is tried.
	gone := at(3)
	gone.Offer = "zone-z/m5.large"
	if _, err := p.Provision(ctx(t), gone); !errors.Is(err, provider.ErrNoCapacity) || !strings.Contains(err.Error(), "no schedulable node") {
		t.Fatalf("Provision on a vanished offer: %v, want ErrNoCapacity", err)
	}
}

// TestRefusalLeadsToTheNextOffer: the allocator's plan on these offers,
// carried out, falls back to the next offer when the first is refused.
func TestRefusalLeadsToTheNextOffer(t *testing.T) {
	cli := apiServer(t)
	ns := namespace(t, cli)
	addNode(t, cli, node{name: ns + "-a1", zone: "zone-a", itype: "m5.large", milliCPU: 1500, memMiB: 4096})
	addNode(t, cli, node{name: ns + "-b1", zone: "zone-b", itype: "m5.xlarge", milliCPU: 8000, memMiB: 16384})
	p := newProvider(t, cli, ns, func(c *kubernetes.Config) {
		// zone-a: 0.1 x 1000m/1500m = 0.067/h; zone-b: 1.0 x 1000m/8000m = 0.125/h.
		c.NodePrice = map[string]float64{"m5.large": 0.1, "m5.xlarge": 1.0}
	})
	offers, err := p.Offers(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	// Someone else takes zone-a's only slot between the offers and the
	// provision.
	boundPod(t, cli, ns, "intruder", ns+"-a1", 1000, 512, nil)
	snap := allocate.Snapshot{Offers: offers}
	g := allocate.Group{Component: "orders", Tasks: []allocate.Task{{Component: "orders", Resources: phoenix.Resources{MilliCPU: 1000, MemoryBytes: 1 << 30}}}}
	var tried []string
	for range 3 {
		plan, err := allocate.Place(snap, g)
		if err != nil || !plan.Complete() {
			t.Fatalf("plan: %+v, %v", plan, err)
		}
		pl := plan.Placements[0]
		tried = append(tried, pl.Offer.ID)
		s := spec("orders-1.orders")
		s.Offer, s.Resources = pl.Offer.ID, pl.Resources
		_, err = p.Provision(ctx(t), s)
		if errors.Is(err, provider.ErrNoCapacity) {
			snap = snap.Exclude(allocate.OfferKey(pl.Offer))
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		break
	}
	if strings.Join(tried, ",") != "zone-a/m5.large,zone-b/m5.xlarge" {
		t.Fatalf("offers tried: %v, want the cheap one refused, then the next", tried)
	}
}

// TestQuotaRefusals: a quota the provider can read refuses before
// anything is made; one it does not model is refused by the API server
// itself, and that refusal too is ErrNoCapacity, with nothing left behind.
func TestQuotaRefusals(t *testing.T) {
	cli := apiServer(t)
	ns := namespace(t, cli)
	p := newProvider(t, cli, ns)
	quota(t, cli, ns, "cpu", corev1.ResourceList{corev1.ResourceRequestsCPU: resource.MustParse("1")},
		corev1.ResourceList{corev1.ResourceRequestsCPU: resource.MustParse("800m")})
	s := spec("over-cpu")
	s.Resources.MilliCPU = 500
	_, err := p.Provision(ctx(t), s)
	if !errors.Is(err, provider.ErrNoCapacity) || !strings.Contains(err.Error(), "resource quota cpu: requests.cpu has 200 left") {
		t.Fatalf("over the CPU quota: %v", err)
	}
	s.Resources.MilliCPU = 150
	provision(t, p, s)
	// The next one fits the 50m left by the controller's count, but not
	// once the first instance (whose Pod nobody created) is counted.
	s2 := spec("over-cpu-2")
	s2.Resources.MilliCPU = 100
	if _, err := p.Provision(ctx(t), s2); !errors.Is(err, provider.ErrNoCapacity) {
		t.Fatalf("over the quota with an uncreated pod counted: %v", err)
	}

	ns2 := namespace(t, cli)
	p2 := newProvider(t, cli, ns2)
	quota(t, cli, ns2, "claims", corev1.ResourceList{"count/persistentvolumeclaims": resource.MustParse("0")}, corev1.ResourceList{})
	s3 := spec("no-claims-allowed")
	s3.Resources.DiskBytes = 1 << 30
	_, err = p2.Provision(ctx(t), s3)
	if !errors.Is(err, provider.ErrNoCapacity) || !strings.Contains(err.Error(), "exceeded quota") {
		t.Fatalf("a claim over the API server's quota: %v, want ErrNoCapacity", err)
	}
	if left := owned(t, cli, ns2); len(left) != 0 {
		t.Fatalf("a refused provision left %v", left)
	}
	if _, err := p2.Status(context.Background(), s3.ID); !errors.Is(err, provider.ErrNotFound) {
		t.Fatalf("Status after a refusal: %v", err)
	}
}
