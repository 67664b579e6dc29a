package control

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/store"
)

// releases is a provider that records what it is asked to release.
type releases struct {
	scripted
	mu       sync.Mutex
	released []string
}

func (r *releases) Release(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.released = append(r.released, id)
	return nil
}

// TestReleaseStrayScaled: at startup, the scaled replicas recorded for an
// allocation that no longer scales (released, failed back, its release cut
// short by a kill) are released and forgotten; those of the allocation a
// component is switched to are left for its scaler to adopt.
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
	p := &releases{}
	c := &Controller{deps: Deps{Provider: p}, store: st, log: slog.New(slog.DiscardHandler),
		order: []phoenix.ComponentID{"orders"},
		comps: map[phoenix.ComponentID]*compState{"orders": {switched: &phoenix.Allocation{ID: "orders-2", Component: "orders"}}}}
	c.releaseStrayScaled()
	if want := []string{"orders-1-scale-1", "orders-1-scale-2"}; !slices.Equal(p.released, want) {
		t.Errorf("released %v, want %v", p.released, want)
	}
	for alloc, want := range map[string]int{"orders-1": 0, "orders-2": 2} {
		if ids, err := st.Scaled(alloc); err != nil || len(ids) != want {
			t.Errorf("recorded for %s: %v (%v), want %d", alloc, ids, err, want)
		}
	}
}
