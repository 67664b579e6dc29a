package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/provider"
)

// scripted is a provider whose offers are fixed and whose Provision answers
// from a script, one error per call (nil: success), counting the calls.
type scripted struct {
	offers []provider.Offer
	script []error
	calls  int
}

func (s *scripted) Offers(context.Context) ([]provider.Offer, error) { return s.offers, nil }

func (s *scripted) Provision(_ context.Context, spec provider.Spec) (provider.Instance, error) {
	s.calls++
	if s.calls <= len(s.script) && s.script[s.calls-1] != nil {
		return provider.Instance{}, s.script[s.calls-1]
	}
	return provider.Instance{ID: spec.ID, Addr: "127.0.0.1:1"}, nil
}

func (s *scripted) Status(context.Context, string) (provider.Instance, error) {
	return provider.Instance{}, provider.ErrNotFound
}

func (s *scripted) Release(context.Context, string) error { return nil }

func TestProvisionRetries(t *testing.T) {
	flaky := errors.New("API: 503 Service Unavailable")
	tests := []struct {
		name      string
		script    []error
		wantCalls int
		wantErr   error // nil: success
	}{
		{"first attempt works", nil, 1, nil},
		{"a transient failure is retried", []error{flaky}, 2, nil},
		{"a persistent failure gives up after three attempts", []error{flaky, flaky, flaky, flaky}, 3, flaky},
		{"no room: the caller tries another offer at once", []error{provider.ErrNoCapacity}, 1, provider.ErrNoCapacity},
		{"an invalid spec is not retried", []error{fmt.Errorf("empty command: %w", provider.ErrInvalidSpec)}, 1, provider.ErrInvalidSpec},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &scripted{script: tt.script}
			c := &Controller{deps: Deps{Provider: p}, log: slog.New(slog.DiscardHandler)}
			_, err := c.provision(t.Context(), provider.Spec{ID: "orders-1.orders"})
			if p.calls != tt.wantCalls {
				t.Errorf("%d calls to Provision, want %d", p.calls, tt.wantCalls)
			}
			switch {
			case tt.wantErr == nil && err != nil:
				t.Errorf("provision: %v, want success", err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Errorf("provision: %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestReplaceSkipsTriedOffers(t *testing.T) {
	size := phoenix.Resources{MilliCPU: 1000, MemoryBytes: 1 << 30}
	offer := func(id string, price float64) provider.Offer {
		return provider.Offer{ID: id, Provider: "cloud", Zone: "z1", Size: size, PricePerHour: price, Performance: 1, Free: 4}
	}
	offers := []provider.Offer{offer("spot", 0.01), offer("small", 0.05), offer("large", 0.20)}
	tests := []struct {
		tried   []string
		want    string // "" : no offer left
		wantErr string
	}{
		{nil, "spot", ""},
		{[]string{"spot"}, "small", ""},
		{[]string{"spot", "small"}, "large", ""},
		{[]string{"spot", "small", "large"}, "", "no offer fits"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.tried), func(t *testing.T) {
			c := &Controller{deps: Deps{Provider: &scripted{offers: offers}}}
			m := &phoenix.Member{Component: "orders", Offer: "spot", Resources: phoenix.Resources{MilliCPU: 500, MemoryBytes: 256 << 20}}
			err := c.replace(t.Context(), m, tt.tried)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("replace: %v, want an error saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.Offer != tt.want {
				t.Errorf("next offer %q, want %q", m.Offer, tt.want)
			}
		})
	}
}
