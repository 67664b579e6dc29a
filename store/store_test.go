package store_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/store"
)

func open(t *testing.T, path string) *store.Store {
	t.Helper()
	s, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestEventsSurviveReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "phoenix.db")
	s := open(t, path)
	for i := range 5 {
		e, err := s.Append(phoenix.Event{Kind: phoenix.EventPredicted, Component: "orders", Message: "m" + string(rune('0'+i))})
		if err != nil {
			t.Fatal(err)
		}
		if e.Seq != uint64(i+1) {
			t.Fatalf("seq %d, want %d", e.Seq, i+1)
		}
	}
	a := phoenix.Allocation{ID: "orders-1", Component: "orders", Phase: phoenix.PhasePrewarmed,
		Members: []phoenix.Member{{Component: "orders", InstanceID: "orders-1.orders"}}}
	if err := s.PutAllocation(a); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = open(t, path)
	defer s.Close()
	evs, err := s.Events(2, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Seq != 3 || evs[1].Message != "m3" {
		t.Fatalf("Events(2, 2) = %+v", evs)
	}
	e, _ := s.Append(phoenix.Event{Kind: phoenix.EventSwitched})
	if e.Seq != 6 {
		t.Fatalf("sequence restarted after reopen: %d", e.Seq)
	}
	as, err := s.Allocations()
	if err != nil || len(as) != 1 || as[0].Phase != phoenix.PhasePrewarmed || as[0].Members[0].InstanceID != "orders-1.orders" {
		t.Fatalf("Allocations = %+v, %v", as, err)
	}
	n1, _ := s.NextID("x")
	n2, _ := s.NextID("x")
	if n2 != n1+1 {
		t.Fatalf("NextID %d then %d", n1, n2)
	}
}

func TestWaitWakesOnAppend(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "phoenix.db"))
	defer s.Close()
	got := make(chan []phoenix.Event, 1)
	go func() {
		evs, _ := s.Wait(context.Background(), 0, 10)
		got <- evs
	}()
	if _, err := s.Append(phoenix.Event{Kind: phoenix.EventStarted, Message: "hello"}); err != nil {
		t.Fatal(err)
	}
	select {
	case evs := <-got:
		if len(evs) != 1 || evs[0].Message != "hello" {
			t.Fatalf("Wait returned %+v", evs)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not wake on Append")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Wait(ctx, 1, 10); err == nil {
		t.Fatal("Wait with a cancelled context and no new event returned no error")
	}
}

func TestSecondOpenIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "phoenix.db")
	s := open(t, path)
	defer s.Close()
	_, err := store.Open(path)
	if err == nil || !strings.Contains(err.Error(), "another phoenix daemon") {
		t.Fatalf("second Open: %v", err)
	}
}

func TestScaledSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "phoenix.db")
	s := open(t, path)
	steps := []struct {
		alloc string
		ids   []string
	}{
		{"orders-1", []string{"orders-1-scale-1"}},
		{"orders-1", []string{"orders-1-scale-1", "orders-1-scale-2"}},
		{"cart-3", []string{"cart-3-scale-4"}},
		{"cart-3", nil}, // all released
	}
	for _, st := range steps {
		if err := s.PutScaled(st.alloc, st.ids); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()

	s = open(t, path)
	defer s.Close()
	for alloc, want := range map[string][]string{
		"orders-1": {"orders-1-scale-1", "orders-1-scale-2"},
		"cart-3":   nil,
		"never":    nil,
	} {
		got, err := s.Scaled(alloc)
		if err != nil || strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("Scaled(%s) = %v, %v; want %v", alloc, got, err, want)
		}
	}
	// Only the allocations with replicas left are listed: not cart-3, all
	// of whose were released, nor the counters beside them.
	if _, err := s.NextID("allocation"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ScaledAllocations(); err != nil || strings.Join(got, ",") != "orders-1" {
		t.Errorf("ScaledAllocations() = %v, %v; want [orders-1]", got, err)
	}
}
