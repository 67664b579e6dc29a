package telemetry

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/phoenixsre/phoenix"
)

// A scrape of a real target process lands in the store as Prometheus
// would store it, and the derived signals beside it.
func TestScrapeIntoStore(t *testing.T) {
	proc := startTarget(t, "", targetInitEnv+"=requests=10&errors=1&latency=0.2&disk=42")
	store := openTestStore(t, StoreConfig{})
	rec := &recorder{}
	s := NewScraper(Config{Interval: 50 * time.Millisecond, Timeout: 5 * time.Second, Signals: demoSignals(),
		OnSample: rec.add, Storage: store}, store)
	s.SetTargets([]Target{{Component: "orders", Environment: phoenix.Primary, URL: proc.URL + "/metrics"}})
	runScraper(t, s)
	smp, _ := rec.waitSample(t, 0, "a sample with a rate", has(phoenix.SignalRate))

	eq := func(name, v string) *labels.Matcher { return labels.MustNewMatcher(labels.MatchEqual, name, v) }
	disk := seriesPoints(t, store, eq(labels.MetricName, "shop_disk_used_bytes"))
	if pts := disk[`{__name__="shop_disk_used_bytes", component="orders", environment="primary"}`]; len(pts) == 0 || pts[0].V != 42 {
		t.Errorf("disk gauge stored as %v", disk)
	}
	buckets := seriesPoints(t, store, eq(labels.MetricName, "http_request_duration_seconds_bucket"), eq("path", "/api"))
	inf := buckets[`{__name__="http_request_duration_seconds_bucket", component="orders", environment="primary", le="+Inf", path="/api"}`]
	if len(buckets) != 12 || len(inf) == 0 || inf[0].V != 10 {
		t.Errorf("histogram stored as %d bucket series, +Inf %v; want the 11 default buckets and +Inf at 10", len(buckets), inf)
	}
	for _, name := range []string{"http_request_duration_seconds_sum", "http_request_duration_seconds_count", "http_requests_total"} {
		if len(seriesPoints(t, store, eq(labels.MetricName, name))) == 0 {
			t.Errorf("%s not stored", name)
		}
	}
	pts, err := store.Points(context.Background(), "orders", phoenix.Primary, phoenix.SignalRate, smp.Time, smp.Time)
	if err != nil || len(pts) != 1 || pts[0].V != smp.Values[phoenix.SignalRate] {
		t.Errorf("derived rate in the store: %v %v, want %v", pts, err, smp.Values[phoenix.SignalRate])
	}
}

func TestScrapeSeriesLimit(t *testing.T) {
	proc := startTarget(t, "")
	s := NewScraper(Config{Interval: 50 * time.Millisecond, Timeout: 5 * time.Second, SeriesLimit: 5}, nil)
	s.SetTargets([]Target{{Component: "orders", Environment: phoenix.Primary, URL: proc.URL + "/metrics"}})
	runScraper(t, s)
	waitFor(t, "the target down for its series", func() bool {
		h := s.Health()
		return len(h) == 1 && h[0].ConsecutiveFailures > 0 && strings.Contains(h[0].LastError, "exceed the per-target series limit of 5")
	})
}

// Static targets are scraped beside the provider's, which win for the same
// component; a per-target interval paces that target alone.
func TestStaticTargetsAndPerTargetInterval(t *testing.T) {
	a, b := startTarget(t, ""), startTarget(t, "")
	rec := &recorder{}
	s := NewScraper(Config{
		Interval: time.Hour, Timeout: 5 * time.Second, OnSample: rec.add,
		Static: []Target{
			{Component: "db", Environment: phoenix.Primary, URL: a.URL + "/metrics", Interval: 20 * time.Millisecond},
			{Component: "orders", Environment: phoenix.Primary, URL: "http://127.0.0.1:1/metrics"},
		},
	}, nil)
	s.SetTargets([]Target{{Component: "orders", Environment: phoenix.Primary, URL: b.URL + "/metrics"}})
	runScraper(t, s)
	h := s.Health()
	if len(h) != 2 || h[0].Target.URL != b.URL+"/metrics" || h[1].Target.Component != "db" {
		t.Fatalf("targets %+v, want orders from SetTargets, then the static db", h)
	}
	// db is scraped every 20ms although the collector's interval is an
	// hour: several samples arrive.
	waitFor(t, "three samples of db", func() bool {
		n := 0
		for _, smp := range rec.all() {
			if smp.Target.Component == "db" {
				n++
			}
		}
		return n >= 3
	})
}

func TestNextScrapeKeepsPhase(t *testing.T) {
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		last             time.Time
		interval, offset time.Duration
		want             time.Time
	}{
		{base, 10 * time.Second, 3 * time.Second, base.Add(13 * time.Second)},
		{base.Add(2 * time.Second), 10 * time.Second, 3 * time.Second, base.Add(13 * time.Second)},
		{base.Add(4 * time.Second), 10 * time.Second, 3 * time.Second, base.Add(23 * time.Second)},
		{base.Add(3 * time.Second), 10 * time.Second, 3 * time.Second, base.Add(13 * time.Second)},
		{base, time.Second, 0, base.Add(time.Second)},
	} {
		if got := nextScrape(tc.last, tc.interval, tc.offset); !got.Equal(tc.want) {
			t.Errorf("nextScrape(%s, %s, %s) = %s, want %s", tc.last.Format("15:04:05.000"), tc.interval, tc.offset, got.Format("15:04:05.000"), tc.want.Format("15:04:05.000"))
		}
	}
	// Offsets spread targets over the interval.
	seen := map[time.Duration]bool{}
	for i := range 100 {
		off := spreadOffset(Target{Component: phoenix.ComponentID(fmt.Sprintf("c%d", i)), Environment: phoenix.Primary, URL: "http://x/metrics"}, 10*time.Second)
		if off < 0 || off >= 10*time.Second {
			t.Fatalf("offset %s outside the interval", off)
		}
		seen[off.Truncate(time.Second)] = true
	}
	if len(seen) < 8 {
		t.Errorf("100 targets' offsets fall in %d of the 10 seconds, want them spread", len(seen))
	}
}
