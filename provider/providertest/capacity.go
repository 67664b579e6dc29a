package providertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/provider"
)

// testConcurrent: concurrent Provisions of one ID, as a retried request
// racing its original would make, start one instance.
func testConcurrent(t *testing.T, h Harness) {
	p := h.New(t)
	s := spec(t, h)
	t.Cleanup(func() { _ = p.Release(context.Background(), s.ID) })
	const n = 4
	var wg sync.WaitGroup
	insts := make([]provider.Instance, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { insts[i], errs[i] = p.Provision(ctx(t), s) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("concurrent Provision %d: %v", i, errs[i])
		}
		if insts[i].Detail != insts[0].Detail || insts[i].Addr != insts[0].Addr {
			t.Fatalf("concurrent Provisions started several instances: %+v and %+v", insts[0], insts[i])
		}
	}
	waitHealthy(t, insts[0])
}

// largest is the most any one offer could ever fit: its size times one
// more than its free count.
func largest(offers []provider.Offer) phoenix.Resources {
	var r phoenix.Resources
	for _, o := range offers {
		k := int64(o.Free) + 1
		r.MilliCPU = max(r.MilliCPU, o.Size.MilliCPU*k)
		r.MemoryBytes = max(r.MemoryBytes, o.Size.MemoryBytes*k)
	}
	return r
}

// testRefusesBeyondCapacity: a spec no offer can fit is refused with
// ErrNoCapacity (so the allocator tries the next offer), leaves nothing
// behind, and does not stop the provider from placing what fits.
func testRefusesBeyondCapacity(t *testing.T, h Harness) {
	if !h.EnforcesCapacity {
		t.Skip("the provider does not enforce capacity (Harness.EnforcesCapacity is false)")
	}
	p := h.New(t)
	offers, err := p.Offers(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	big := spec(t, h)
	big.ID += "-big"
	l := largest(offers)
	big.Resources = phoenix.Resources{MilliCPU: l.MilliCPU + 1000, MemoryBytes: l.MemoryBytes + 1<<30}
	if _, err := p.Provision(ctx(t), big); !errors.Is(err, provider.ErrNoCapacity) {
		_ = p.Release(context.Background(), big.ID)
		t.Fatalf("Provision of %+v beyond every offer (%+v): %v, want ErrNoCapacity", big.Resources, offers, err)
	}
	if _, err := p.Status(ctx(t), big.ID); !errors.Is(err, provider.ErrNotFound) {
		t.Fatalf("a refused spec left an instance behind: Status = %v", err)
	}
	provision(t, p, spec(t, h))
}

// testOffersCountWhatRuns: an offer's Free drops by one per instance of its
// size; once it is 0 the next such instance is refused with ErrNoCapacity,
// and releasing one makes room again.
func testOffersCountWhatRuns(t *testing.T, h Harness) {
	if !h.EnforcesCapacity {
		t.Skip("the provider does not enforce capacity (Harness.EnforcesCapacity is false)")
	}
	p := h.New(t)
	free := func() provider.Offer {
		t.Helper()
		offers, err := p.Offers(ctx(t))
		if err != nil || len(offers) == 0 {
			t.Fatalf("Offers: %v, %v", offers, err)
		}
		return offers[0]
	}
	o := free()
	if o.Free < 2 || o.Free > 8 {
		t.Fatalf("offer %s has Free %d; the harness must make it 2 to 8 so the suite can fill it", o.ID, o.Free)
	}
	base := spec(t, h)
	at := func(i int) provider.Spec {
		s := base
		s.ID = fmt.Sprintf("%s-%d", base.ID, i)
		s.Offer, s.Resources = o.ID, o.Size
		return s
	}
	n := o.Free
	for i := range n {
		s := at(i)
		if _, err := p.Provision(ctx(t), s); err != nil {
			t.Fatalf("Provision %d of %d on %s: %v", i+1, n, o.ID, err)
		}
		t.Cleanup(func() { _ = p.Release(context.Background(), s.ID) })
		if got := free().Free; got != n-i-1 {
			t.Fatalf("after %d instances Free = %d, want %d", i+1, got, n-i-1)
		}
	}
	over := at(n)
	if _, err := p.Provision(ctx(t), over); !errors.Is(err, provider.ErrNoCapacity) {
		_ = p.Release(context.Background(), over.ID)
		t.Fatalf("Provision beyond a full offer: %v, want ErrNoCapacity", err)
	}
	if err := p.Release(ctx(t), at(0).ID); err != nil {
		t.Fatal(err)
	}
	if got := free().Free; got != 1 {
		t.Fatalf("after a Release Free = %d, want 1", got)
	}
	provision(t, p, over)
}
