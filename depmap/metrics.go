package depmap

import "github.com/prometheus/client_golang/prometheus"

// collector exports Graph.Stats at scrape time, so the counters live in one
// place only.
type collector struct{ g *Graph }

var _ prometheus.Collector = (*collector)(nil)

var (
	descSpans = prometheus.NewDesc("phoenix_depmap_spans_total",
		"Spans received, by what became of them.", []string{"outcome"}, nil)
	descOrphans = prometheus.NewDesc("phoenix_depmap_orphan_spans_total",
		"Spans whose parent span never arrived within the pending TTL.", nil, nil)
	descEvicted = prometheus.NewDesc("phoenix_depmap_evicted_spans_total",
		"Spans dropped because a bounded set was full, by set.", []string{"set"}, nil)
	descRefused = prometheus.NewDesc("phoenix_depmap_edges_refused_total",
		"Edge observations dropped because the graph held its maximum of edges.", nil, nil)
	descPending = prometheus.NewDesc("phoenix_depmap_pending_spans",
		"Spans waiting for their parent span.", nil, nil)
	descIndexed = prometheus.NewDesc("phoenix_depmap_indexed_spans",
		"Spans kept as possible parents of spans still to come.", nil, nil)
	descEdges = prometheus.NewDesc("phoenix_depmap_edges",
		"Edges in the dependency graph.", nil, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSpans, descOrphans, descEvicted, descRefused, descPending, descIndexed, descEdges} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.g.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v int) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	counter(descSpans, s.Spans, "taken")
	counter(descSpans, s.NoService, "no_service")
	counter(descSpans, s.InvalidService, "invalid_service")
	counter(descSpans, s.InvalidSpan, "invalid_span")
	counter(descSpans, s.Duplicates, "duplicate")
	counter(descOrphans, s.Orphans)
	counter(descEvicted, s.PendingEvicted, "pending")
	counter(descEvicted, s.IndexEvicted, "index")
	counter(descRefused, s.EdgesRefused)
	gauge(descPending, s.Pending)
	gauge(descIndexed, s.Indexed)
	gauge(descEdges, s.Edges)
}
