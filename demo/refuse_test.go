package demo

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/provider"
)

// spotProvider puts a cheaper offer, "spot", in front of a real provider's
// offers. The spot offer lists room but refuses every instance with
// provider.ErrNoCapacity, as a spot market does when it runs dry between
// listing and asking; every other offer goes to the real provider.
type spotProvider struct {
	provider.Provider
	// full is a component that no offer has room for.
	full     phoenix.ComponentID
	mu       sync.Mutex
	tried    []string // "instance@offer", in the order Provision was asked
	released []string
}

func (s *spotProvider) Offers(ctx context.Context) ([]provider.Offer, error) {
	offers, err := s.Provider.Offers(ctx)
	if err != nil || len(offers) == 0 {
		return offers, err
	}
	for i := range offers {
		offers[i].PricePerHour += 0.10
	}
	spot := offers[0]
	spot.ID, spot.Zone, spot.PricePerHour = "spot", "spot", 0.03
	return append([]provider.Offer{spot}, offers...), nil
}

func (s *spotProvider) Provision(ctx context.Context, spec provider.Spec) (provider.Instance, error) {
	s.mu.Lock()
	s.tried = append(s.tried, spec.ID+"@"+spec.Offer)
	s.mu.Unlock()
	if spec.Offer == "spot" || spec.Component == s.full {
		return provider.Instance{}, fmt.Errorf("offer %s has no room for %s: %w", spec.Offer, spec.ID, provider.ErrNoCapacity)
	}
	return s.Provider.Provision(ctx, spec)
}

func (s *spotProvider) Release(ctx context.Context, id string) error {
	s.mu.Lock()
	s.released = append(s.released, id)
	s.mu.Unlock()
	return s.Provider.Release(ctx, id)
}

// TestRefusedOfferLeadsToTheNextOffer: when the cheapest offer refuses for
// lack of room, each replica goes to the next offer, the refusal is in the
// event log, and the failure is still survived with nothing lost.
func TestRefusedOfferLeadsToTheNextOffer(t *testing.T) {
	if testing.Short() {
		t.Skip("a scenario of about 30 s; not in -short mode")
	}
	var tl bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	spot := &spotProvider{}
	sum, err := Run(ctx, Options{Scenario: "leak", Executable: phoenixBin, Timeline: &tl,
		wrapProvider: func(p provider.Provider) provider.Provider { spot.Provider = p; return spot }})
	t.Logf("timeline:\n%s", tl.String())
	if err != nil {
		t.Fatal(err)
	}
	spot.mu.Lock()
	tried := append([]string(nil), spot.tried...)
	spot.mu.Unlock()
	t.Logf("provision calls: %v", tried)

	// Every replica was asked of the spot offer first, then of the real one.
	asked := map[string][]string{}
	for _, c := range tried {
		id, offer, _ := strings.Cut(c, "@")
		asked[id] = append(asked[id], offer)
	}
	if len(asked) == 0 {
		t.Fatal("no replica was provisioned")
	}
	for id, offers := range asked {
		if len(offers) < 2 || offers[0] != "spot" || offers[1] == "spot" {
			t.Errorf("%s was asked of offers %v, want spot first and then another", id, offers)
		}
		if !strings.Contains(tl.String(), "offer spot refused "+id) {
			t.Errorf("the event log has no refusal of %s by the spot offer", id)
		}
	}
	if sum.PrewarmedAt == nil || sum.FailedAt == nil || !sum.PrewarmedAt.Before(*sum.FailedAt) {
		t.Errorf("prewarmed_at %v, failed_at %v: want a replica ready before the failure", sum.PrewarmedAt, sum.FailedAt)
	}
	if !sum.Switched || sum.RequestsFailed != 0 || sum.KeysLost != 0 {
		t.Errorf("switched %v, %d requests failed (%v), %d keys lost: want a switch with nothing failed or lost",
			sum.Switched, sum.RequestsFailed, sum.FailureReasons, sum.KeysLost)
	}
}

// TestUnplaceableClosureIsRolledBack: when one member of the closure fits
// no offer, what was placed is released, the event log says why, and the
// pre-warm is not retried over and over on risk alone.
func TestUnplaceableClosureIsRolledBack(t *testing.T) {
	if testing.Short() {
		t.Skip("a scenario of about 30 s; not in -short mode")
	}
	var tl bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	spot := &spotProvider{full: "orders"}
	sum, err := Run(ctx, Options{Scenario: "false-alarm", Executable: phoenixBin, Timeline: &tl,
		wrapProvider: func(p provider.Provider) provider.Provider { spot.Provider = p; return spot }})
	t.Logf("timeline:\n%s", tl.String())
	if err != nil {
		t.Fatal(err)
	}
	spot.mu.Lock()
	tried, released := append([]string(nil), spot.tried...), append([]string(nil), spot.released...)
	spot.mu.Unlock()
	t.Logf("provision calls: %v; releases: %v", tried, released)

	out := tl.String()
	if n := strings.Count(out, "] planned "); n != 1 {
		t.Errorf("%d allocations planned, want 1: a failed pre-warm must not be retried at once on risk alone", n)
	}
	if !strings.Contains(out, "orders-1 failed and was rolled back (released orders-1.inventory;") {
		t.Error("the event log does not say that the allocation was rolled back and what was released")
	}
	if !strings.Contains(out, "no other offer fits orders") {
		t.Error("the event log does not say why orders could not be placed")
	}
	if !slices.Contains(tried, "orders-1.inventory@local") || !slices.Contains(released, "orders-1.inventory") {
		t.Errorf("inventory's replica was not placed and then released (provisions %v, releases %v)", tried, released)
	}
	if sum.PrewarmedAt != nil || sum.Switched || sum.RequestsFailed != 0 {
		t.Errorf("prewarmed_at %v, switched %v, %d requests failed: want no replica, no switch, nothing failed",
			sum.PrewarmedAt, sum.Switched, sum.RequestsFailed)
	}
}
