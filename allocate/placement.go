package allocate

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/provider"
)

// MaxReplicas bounds Task.Replicas: a plan is for a pre-warm, not a fleet.
const MaxReplicas = 64

// maxPricePerHour is the highest price an offer may state; above it the
// offer is taken as malformed (and the integer arithmetic stays far from
// overflow).
const maxPricePerHour = 1e6

// Task is one member of a closure to place.
type Task struct {
	Component phoenix.ComponentID
	// Resources is what one replica needs on the reference machine
	// (performance 1): a Requirement's Resources.
	Resources phoenix.Resources
	// Replicas is how many instances to place; 0 means 1.
	Replicas int
	// Spread puts each replica in a different zone.
	Spread bool
}

// Group is the closure one pre-warm places: the component at risk and the
// members of its closure that need a replica, dependencies first.
type Group struct {
	Component phoenix.ComponentID
	Tasks     []Task
	// Together keeps the closure in one zone, for when latency between its
	// members matters: every replica goes to that zone, except the second
	// and later replicas of a Spread task, which go to other zones. Without
	// a zone that holds every member, nothing is placed.
	Together bool
	// Zone, with Together, is the zone the group must use, such as where
	// members that already have a healthy counterpart run.
	Zone string
}

// Snapshot is what placement reads: the offers gathered from every provider,
// and those to leave out.
type Snapshot struct {
	Offers []provider.Offer
	// Excluded lists offer keys (OfferKey) to leave out, such as an offer
	// whose provider refused a provision for lack of capacity since the
	// offers were gathered.
	Excluded []string
}

// OfferKey names an offer across providers: "provider/id".
func OfferKey(o provider.Offer) string { return o.Provider + "/" + o.ID }

// Exclude returns a copy of the snapshot without the offer: what to plan
// again with after its provider refused (provider.ErrNoCapacity).
func (s Snapshot) Exclude(key string) Snapshot {
	s.Excluded = append(slices.Clip(s.Excluded), key)
	return s
}

// Plan is where each replica goes, with the reason for each choice, and
// what could not be placed, with the reason why.
type Plan struct {
	Component phoenix.ComponentID
	// Zone is the group's zone when it is kept together.
	Zone string
	// Placements are in task order, then replica order.
	Placements   []Placement
	Unplaced     []Unplaced
	PricePerHour float64
	Reason       string
}

// Complete reports whether every replica was placed. A caller that needs
// the whole closure releases an incomplete plan's placements.
func (p Plan) Complete() bool { return len(p.Unplaced) == 0 }

// Placement is one replica on one offer.
type Placement struct {
	Component phoenix.ComponentID
	// Replica counts from 0.
	Replica int
	Offer   provider.Offer
	// Resources is what to ask the offer's provider for: the task's CPU
	// scaled by the offer's performance.
	Resources phoenix.Resources
	// Alternatives are the other offers that fit this replica under the
	// same rules, cheapest first: where to go if the provider refuses.
	// Planning again on Snapshot.Exclude is the exact way to do it.
	Alternatives []provider.Offer
	Reason       string
}

// Unplaced is what could not be placed.
type Unplaced struct {
	Component phoenix.ComponentID
	Replicas  int
	Reason    string
}

// Place chooses the cheapest set of offers that holds the group under its
// rules. Like Nomad's scheduler it is a pure function of a snapshot: first
// feasibility (does a replica fit an offer at all), then ranking (price,
// then performance, then name), then an exact assignment of replicas to
// offers' free room. It fails only on a malformed group; offers that make
// no sense are skipped with their reason.
func Place(s Snapshot, g Group) (Plan, error) {
	if err := g.validate(); err != nil {
		return Plan{}, err
	}
	offers := rankOffers(s)
	fs := feasibility(g, offers)
	plan := Plan{Component: g.Component}
	if g.Together {
		placeTogether(&plan, g, offers, fs)
	} else {
		sol := solve(g, offers, fs, "")
		sol.emit(&plan, g, offers, fs)
		for i, t := range g.Tasks {
			if short := t.replicas() - sol.placed[i]; short > 0 {
				plan.Unplaced = append(plan.Unplaced, Unplaced{Component: t.Component, Replicas: short,
					Reason: whyShort(t, sol.placed[i], offers, fs[i], "")})
			}
		}
	}
	plan.Reason = summary(plan)
	return plan, nil
}

func (t Task) replicas() int { return max(t.Replicas, 1) }

func (g Group) validate() error {
	if len(g.Tasks) == 0 {
		return errors.New("place: the group has no member to place")
	}
	if g.Zone != "" && !g.Together {
		return fmt.Errorf("place %s: a zone is only for a group kept together", g.Component)
	}
	seen := map[phoenix.ComponentID]bool{}
	for _, t := range g.Tasks {
		if err := t.Component.Validate(); err != nil {
			return fmt.Errorf("place: %w", err)
		}
		if seen[t.Component] {
			return fmt.Errorf("place: %s appears twice in the group", t.Component)
		}
		seen[t.Component] = true
		if t.Replicas < 0 || t.Replicas > MaxReplicas {
			return fmt.Errorf("place %s: %d replicas: use 0 to %d", t.Component, t.Replicas, MaxReplicas)
		}
		if r := t.Resources; r.MilliCPU < 0 || r.MemoryBytes < 0 || r.DiskBytes < 0 {
			return fmt.Errorf("place %s: negative resources %+v", t.Component, r)
		}
	}
	return nil
}

// rankedOffer is an offer with what placement derived from it.
type rankedOffer struct {
	provider.Offer
	key  string
	perf float64
	// bad is why the offer cannot be used at all, "" if it can; broken
	// when that is because the offer makes no sense (not an exclusion).
	bad    string
	broken bool
	cost   cost
}

func (o rankedOffer) unusable() int {
	if o.broken {
		return 1
	}
	return 0
}

// rankOffers checks each offer and sorts them best first: cheapest, then
// fastest, then by key, so that ties break the same way every time.
func rankOffers(s Snapshot) []rankedOffer {
	out := make([]rankedOffer, 0, len(s.Offers))
	seen := map[string]bool{}
	for _, o := range s.Offers {
		r := rankedOffer{Offer: o, key: OfferKey(o), perf: o.Performance}
		if r.perf == 0 {
			r.perf = 1 // not stated: the reference machine
		}
		r.bad = malformed(o, r.perf)
		if r.bad == "" && seen[r.key] {
			r.bad = "a second offer under the same name"
		}
		r.broken = r.bad != ""
		if r.bad == "" && slices.Contains(s.Excluded, r.key) {
			r.bad = "refused a provision since the offers were gathered"
		}
		seen[r.key] = true
		out = append(out, r)
	}
	// Offers that cannot be used at all go last: they are no alternative,
	// and a reason for not choosing them is noise.
	slices.SortStableFunc(out, func(a, b rankedOffer) int {
		return cmp.Or(cmp.Compare(a.unusable(), b.unusable()),
			cmp.Compare(a.PricePerHour, b.PricePerHour), cmp.Compare(b.perf, a.perf), strings.Compare(a.key, b.key))
	})
	for i := range out {
		out[i].cost = cost{price: int64(math.Round(out[i].PricePerHour * 1e6)), rank: int64(i)}
	}
	return out
}

func malformed(o provider.Offer, perf float64) string {
	switch {
	case o.ID == "" || o.Provider == "":
		return "malformed: no id or provider"
	case !(o.PricePerHour >= 0 && o.PricePerHour <= maxPricePerHour):
		return fmt.Sprintf("malformed: price %v per hour", o.PricePerHour)
	case !(perf > 0) || math.IsInf(perf, 0):
		return fmt.Sprintf("malformed: performance %v", o.Performance)
	case o.Free < 0:
		return fmt.Sprintf("malformed: %d free", o.Free)
	case o.Size.MilliCPU < 0 || o.Size.MemoryBytes < 0 || o.Size.DiskBytes < 0:
		return fmt.Sprintf("malformed: negative size %+v", o.Size)
	}
	return ""
}

// feasibility returns, per task and offer, why the task's replica does not
// fit the offer ("" when it fits). Zone rules are not feasibility: they are
// the shape of the assignment.
func feasibility(g Group, offers []rankedOffer) [][]string {
	out := make([][]string, len(g.Tasks))
	for i, t := range g.Tasks {
		out[i] = make([]string, len(offers))
		for j, o := range offers {
			out[i][j] = fits(t, o)
		}
	}
	return out
}

// fits is the feasibility pipeline for one replica on one offer. A size of
// zero in a dimension means the offer does not state it (a local machine's
// disk), and does not constrain it.
func fits(t Task, o rankedOffer) string {
	if o.bad != "" {
		return o.bad
	}
	if o.Free == 0 {
		return "full"
	}
	need := scaled(t.Resources, o.perf)
	switch {
	case o.Size.MilliCPU > 0 && need.MilliCPU > o.Size.MilliCPU:
		return fmt.Sprintf("CPU: needs %dm at performance %.2g, offers %dm", need.MilliCPU, o.perf, o.Size.MilliCPU)
	case o.Size.MemoryBytes > 0 && need.MemoryBytes > o.Size.MemoryBytes:
		return fmt.Sprintf("memory: needs %s, offers %s", bytesIEC(need.MemoryBytes), bytesIEC(o.Size.MemoryBytes))
	case o.Size.DiskBytes > 0 && need.DiskBytes > o.Size.DiskBytes:
		return fmt.Sprintf("disk: needs %s, offers %s", bytesIEC(need.DiskBytes), bytesIEC(o.Size.DiskBytes))
	}
	return ""
}

// scaled is what a replica needs on a machine of the given performance: CPU
// shrinks on a faster machine, memory and disk do not.
func scaled(r phoenix.Resources, perf float64) phoenix.Resources {
	r.MilliCPU = ceilInt(float64(r.MilliCPU) / perf)
	return r
}

// solution is one solved assignment.
type solution struct {
	zone    string
	placed  []int   // per task
	offers  [][]int // per task, per offer: replicas placed there
	first   []int   // per task: offer index of the replica kept in zone (together + spread), -1 if none
	total   cost
	reached bool // every replica that must be in zone is there
}

// arc is an edge into an offer node: whose flow is replicas placed there.
type arc struct{ from, edge, offer int }

// network is the flow network of one placement: source 0 to a node per
// task (and, for a spread task, per task and zone, capacity 1), to the
// offers it fits, to sink 1 with the offers' free room as capacities.
type network struct {
	net *flowNet
	// arcs are each task's edges into offers; firstArcs those of the
	// replica a spread task keeps in the group's zone.
	arcs, firstArcs [][]arc
	// src are each task's edges from the source: [rest, first].
	src [][2]int
}

// solve builds the network for the group, with every replica in zone when
// zone is set (and the later replicas of spread tasks out of it), solves
// it and reads the assignment.
func solve(g Group, offers []rankedOffer, fs [][]string, zone string) solution {
	nw := build(g, offers, fs, zone)
	nw.net.run(0, 1)
	return nw.read(g, offers, zone)
}

func build(g Group, offers []rankedOffer, fs [][]string, zone string) network {
	const src, sink = 0, 1
	nw := network{net: newFlowNet(2), arcs: make([][]arc, len(g.Tasks)), firstArcs: make([][]arc, len(g.Tasks)),
		src: make([][2]int, len(g.Tasks))}
	net := nw.net
	offerNode := make([]int, len(offers))
	for j, o := range offers {
		offerNode[j] = net.node()
		net.addEdge(offerNode[j], sink, min(o.Free, MaxReplicas*len(g.Tasks)), cost{})
	}
	link := func(from, j, capacity int) arc {
		return arc{from, net.addEdge(from, offerNode[j], capacity, offers[j].cost), j}
	}
	for i, t := range g.Tasks {
		n := t.replicas()
		nw.src[i] = [2]int{-1, -1}
		rest, restN := net.node(), n
		if zone != "" && t.Spread {
			first := net.node()
			nw.src[i][1] = net.addEdge(src, first, 1, cost{})
			for j, o := range offers {
				if fs[i][j] == "" && o.Zone == zone {
					nw.firstArcs[i] = append(nw.firstArcs[i], link(first, j, 1))
				}
			}
			restN = n - 1
		}
		nw.src[i][0] = net.addEdge(src, rest, restN, cost{})
		if !t.Spread {
			for j, o := range offers {
				if fs[i][j] == "" && (zone == "" || o.Zone == zone) {
					nw.arcs[i] = append(nw.arcs[i], link(rest, j, n))
				}
			}
			continue
		}
		for _, z := range zonesOf(offers) {
			if z == zone && zone != "" {
				continue
			}
			zn := -1
			for j, o := range offers {
				if fs[i][j] == "" && o.Zone == z {
					if zn < 0 {
						zn = net.node()
						net.addEdge(rest, zn, 1, cost{})
					}
					nw.arcs[i] = append(nw.arcs[i], link(zn, j, 1))
				}
			}
		}
	}
	return nw
}

// read turns the flow into replicas per task and offer.
func (nw network) read(g Group, offers []rankedOffer, zone string) solution {
	sol := solution{zone: zone, placed: make([]int, len(g.Tasks)), offers: make([][]int, len(g.Tasks)),
		first: make([]int, len(g.Tasks)), reached: true}
	for i, t := range g.Tasks {
		sol.offers[i] = make([]int, len(offers))
		sol.first[i] = -1
		for _, a := range nw.firstArcs[i] {
			if nw.net.flow(a.from, a.edge) > 0 {
				sol.first[i] = a.offer
				sol.offers[i][a.offer]++
			}
		}
		for _, a := range nw.arcs[i] {
			sol.offers[i][a.offer] += nw.net.flow(a.from, a.edge)
		}
		for j, k := range sol.offers[i] {
			sol.placed[i] += k
			sol.total = sol.total.add(cost{offers[j].cost.price * int64(k), offers[j].cost.rank * int64(k)})
		}
		if zone == "" {
			continue
		}
		// Every replica of a task kept together, or the first of a spread
		// one, must be in the zone.
		inZone, got := t.replicas(), nw.net.flow(0, nw.src[i][0])
		if t.Spread {
			inZone, got = 1, nw.net.flow(0, nw.src[i][1])
		}
		if got < inZone {
			sol.reached = false
		}
	}
	return sol
}

// zonesOf lists the offers' zones, sorted.
func zonesOf(offers []rankedOffer) []string {
	var zs []string
	for _, o := range offers {
		if !slices.Contains(zs, o.Zone) {
			zs = append(zs, o.Zone)
		}
	}
	slices.Sort(zs)
	return zs
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

// placeTogether tries each zone (or the one the group names) and keeps the
// one that places the most replicas, then the cheapest, then the first by
// name.
func placeTogether(plan *Plan, g Group, offers []rankedOffer, fs [][]string) {
	zones := zonesOf(offers)
	if g.Zone != "" {
		zones = []string{g.Zone}
	}
	var best *solution
	var why []string
	for _, z := range zones {
		if miss := missingIn(z, g, offers, fs); miss != "" {
			why = append(why, fmt.Sprintf("zone %q: %s", z, miss))
			continue
		}
		sol := solve(g, offers, fs, z)
		if !sol.reached {
			why = append(why, fmt.Sprintf("zone %q: %s", z, shortIn(sol, g, offers, fs)))
			continue
		}
		if best == nil || sum(sol.placed) > sum(best.placed) || (sum(sol.placed) == sum(best.placed) && sol.total.less(best.total)) {
			best = &sol
		}
	}
	if best == nil {
		reason := "no single zone holds the whole closure, which is kept together"
		if len(zones) == 0 {
			reason += ": there are no offers"
		} else {
			reason += ": " + strings.Join(why, "; ")
		}
		for _, t := range g.Tasks {
			plan.Unplaced = append(plan.Unplaced, Unplaced{Component: t.Component, Replicas: t.replicas(), Reason: reason})
		}
		return
	}
	plan.Zone = best.zone
	best.emit(plan, g, offers, fs)
	for i, t := range g.Tasks {
		if short := t.replicas() - best.placed[i]; short > 0 {
			plan.Unplaced = append(plan.Unplaced, Unplaced{Component: t.Component, Replicas: short,
				Reason: whyShort(t, best.placed[i], offers, fs[i], best.zone)})
		}
	}
}

// missingIn says which members no offer in the zone fits, "" if each has one.
func missingIn(zone string, g Group, offers []rankedOffer, fs [][]string) string {
	var out []string
	for i, t := range g.Tasks {
		var why []string
		ok := false
		for j, o := range offers {
			if o.Zone != zone {
				continue
			}
			if fs[i][j] == "" {
				ok = true
				break
			}
			why = append(why, o.key+": "+fs[i][j])
		}
		switch {
		case ok:
		case len(why) == 0:
			return "no offer there"
		default:
			out = append(out, fmt.Sprintf("no offer there fits %s (%s)", t.Component, brief(why, 3)))
		}
	}
	return strings.Join(out, ", ")
}

// shortIn says which members the zone's offers had no room left for.
func shortIn(sol solution, g Group, offers []rankedOffer, fs [][]string) string {
	var out []string
	for i, t := range g.Tasks {
		in := t.replicas()
		if t.Spread {
			in = 1
		}
		got := 0
		for j, k := range sol.offers[i] {
			if offers[j].Zone == sol.zone {
				got += k
			}
		}
		if got < in {
			out = append(out, fmt.Sprintf("%s has %d of %d replicas there: %s", t.Component, got, in, roomOf(offers, fs[i], sol.zone)))
		}
	}
	return strings.Join(out, ", ")
}

// roomOf lists the free room of the offers that fit, in the zone if given.
func roomOf(offers []rankedOffer, fsi []string, zone string) string {
	var room []string
	for j, o := range offers {
		if fsi[j] == "" && (zone == "" || o.Zone == zone) {
			room = append(room, fmt.Sprintf("%s has %d free", o.key, o.Free))
		}
	}
	return "the offers that fit are shared with the other members (" + brief(room, 4) + ")"
}

// whyShort explains why a task got fewer replicas than it asked for.
func whyShort(t Task, placed int, offers []rankedOffer, fsi []string, zone string) string {
	var rejected []string
	zones := map[string]bool{}
	feasible := 0
	for j, o := range offers {
		if fsi[j] != "" {
			rejected = append(rejected, o.key+": "+fsi[j])
			continue
		}
		feasible++
		zones[o.Zone] = true
	}
	switch {
	case len(offers) == 0:
		return "there are no offers"
	case feasible == 0:
		return fmt.Sprintf("no offer fits %s CPU, %s memory, %s disk: %s",
			milli(t.Resources.MilliCPU), bytesIEC(t.Resources.MemoryBytes), bytesIEC(t.Resources.DiskBytes), brief(rejected, 4))
	case t.Spread && len(zones) < t.replicas():
		names := make([]string, 0, len(zones))
		for z := range zones {
			names = append(names, fmt.Sprintf("%q", z))
		}
		slices.Sort(names)
		return fmt.Sprintf("%d replicas must be in distinct zones, and only %d zone(s) have an offer that fits (%s); %d placed",
			t.replicas(), len(zones), strings.Join(names, ", "), placed)
	}
	if zone != "" && !t.Spread {
		return fmt.Sprintf("%d of %d placed in zone %q, which keeps the closure together: %s", placed, t.replicas(), zone, roomOf(offers, fsi, zone))
	}
	return fmt.Sprintf("%d of %d placed: %s", placed, t.replicas(), roomOf(offers, fsi, ""))
}

// emit turns the solution into placements with their reasons.
func (sol solution) emit(plan *Plan, g Group, offers []rankedOffer, fs [][]string) {
	for i, t := range g.Tasks {
		counts := slices.Clone(sol.offers[i])
		var idx []int // offer index of each replica
		if sol.first[i] >= 0 {
			idx = append(idx, sol.first[i])
			counts[sol.first[i]]--
		}
		for j, k := range counts {
			for range k {
				idx = append(idx, j)
			}
		}
		for r, j := range idx {
			o := offers[j]
			eligible := func(j2 int) bool { return sol.eligible(t, r, idx, offers, j2) }
			p := Placement{Component: t.Component, Replica: r, Offer: o.Offer, Resources: scaled(t.Resources, o.perf)}
			var skipped []string
			for j2, o2 := range offers {
				switch {
				case j2 == j:
				case j2 < j && fs[i][j2] != "":
					skipped = append(skipped, o2.key+": "+fs[i][j2])
				case j2 < j && !eligible(j2):
					skipped = append(skipped, fmt.Sprintf("%s: zone %q, against the rules", o2.key, o2.Zone))
				case j2 < j:
					skipped = append(skipped, o2.key+": its room went to other replicas")
				case fs[i][j2] == "" && eligible(j2) && len(p.Alternatives) < 5:
					p.Alternatives = append(p.Alternatives, o2.Offer)
				}
			}
			p.Reason = fmt.Sprintf("%s at %.4f/h in zone %q (performance %.2g): asks %s CPU, %s memory, %s disk",
				o.key, o.PricePerHour, o.Zone, o.perf, milli(p.Resources.MilliCPU), bytesIEC(p.Resources.MemoryBytes), bytesIEC(p.Resources.DiskBytes))
			p.Reason += sol.rule(t, r, len(idx))
			if len(skipped) == 0 {
				p.Reason += "; the best ranked offer"
			} else {
				p.Reason += "; better ranked but not chosen: " + brief(skipped, 3)
			}
			plan.Placements = append(plan.Placements, p)
			plan.PricePerHour += o.PricePerHour
		}
	}
}

// eligible is whether offer j2 could hold replica r of t under the zone
// rules, the other replicas staying where they are.
func (sol solution) eligible(t Task, r int, idx []int, offers []rankedOffer, j2 int) bool {
	z := offers[j2].Zone
	if sol.zone != "" && (!t.Spread || r == 0) {
		return z == sol.zone
	}
	if !t.Spread {
		return true
	}
	if sol.zone != "" && z == sol.zone {
		return false
	}
	for r2, j := range idx {
		if r2 != r && offers[j].Zone == z {
			return false
		}
	}
	return true
}

func (sol solution) rule(t Task, r, n int) string {
	switch {
	case sol.zone != "" && (!t.Spread || r == 0):
		return fmt.Sprintf("; zone %q keeps the closure together", sol.zone)
	case t.Spread:
		return fmt.Sprintf("; replica %d of %d, spread: one zone per replica", r+1, n)
	}
	return ""
}

func summary(p Plan) string {
	var b strings.Builder
	offers := map[string]bool{}
	for _, pl := range p.Placements {
		offers[OfferKey(pl.Offer)] = true
	}
	fmt.Fprintf(&b, "%d replica(s) on %d offer(s) for %.4f/h", len(p.Placements), len(offers), p.PricePerHour)
	if p.Zone != "" {
		fmt.Fprintf(&b, ", the closure kept together in zone %q", p.Zone)
	}
	for _, u := range p.Unplaced {
		fmt.Fprintf(&b, "; %s: %d replica(s) not placed: %s", u.Component, u.Replicas, u.Reason)
	}
	return b.String()
}

// brief joins at most n items and counts the rest.
func brief(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, "; ")
	}
	return strings.Join(items[:n], "; ") + fmt.Sprintf("; and %d more", len(items)-n)
}
