package traffic

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestMetrics(t *testing.T) {
	primary := startBackend(t, "orders@primary")
	standby := startBackend(t, "orders@standby")
	reg := prometheus.NewRegistry()
	p := startProxy(t, Config{Registerer: reg}, primary.backend())
	sb := standby.backend()
	if err := p.SetStandby(&sb); err != nil {
		t.Fatal(err)
	}
	get := func() {
		resp, err := http.Get("http://" + p.Addr().String() + "/who")
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
	}
	get()
	if err := p.Switch(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	get()

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var parts []string
			for _, l := range m.GetLabel() {
				parts = append(parts, l.GetName()+`="`+l.GetValue()+`"`)
			}
			// The getters are nil-safe: a counter has no gauge value.
			got[f.GetName()+"{"+strings.Join(parts, ",")+"}"] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	for series, want := range map[string]float64{
		`phoenix_traffic_requests_total{backend="orders@primary",component="orders",outcome="ok"}`: 1,
		`phoenix_traffic_requests_total{backend="orders@standby",component="orders",outcome="ok"}`: 1,
		`phoenix_traffic_switches_total{component="orders",result="ok"}`:                           1,
		`phoenix_traffic_backend_healthy{backend="orders@standby",component="orders"}`:             1,
		`phoenix_traffic_held_requests{component="orders"}`:                                        0,
	} {
		if v, ok := got[series]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", series, v, ok, want)
		}
	}
	if _, ok := got[`phoenix_traffic_backend_healthy{backend="orders@primary",component="orders"}`]; ok {
		t.Errorf("the dropped primary still has a health series")
	}

	if _, err := New(Config{Component: "orders", Registerer: reg}, primary.backend()); err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Errorf("second proxy for the same component on one registry: err = %v, want already registered", err)
	}
	// Another component's proxy shares the registry (startProxy fails the
	// test if New does).
	startProxy(t, Config{Component: "payments", Registerer: reg}, primary.backend())
}
