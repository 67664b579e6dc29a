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
	descPeerCalls = prometheus.NewDesc("phoenix_depmap_peer_calls_total",
		"Calls to or from peers that send no spans (virtual nodes), and unanswered calls to ambiguous peer names.", []string{"outcome"}, nil)
	descLate = prometheus.NewDesc("phoenix_depmap_late_spans_total",
		"Spans linked after waiting the pending TTL, to the best parent then known.", nil, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSpans, descOrphans, descEvicted, descRefused, descPending, descIndexed, descEdges, descPeerCalls, descLate} {
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
	counter(descPeerCalls, s.PeerCalls, "virtual")
	counter(descPeerCalls, s.PeerAmbiguous, "ambiguous")
	counter(descLate, s.Late)
	gauge(descPending, s.Pending)
	gauge(descIndexed, s.Indexed)
	gauge(descEdges, s.Edges)
}

var descObservations = prometheus.NewDesc("phoenix_depmap_proxy_observations_total",
	"Connections reported by Phoenix's proxies, by what became of them.", []string{"outcome"}, nil)

// observerCollector exports ObserverStats at scrape time.
type observerCollector struct{ ob *Observer }

var _ prometheus.Collector = (*observerCollector)(nil)

func (c *observerCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descObservations }

func (c *observerCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.ob.Stats()
	for _, o := range []struct {
		outcome string
		v       uint64
	}{{"resolved", s.Resolved}, {"unknown", s.Unknown}, {"failed", s.Failed}, {"dropped", s.Dropped}, {"self", s.Self}} {
		ch <- prometheus.MustNewConstMetric(descObservations, prometheus.CounterValue, float64(o.v), o.outcome)
	}
}
