package allocate_test

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/allocate"
	"github.com/phoenixsre/phoenix/provider"
)

const mib = 1 << 20

// offer is provider/id in zone at price, with performance, free slots, and
// a size of cpu millicores and mem MiB.
func offer(prov, id, zone string, price, perf float64, free int, cpu, mem int64) provider.Offer {
	return provider.Offer{ID: id, Provider: prov, Zone: zone, PricePerHour: price, Performance: perf, Free: free,
		Size: phoenix.Resources{MilliCPU: cpu, MemoryBytes: mem * mib}}
}

func task(name string, cpu, mem int64) allocate.Task {
	return allocate.Task{Component: phoenix.ComponentID(name), Resources: phoenix.Resources{MilliCPU: cpu, MemoryBytes: mem * mib}}
}

func spread(t allocate.Task, n int) allocate.Task { t.Replicas, t.Spread = n, true; return t }
func replicas(t allocate.Task, n int) allocate.Task {
	t.Replicas = n
	return t
}

// placed renders a plan as "component#replica@provider/id" lines and
// "component:n unplaced" lines, for comparison.
func placed(p allocate.Plan) []string {
	var out []string
	for _, pl := range p.Placements {
		out = append(out, fmt.Sprintf("%s#%d@%s", pl.Component, pl.Replica, allocate.OfferKey(pl.Offer)))
	}
	for _, u := range p.Unplaced {
		out = append(out, fmt.Sprintf("%s:%d unplaced", u.Component, u.Replicas))
	}
	return out
}

// TestPlace is placement over a table of snapshots: each row is the offers
// seen and the group asked for, and the plan it must give.
func TestPlace(t *testing.T) {
	big := offer("k8s", "big", "a", 0.10, 1, 5, 2000, 2048)
	small := offer("k8s", "small", "a", 0.05, 1, 5, 1000, 512)
	tiny := offer("docker", "tiny", "a", 0.02, 1, 5, 500, 256)
	tests := []struct {
		name    string
		snap    allocate.Snapshot
		group   allocate.Group
		want    []string
		price   float64
		zone    string
		reasons []string // substrings of the plan's reasons (placements, unplaced, summary)
	}{
		{"the cheapest offer that fits; why not the cheaper ones",
			allocate.Snapshot{Offers: []provider.Offer{big, small, tiny}},
			allocate.Group{Component: "orders", Tasks: []allocate.Task{task("orders", 800, 1024)}},
			[]string{"orders#0@k8s/big"}, 0.10, "",
			[]string{"k8s/big at 0.1000/h", "docker/tiny: CPU: needs 800m at performance 1, offers 500m", "k8s/small: memory: needs 1.0 GiB, offers 512.0 MiB"}},
		{"a faster machine needs less CPU",
			allocate.Snapshot{Offers: []provider.Offer{offer("k8s", "slow", "a", 0.10, 1, 5, 2000, 2048), offer("k8s", "fast", "a", 0.08, 2, 5, 1000, 2048)}},
			allocate.Group{Component: "orders", Tasks: []allocate.Task{task("orders", 1500, 256)}},
			[]string{"orders#0@k8s/fast"}, 0.08, "", []string{"asks 750m CPU", "performance 2"}},
		{"a full offer is passed over",
			allocate.Snapshot{Offers: []provider.Offer{offer("docker", "tiny", "a", 0.02, 1, 0, 500, 256), small}},
			allocate.Group{Component: "orders", Tasks: []allocate.Task{task("orders", 100, 100)}},
			[]string{"orders#0@k8s/small"}, 0.05, "", []string{"docker/tiny: full"}},
		{"an offer refused since is passed over",
			allocate.Snapshot{Offers: []provider.Offer{tiny, small}}.Exclude("docker/tiny"),
			allocate.Group{Component: "orders", Tasks: []allocate.Task{task("orders", 100, 100)}},
			[]string{"orders#0@k8s/small"}, 0.05, "", []string{"docker/tiny: refused a provision since the offers were gathered"}},
		{"the cheapest set, not the cheapest offer for each in turn",
			// Greedy in member order puts inventory on x and orders on z
			// (11/h); inventory on y and orders on x costs 3/h.
			allocate.Snapshot{Offers: []provider.Offer{
				offer("p", "x", "a", 1, 1, 1, 4000, 4096), offer("p", "y", "a", 2, 1, 1, 500, 256), offer("p", "z", "a", 10, 1, 1, 4000, 4096)}},
			allocate.Group{Component: "orders", Tasks: []allocate.Task{task("inventory", 100, 100), task("orders", 2000, 2048)}},
			[]string{"inventory#0@p/y", "orders#0@p/x"}, 3, "", []string{"p/x: its room went to other replicas"}},
		{"replicas spread over zones, cheapest zones first",
			allocate.Snapshot{Offers: []provider.Offer{
				offer("p", "a1", "a", 0.01, 1, 9, 1000, 1024), offer("p", "b1", "b", 0.02, 1, 9, 1000, 1024),
				offer("p", "c1", "c", 0.03, 1, 9, 1000, 1024), offer("p", "d1", "d", 0.04, 1, 9, 1000, 1024)}},
			allocate.Group{Component: "orders", Tasks: []allocate.Task{spread(task("orders", 100, 100), 3)}},
			[]string{"orders#0@p/a1", "orders#1@p/b1", "orders#2@p/c1"}, 0.06, "", []string{"replica 2 of 3, spread: one zone per replica"}},
		{"spread over more zones than fit: what fits is placed, the rest says why",
			allocate.Snapshot{Offers: []provider.Offer{
				offer("p", "a1", "a", 0.01, 1, 9, 1000, 1024), offer("p", "a2", "a", 0.015, 1, 9, 1000, 1024),
				offer("p", "b1", "b", 0.02, 1, 9, 1000, 1024), offer("p", "c1", "c", 0.01, 1, 9, 100, 1024)}},
			allocate.Group{Component: "orders", Tasks: []allocate.Task{spread(task("orders", 500, 100), 3)}},
			[]string{"orders#0@p/a1", "orders#1@p/b1", "orders:1 unplaced"}, 0.03, "",
			[]string{`3 replicas must be in distinct zones, and only 2 zone(s) have an offer that fits ("a", "b"); 2 placed`}},
		{"without spread, replicas share the cheapest offer",
			allocate.Snapshot{Offers: []provider.Offer{offer("p", "a1", "a", 0.01, 1, 9, 1000, 1024), offer("p", "b1", "b", 0.02, 1, 9, 1000, 1024)}},
			allocate.Group{Component: "orders", Tasks: []allocate.Task{replicas(task("orders", 100, 100), 2)}},
			[]string{"orders#0@p/a1", "orders#1@p/a1"}, 0.02, "", nil},
		{"not enough room: what fits is placed, the rest says why",
			allocate.Snapshot{Offers: []provider.Offer{offer("p", "a1", "a", 0.01, 1, 1, 1000, 1024), offer("p", "b1", "b", 0.02, 1, 1, 1000, 1024)}},
			allocate.Group{Component: "orders", Tasks: []allocate.Task{replicas(task("orders", 100, 100), 3)}},
			[]string{"orders#0@p/a1", "orders#1@p/b1", "orders:1 unplaced"}, 0.03, "",
			[]string{"2 of 3 placed: the offers that fit are shared with the other members (p/a1 has 1 free; p/b1 has 1 free)"}},
		{"apart, each member goes to its cheapest zone",
			allocate.Snapshot{Offers: []provider.Offer{offer("p", "a1", "a", 0.01, 1, 9, 1000, 256), offer("p", "b1", "b", 0.05, 1, 9, 1000, 2048)}},
			allocate.Group{Component: "orders", Tasks: []allocate.Task{task("inventory", 100, 1024), task("orders", 100, 100)}},
			[]string{"inventory#0@p/b1", "orders#0@p/a1"}, 0.06, "", nil},
		{"together, the closure goes to the one zone that holds all of it",
			allocate.Snapshot{Offers: []provider.Offer{offer("p", "a1", "a", 0.01, 1, 9, 1000, 256), offer("p", "b1", "b", 0.05, 1, 9, 1000, 2048)}},
			allocate.Group{Component: "orders", Together: true, Tasks: []allocate.Task{task("inventory", 100, 1024), task("orders", 100, 100)}},
			[]string{"inventory#0@p/b1", "orders#0@p/b1"}, 0.10, "b",
			[]string{`zone "b" keeps the closure together`, `p/a1: zone "a", against the rules`, `kept together in zone "b"`}},
		{"together, the zone cheapest in total, not the one with the cheapest offer",
			// b1 is the cheapest offer but has room for one: b costs
			// 0.01 + 0.06, a costs 2 x 0.03.
			allocate.Snapshot{Offers: []provider.Offer{
				offer("p", "a1", "a", 0.03, 1, 9, 1000, 2048), offer("p", "b1", "b", 0.01, 1, 1, 1000, 2048),
				offer("p", "b2", "b", 0.06, 1, 9, 1000, 2048)}},
			allocate.Group{Component: "orders", Together: true, Tasks: []allocate.Task{task("inventory", 100, 100), task("orders", 100, 100)}},
			[]string{"inventory#0@p/a1", "orders#0@p/a1"}, 0.06, "a", nil},
		{"together in the zone the group names",
			allocate.Snapshot{Offers: []provider.Offer{offer("p", "a1", "a", 0.01, 1, 9, 1000, 2048), offer("p", "b1", "b", 0.05, 1, 9, 1000, 2048)}},
			allocate.Group{Component: "orders", Together: true, Zone: "b", Tasks: []allocate.Task{task("orders", 100, 100)}},
			[]string{"orders#0@p/b1"}, 0.05, "b", nil},
		{"together and no zone holds it all: nothing is placed, each zone says why",
			allocate.Snapshot{Offers: []provider.Offer{offer("p", "a1", "a", 0.01, 1, 9, 1000, 256), offer("p", "b1", "b", 0.05, 1, 9, 50, 2048)}},
			allocate.Group{Component: "orders", Together: true, Tasks: []allocate.Task{task("inventory", 100, 1024), task("orders", 100, 100)}},
			[]string{"inventory:1 unplaced", "orders:1 unplaced"}, 0, "",
			[]string{`no single zone holds the whole closure, which is kept together: zone "a": no offer there fits inventory (p/a1: memory: needs 1.0 GiB, offers 256.0 MiB); zone "b": no offer there fits inventory (p/b1: CPU: needs 100m at performance 1, offers 50m), no offer there fits orders`}},
		{"together and the zone is too small for both: nothing is placed",
			allocate.Snapshot{Offers: []provider.Offer{offer("p", "a1", "a", 0.01, 1, 1, 1000, 2048)}},
			allocate.Group{Component: "orders", Together: true, Tasks: []allocate.Task{task("inventory", 100, 100), task("orders", 100, 100)}},
			[]string{"inventory:1 unplaced", "orders:1 unplaced"}, 0, "",
			[]string{`zone "a": orders has 0 of 1 replicas there: the offers that fit are shared with the other members (p/a1 has 1 free)`}},
		{"together and spread: one copy of the closure in a zone, the other replica elsewhere",
			allocate.Snapshot{Offers: []provider.Offer{
				offer("p", "a1", "a", 0.01, 1, 9, 1000, 2048), offer("p", "b1", "b", 0.02, 1, 9, 1000, 2048), offer("p", "c1", "c", 0.03, 1, 9, 1000, 2048)}},
			allocate.Group{Component: "orders", Together: true, Tasks: []allocate.Task{task("inventory", 100, 100), spread(task("orders", 100, 100), 2)}},
			[]string{"inventory#0@p/a1", "orders#0@p/a1", "orders#1@p/b1"}, 0.04, "a", nil},
		{"malformed offers are skipped, with the reason",
			allocate.Snapshot{Offers: []provider.Offer{
				offer("p", "nan", "a", math.NaN(), 1, 9, 1000, 2048), offer("p", "neg", "a", 0.001, 1, -1, 1000, 2048),
				offer("p", "slow", "a", 0.001, -2, 9, 1000, 2048), offer("", "anon", "a", 0.001, 1, 9, 1000, 2048),
				offer("p", "ok", "a", 0.01, 1, 9, 1000, 2048), offer("p", "ok", "a", 0.0001, 1, 9, 1000, 2048)}},
			allocate.Group{Component: "orders", Tasks: []allocate.Task{task("orders", 100, 100)}},
			[]string{"orders#0@p/ok"}, 0.01, "", []string{"the best ranked offer"}},
		{"only malformed offers: nothing placed, each says why",
			allocate.Snapshot{Offers: []provider.Offer{
				offer("p", "nan", "a", math.NaN(), 1, 9, 1000, 2048), offer("p", "neg", "a", 0.001, 1, -1, 1000, 2048),
				offer("p", "slow", "a", 0.001, -2, 9, 1000, 2048), offer("", "anon", "a", 0.001, 1, 9, 1000, 2048)}},
			allocate.Group{Component: "orders", Tasks: []allocate.Task{task("orders", 100, 100)}},
			[]string{"orders:1 unplaced"}, 0, "",
			[]string{"no offer fits 100m CPU, 100.0 MiB memory, 0 B disk", "malformed: price NaN per hour", "malformed: -1 free", "malformed: performance -2", "malformed: no id or provider"}},
		{"no offers at all",
			allocate.Snapshot{},
			allocate.Group{Component: "orders", Tasks: []allocate.Task{task("orders", 100, 100)}},
			[]string{"orders:1 unplaced"}, 0, "", []string{"there are no offers"}},
		{"equal prices: the faster offer, then the first by name",
			allocate.Snapshot{Offers: []provider.Offer{offer("p", "b", "a", 0.01, 1, 9, 1000, 2048), offer("p", "c", "a", 0.01, 1.5, 9, 1000, 2048), offer("p", "a", "a", 0.01, 1, 9, 1000, 2048)}},
			allocate.Group{Component: "orders", Tasks: []allocate.Task{spread(task("orders", 100, 100), 1), task("inventory", 100, 100)}},
			[]string{"orders#0@p/c", "inventory#0@p/c"}, 0.02, "", []string{"the best ranked offer"}},
		{"an offer that does not state its disk does not limit it",
			allocate.Snapshot{Offers: []provider.Offer{offer("process", "local", "local", 0, 1, 64, 2000, 4096)}},
			allocate.Group{Component: "orders", Tasks: []allocate.Task{{Component: "orders", Resources: phoenix.Resources{MilliCPU: 100, DiskBytes: 1 << 40}}}},
			[]string{"orders#0@process/local"}, 0, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := allocate.Place(tt.snap, tt.group)
			if err != nil {
				t.Fatal(err)
			}
			if got := placed(p); !slices.Equal(got, tt.want) {
				t.Errorf("plan %v, want %v\n%s", got, tt.want, p.Reason)
			}
			if math.Abs(p.PricePerHour-tt.price) > 1e-9 || p.Zone != tt.zone {
				t.Errorf("price %v zone %q, want %v %q", p.PricePerHour, p.Zone, tt.price, tt.zone)
			}
			if p.Complete() != (len(p.Unplaced) == 0) {
				t.Error("Complete disagrees with Unplaced")
			}
			all := p.Reason
			for _, pl := range p.Placements {
				all += "\n" + pl.Reason
			}
			for _, s := range tt.reasons {
				if !strings.Contains(all, s) {
					t.Errorf("reasons do not say %q:\n%s", s, all)
				}
			}
			again, _ := allocate.Place(tt.snap, tt.group)
			if !slices.Equal(placed(again), placed(p)) || again.Reason != p.Reason {
				t.Error("the same snapshot gave another plan")
			}
		})
	}
}

// TestPlaceFallback: a provider refuses the chosen offer; the placement
// named the next one, and planning again without the refused offer picks it.
func TestPlaceFallback(t *testing.T) {
	snap := allocate.Snapshot{Offers: []provider.Offer{
		offer("k8s", "spot", "a", 0.01, 1, 3, 1000, 1024),
		offer("docker", "local", "a", 0.02, 1, 3, 1000, 1024),
		offer("k8s", "ondemand", "b", 0.05, 1, 3, 1000, 1024),
		offer("k8s", "tiny", "a", 0.001, 1, 3, 10, 1024),
	}}
	g := allocate.Group{Component: "orders", Tasks: []allocate.Task{task("orders", 100, 100)}}
	p, err := allocate.Place(snap, g)
	if err != nil {
		t.Fatal(err)
	}
	pl := p.Placements[0]
	var alts []string
	for _, o := range pl.Alternatives {
		alts = append(alts, allocate.OfferKey(o))
	}
	if allocate.OfferKey(pl.Offer) != "k8s/spot" || !slices.Equal(alts, []string{"docker/local", "k8s/ondemand"}) {
		t.Fatalf("chose %s, alternatives %v", allocate.OfferKey(pl.Offer), alts)
	}
	p2, _ := allocate.Place(snap.Exclude("k8s/spot"), g)
	if got := allocate.OfferKey(p2.Placements[0].Offer); got != alts[0] {
		t.Fatalf("after the refusal the plan chose %s, want the first alternative %s", got, alts[0])
	}
	if len(snap.Excluded) != 0 {
		t.Fatal("Exclude changed the snapshot it was called on")
	}
}

func TestPlaceRejectsMalformedGroups(t *testing.T) {
	tests := []struct {
		name string
		g    allocate.Group
		want string
	}{
		{"no members", allocate.Group{Component: "orders"}, "no member"},
		{"bad name", allocate.Group{Tasks: []allocate.Task{task("Orders!", 1, 1)}}, "component name"},
		{"twice", allocate.Group{Tasks: []allocate.Task{task("a", 1, 1), task("a", 1, 1)}}, "appears twice"},
		{"negative replicas", allocate.Group{Tasks: []allocate.Task{replicas(task("a", 1, 1), -1)}}, "replicas"},
		{"too many replicas", allocate.Group{Tasks: []allocate.Task{replicas(task("a", 1, 1), allocate.MaxReplicas+1)}}, "replicas"},
		{"negative resources", allocate.Group{Tasks: []allocate.Task{task("a", -1, 1)}}, "negative"},
		{"zone without together", allocate.Group{Zone: "a", Tasks: []allocate.Task{task("a", 1, 1)}}, "together"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := allocate.Place(allocate.Snapshot{}, tt.g)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
