package allocate_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/allocate"
	"github.com/phoenixsre/phoenix/provider"
)

// byteReader hands out bytes of the fuzz input, then zeros.
type byteReader []byte

func (b *byteReader) next(n int) int {
	if len(*b) == 0 {
		return 0
	}
	v := int((*b)[0]) % n
	*b = (*b)[1:]
	return v
}

// decodeInstance turns fuzz bytes into a small placement problem: up to 5
// offers over 3 zones and up to 5 replicas, small enough to solve by
// trying every assignment.
func decodeInstance(data []byte) (allocate.Snapshot, allocate.Group) {
	r := byteReader(data)
	var s allocate.Snapshot
	for i := range r.next(5) + 1 {
		s.Offers = append(s.Offers, provider.Offer{
			ID: fmt.Sprintf("o%d", i), Provider: "p", Zone: string(rune('a' + r.next(3))),
			PricePerHour: float64(r.next(5)) / 100, Performance: float64(r.next(2) + 1), Free: r.next(3),
			Size: phoenix.Resources{MilliCPU: int64(r.next(4)) * 500, MemoryBytes: int64(r.next(4)) * 512 * mib},
		})
	}
	g := allocate.Group{Component: "c0", Together: r.next(2) == 1}
	units := 0
	for i := range r.next(3) + 1 {
		t := allocate.Task{Component: phoenix.ComponentID(fmt.Sprintf("c%d", i)),
			Resources: phoenix.Resources{MilliCPU: int64(r.next(4)) * 300, MemoryBytes: int64(r.next(4)) * 300 * mib},
			Replicas:  r.next(3) + 1, Spread: r.next(2) == 1}
		t.Replicas = min(t.Replicas, 5-units)
		if t.Replicas == 0 {
			break
		}
		units += t.Replicas
		g.Tasks = append(g.Tasks, t)
	}
	return s, g
}

func fitsOffer(t allocate.Task, o provider.Offer) bool {
	cpu := int64(math.Ceil(float64(t.Resources.MilliCPU) / o.Performance))
	return o.Free > 0 && (o.Size.MilliCPU == 0 || cpu <= o.Size.MilliCPU) && (o.Size.MemoryBytes == 0 || t.Resources.MemoryBytes <= o.Size.MemoryBytes)
}

// bruteForce tries every assignment of replicas to offers (or to nothing)
// and returns the most replicas that can be placed under the rules, and the
// lowest price (in cents) that places that many. For a group kept together,
// an assignment counts only if some zone holds every replica that must be in
// it; with none, it returns -1.
func bruteForce(s allocate.Snapshot, g allocate.Group) (int, int) {
	type unit struct{ task, replica int }
	var units []unit
	for i, t := range g.Tasks {
		for r := range t.Replicas {
			units = append(units, unit{i, r})
		}
	}
	choice := make([]int, len(units))
	bestN, bestCost := -1, 0
	var walk func(k int)
	valid := func() (int, int, bool) {
		used := make([]int, len(s.Offers))
		n, c := 0, 0
		for k, j := range choice {
			if j < 0 {
				continue
			}
			if !fitsOffer(g.Tasks[units[k].task], s.Offers[j]) {
				return 0, 0, false
			}
			used[j]++
			if used[j] > s.Offers[j].Free {
				return 0, 0, false
			}
			n++
			c += int(math.Round(s.Offers[j].PricePerHour * 100))
		}
		for i, t := range g.Tasks {
			zones := map[string]int{}
			for k, j := range choice {
				if units[k].task == i && j >= 0 {
					zones[s.Offers[j].Zone]++
				}
			}
			if t.Spread {
				for _, m := range zones {
					if m > 1 {
						return 0, 0, false
					}
				}
			}
		}
		if !g.Together {
			return n, c, true
		}
		for _, zone := range []string{"a", "b", "c"} {
			ok := true
			for i, t := range g.Tasks {
				in := 0
				for k, j := range choice {
					if units[k].task == i && j >= 0 && s.Offers[j].Zone == zone {
						in++
					}
				}
				if t.Spread && in != 1 || !t.Spread && (in != t.Replicas) {
					ok = false
				}
			}
			if ok {
				return n, c, true
			}
		}
		return 0, 0, false
	}
	walk = func(k int) {
		if k == len(units) {
			if n, c, ok := valid(); ok && (n > bestN || n == bestN && c < bestCost) {
				bestN, bestCost = n, c
			}
			return
		}
		for j := -1; j < len(s.Offers); j++ {
			choice[k] = j
			walk(k + 1)
		}
	}
	walk(0)
	return bestN, bestCost
}

// FuzzPlace checks Place against exhaustive search on small snapshots: it
// must place as many replicas as can be placed, at the lowest price, and
// never break a rule or an offer's room.
func FuzzPlace(f *testing.F) {
	f.Add([]byte{4, 0, 1, 0, 2, 3, 3, 1, 2, 1, 1, 2, 2, 2, 2, 1, 1, 1, 1, 3, 3, 0, 2, 2, 3, 1, 1, 1, 2, 2, 2, 1})
	f.Add([]byte{2, 0, 0, 1, 2, 1, 1, 1, 1, 3, 0, 1, 2, 0, 2, 1, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		s, g := decodeInstance(data)
		p, err := allocate.Place(s, g)
		if err != nil {
			t.Fatalf("Place: %v", err)
		}
		wantN, wantCost := bruteForce(s, g)
		if wantN < 0 {
			if len(p.Placements) != 0 {
				t.Fatalf("no assignment keeps the group together, yet Place placed %v", placed(p))
			}
			return
		}
		gotCost := 0
		used := map[string]int{}
		zones := map[phoenix.ComponentID]map[string]bool{}
		for _, pl := range p.Placements {
			gotCost += int(math.Round(pl.Offer.PricePerHour * 100))
			used[allocate.OfferKey(pl.Offer)]++
			if used[allocate.OfferKey(pl.Offer)] > pl.Offer.Free {
				t.Fatalf("offer %s over its room: %v", allocate.OfferKey(pl.Offer), placed(p))
			}
			var tk allocate.Task
			for _, x := range g.Tasks {
				if x.Component == pl.Component {
					tk = x
				}
			}
			if !fitsOffer(tk, pl.Offer) {
				t.Fatalf("%s placed on %s, which it does not fit", pl.Component, allocate.OfferKey(pl.Offer))
			}
			if zones[pl.Component] == nil {
				zones[pl.Component] = map[string]bool{}
			}
			if tk.Spread && zones[pl.Component][pl.Offer.Zone] {
				t.Fatalf("spread %s twice in zone %s", pl.Component, pl.Offer.Zone)
			}
			zones[pl.Component][pl.Offer.Zone] = true
			if g.Together && (!tk.Spread || pl.Replica == 0) && pl.Offer.Zone != p.Zone {
				t.Fatalf("together, but %s#%d is in %s, not %s", pl.Component, pl.Replica, pl.Offer.Zone, p.Zone)
			}
		}
		unplaced := 0
		for _, u := range p.Unplaced {
			unplaced += u.Replicas
		}
		total := 0
		for _, tk := range g.Tasks {
			total += tk.Replicas
		}
		if len(p.Placements)+unplaced != total {
			t.Fatalf("%d placed + %d unplaced != %d replicas", len(p.Placements), unplaced, total)
		}
		if len(p.Placements) != wantN || gotCost != wantCost {
			t.Fatalf("Place placed %d for %d cents: %v\nexhaustive search: %d for %d cents\nsnapshot %+v\ngroup %+v",
				len(p.Placements), gotCost, placed(p), wantN, wantCost, s.Offers, g)
		}
	})
}
