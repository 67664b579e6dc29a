package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"
)

// scrapeMetrics are the scraper's own metrics. A nil *scrapeMetrics (no
// Registerer) records nothing.
type scrapeMetrics struct {
	scrapes  *prometheus.CounterVec
	up       *prometheus.GaugeVec
	duration prometheus.Histogram
}

func newScrapeMetrics(reg prometheus.Registerer) (*scrapeMetrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &scrapeMetrics{
		scrapes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "phoenix_telemetry_scrapes_total",
			Help: "Scrapes of component metrics endpoints, by result (success or failure).",
		}, []string{"component", "environment", "result"}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "phoenix_telemetry_target_up",
			Help: "1 if the last scrape of the target succeeded, 0 otherwise.",
		}, []string{"component", "environment"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "phoenix_telemetry_scrape_duration_seconds",
			Help:    "Time to fetch and parse one metrics endpoint.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
	}
	cs := []prometheus.Collector{m.scrapes, m.up, m.duration}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return nil, err
		}
	}
	return m, nil
}

func (m *scrapeMetrics) observe(t Target, ok bool, seconds float64) {
	if m == nil {
		return
	}
	result, up := "failure", 0.0
	if ok {
		result, up = "success", 1
	}
	m.scrapes.WithLabelValues(string(t.Component), string(t.Environment), result).Inc()
	m.up.WithLabelValues(string(t.Component), string(t.Environment)).Set(up)
	m.duration.Observe(seconds)
}

// forget drops a removed target's series so dashboards do not show it as
// down forever.
func (m *scrapeMetrics) forget(t Target) {
	if m == nil {
		return
	}
	labels := prometheus.Labels{"component": string(t.Component), "environment": string(t.Environment)}
	m.scrapes.DeletePartialMatch(labels)
	m.up.Delete(labels)
}
