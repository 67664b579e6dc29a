package control

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/store"
)

// releases is a provider that records what it is asked to release; the
// IDs in failing fail their next release, once each.
type releases struct {
	scripted
	mu       sync.Mutex
	released []string
	failing  map[string]bool
}

func (r *releases) Release(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failing[id] {
		delete(r.failing, id)
		return errors.New("provider unreachable")
	}
	r.released = append(r.released, id)
	return nil
}

// TestReleaseStrayScaled: the scaled replicas recorded for an allocation
// that no longer scales (released, failed back, its release cut short by a
// kill) are released and forgotten; those of the allocation a component is
// switched to are left for its scaler to adopt, and those of an allocation
// a scaler still runs for are left to it.
func TestReleaseStrayScaled(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "phoenix.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, a := range []phoenix.Allocation{
		{ID: "orders-1", Component: "orders", Phase: phoenix.PhaseReleased},
		{ID: "orders-2", Component: "orders", Phase: phoenix.PhaseSwitched},
	} {
		if err := st.PutAllocation(a); err != nil {
			t.Fatal(err)
		}
		if err := st.PutScaled(a.ID, []string{a.ID + "-scale-1", a.ID + "-scale-2"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.PutScaled("orders-0", []string{"orders-0-scale-1"}); err != nil {
		t.Fatal(err)
	}
	p := &releases{}
	c := &Controller{deps: Deps{Provider: p}, store: st, log: slog.New(slog.DiscardHandler),
		order: []phoenix.ComponentID{"orders"},
		comps: map[phoenix.ComponentID]*compState{"orders": {switched: &phoenix.Allocation{ID: "orders-2", Component: "orders"}}},
		// orders-0's scaler still runs (switched away from, not yet stopped): its replicas are its own
		scalers: map[phoenix.ComponentID]*runningScaler{"cart": {alloc: "orders-0"}}}
	c.releaseStrayScaled(context.Background())
	if want := []string{"orders-1-scale-1", "orders-1-scale-2"}; !slices.Equal(p.released, want) {
		t.Errorf("released %v, want %v", p.released, want)
	}
	for alloc, want := range map[string]int{"orders-0": 1, "orders-1": 0, "orders-2": 2} {
		if ids, err := st.Scaled(alloc); err != nil || len(ids) != want {
			t.Errorf("recorded for %s: %v (%v), want %d", alloc, ids, err, want)
		}
	}
}

// TestStrayScaledRetried: a stray scaled replica whose release fails stays
// recorded, is reported once, and is released by a later sweep; a sweep
// that is not due yet does nothing.
func TestStrayScaledRetried(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "phoenix.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.PutAllocation(phoenix.Allocation{ID: "orders-1", Component: "orders", Phase: phoenix.PhaseReleased}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutScaled("orders-1", []string{"orders-1-scale-1", "orders-1-scale-2"}); err != nil {
		t.Fatal(err)
	}
	p := &releases{failing: map[string]bool{"orders-1-scale-1": true}}
	now := time.Unix(1000, 0)
	c := &Controller{deps: Deps{Provider: p}, store: st, log: slog.New(slog.DiscardHandler), now: func() time.Time { return now },
		order: []phoenix.ComponentID{"orders"}, comps: map[phoenix.ComponentID]*compState{"orders": {}}}

	c.releaseStrayScaled(context.Background()) // at startup
	c.nextStray = now.Add(strayRetry)
	if ids, _ := st.Scaled("orders-1"); !slices.Equal(ids, []string{"orders-1-scale-1"}) {
		t.Fatalf("recorded after the failed release: %v, want [orders-1-scale-1]", ids)
	}
	var wg sync.WaitGroup
	c.sweepStrayScaled(context.Background(), now.Add(strayRetry/2), &wg) // not due
	wg.Wait()
	if ids, _ := st.Scaled("orders-1"); len(ids) != 1 {
		t.Fatalf("a sweep ran before it was due: recorded %v", ids)
	}
	c.sweepStrayScaled(context.Background(), now.Add(strayRetry), &wg)
	wg.Wait()
	if ids, _ := st.Scaled("orders-1"); len(ids) != 0 {
		t.Errorf("recorded after the retry: %v, want none", ids)
	}
	if want := []string{"orders-1-scale-2", "orders-1-scale-1"}; !slices.Equal(p.released, want) {
		t.Errorf("released %v, want %v", p.released, want)
	}
	events, err := st.Events(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].Kind != phoenix.EventError || events[0].Component != "orders" {
		t.Errorf("events %+v, want the one failed release of orders' replica reported", events)
	}
}
