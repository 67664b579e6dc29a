package traffic

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/phoenixsre/phoenix"
)

// metrics are always built, so the request path never branches on whether
// they are exported; they are registered only when a Registerer is given.
// Every series carries the component as a constant label, so the proxies of
// several components can share one registry.
type metrics struct {
	requests     *prometheus.CounterVec // backend, outcome
	retries      prometheus.Counter
	held         prometheus.Gauge
	heldTotal    prometheus.Counter
	holdSeconds  prometheus.Histogram
	switches     *prometheus.CounterVec // result
	healthy      *prometheus.GaugeVec   // backend
	outliers     *prometheus.CounterVec // action: ejected, flagged
	routeChanges *prometheus.CounterVec // cause
	connDropped  prometheus.Counter
}

// Request outcomes: answered by the backend below 500, answered by the
// backend with 5xx, answered by the proxy with an error, or abandoned by the
// client.
const (
	outcomeOK       = "ok"
	outcome5xx      = "backend_5xx"
	outcomeFailed   = "proxy_error"
	outcomeCanceled = "canceled"
)

// noBackend labels failures that reached no backend.
const noBackend = "none"

func newMetrics(reg prometheus.Registerer, component phoenix.ComponentID) (*metrics, error) {
	labels := prometheus.Labels{"component": string(component)}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "phoenix_traffic_requests_total", ConstLabels: labels,
			Help: "Requests through the proxy by the backend that answered and the outcome.",
		}, []string{"backend", "outcome"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "phoenix_traffic_retries_total", ConstLabels: labels,
			Help: "Attempts sent again after a transport error or a switch.",
		}),
		held: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "phoenix_traffic_held_requests", ConstLabels: labels,
			Help: "Requests waiting now for the active backend to recover or a switch to end.",
		}),
		heldTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "phoenix_traffic_held_requests_total", ConstLabels: labels,
			Help: "Requests that had to wait for recovery or a switch.",
		}),
		holdSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "phoenix_traffic_hold_seconds", ConstLabels: labels,
			Help:    "How long held requests waited.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		switches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "phoenix_traffic_switches_total", ConstLabels: labels,
			Help: "Switches of traffic to the standby by result (ok, failed).",
		}, []string{"result"}),
		healthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "phoenix_traffic_backend_healthy", ConstLabels: labels,
			Help: "1 if the backend passes its health checks, 0 if not.",
		}, []string{"backend"}),
		outliers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "phoenix_traffic_outliers_total", ConstLabels: labels,
			Help: "Backends found outliers by passive detection, by action (ejected, or flagged when ejecting would leave too few serving).",
		}, []string{"action"}),
		routeChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "phoenix_traffic_route_changes_total", ConstLabels: labels,
			Help: "Changes of the backends serving traffic, by cause (switch, failback, join, remove, eject).",
		}, []string{"cause"}),
		connDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "phoenix_traffic_connection_events_dropped_total", ConstLabels: labels,
			Help: "Accepted connections not reported to OnConnection because its queue was full.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	var registered []prometheus.Collector
	for _, c := range []prometheus.Collector{m.requests, m.retries, m.held, m.heldTotal, m.holdSeconds, m.switches, m.healthy, m.outliers, m.routeChanges, m.connDropped} {
		if err := reg.Register(c); err != nil {
			for _, r := range registered {
				reg.Unregister(r)
			}
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, errors.New("metrics for this component are already registered: use one proxy per component per registry")
			}
			return nil, err
		}
		registered = append(registered, c)
	}
	return m, nil
}

// resolve looks up t's request counters once, so the request path does not
// hash label values.
func (m *metrics) resolve(t *target) {
	name := t.backend.Name
	t.ok = m.requests.WithLabelValues(name, outcomeOK)
	t.fail5xx = m.requests.WithLabelValues(name, outcome5xx)
	t.failed = m.requests.WithLabelValues(name, outcomeFailed)
	t.canceled = m.requests.WithLabelValues(name, outcomeCanceled)
}

// bufferPool lends ReverseProxy its copy buffers, instead of 32 KiB per
// request.
type bufferPool struct{ pool sync.Pool }

const copyBufferSize = 32 << 10

func (b *bufferPool) Get() []byte {
	if buf, ok := b.pool.Get().(*[]byte); ok {
		return *buf
	}
	return make([]byte, copyBufferSize)
}

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) == copyBufferSize {
		buf = buf[:copyBufferSize]
		b.pool.Put(&buf)
	}
}
