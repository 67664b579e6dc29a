package scale

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/phoenixsre/phoenix"
)

// DemandSource measures a component's demand, in the unit of the policy's
// demand metric.
type DemandSource interface {
	Demand(ctx context.Context) (float64, error)
}

// CounterRate is a DemandSource that turns a monotonic counter (such as a
// proxy's count of requests served) into a rate per second: the counter's
// increase since the previous call over the time since then. The first call
// reads the counter and returns an error (no rate yet). A counter that goes
// back (a restart) restarts the rate.
type CounterRate struct {
	Count func() uint64
	Now   func() time.Time // nil: time.Now

	mu   sync.Mutex
	last uint64
	at   time.Time
}

var _ DemandSource = (*CounterRate)(nil)

// errNoRate is the first reading of a CounterRate.
var errNoRate = errors.New("no rate yet: the counter has been read once")

// Demand returns the rate since the previous call.
func (c *CounterRate) Demand(context.Context) (float64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if c.Now != nil {
		now = c.Now()
	}
	n := c.Count()
	prev, at := c.last, c.at
	c.last, c.at = n, now
	if at.IsZero() || n < prev || !now.After(at) {
		return 0, errNoRate
	}
	return float64(n-prev) / now.Sub(at).Seconds(), nil
}

// ScalerConfig configures a Scaler.
type ScalerConfig struct {
	Component phoenix.ComponentID
	Policy    Policy
	Actor     *Actor
	Demand    DemandSource
	// Metric is the name of the External metric the demand is given to
	// the policy under.
	Metric string
	// Measure is the time between demand measurements, each of which the
	// policy observes (default 15 s); Sync the time between decisions
	// (default: Measure).
	Measure, Sync time.Duration
	Logger        *slog.Logger
	Registerer    prometheus.Registerer // nil: no metrics
	Now           func() time.Time      // nil: time.Now
}

// Scaler is the scaling loop of one component: it measures demand, asks
// its policy and has its Actor carry the decision out.
type Scaler struct {
	cfg ScalerConfig
	log *slog.Logger
	now func() time.Time

	replicas, desired prometheus.Gauge
	actions, failures prometheus.Counter

	mu   sync.Mutex
	last Decision
}

// NewScaler validates cfg and registers the scaler's metrics.
func NewScaler(cfg ScalerConfig) (*Scaler, error) {
	if cfg.Policy == nil || cfg.Actor == nil || cfg.Demand == nil {
		return nil, errors.New("scaler: a policy, an actor and a demand source are required")
	}
	if cfg.Metric == "" {
		return nil, errors.New("scaler: name the demand's metric")
	}
	if cfg.Measure < 0 || cfg.Sync < 0 {
		return nil, errors.New("scaler: measure and sync periods cannot be negative")
	}
	if cfg.Measure == 0 {
		cfg.Measure = 15 * time.Second
	}
	if cfg.Sync == 0 {
		cfg.Sync = cfg.Measure
	}
	s := &Scaler{cfg: cfg, log: cfg.Logger, now: cfg.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", string(cfg.Component))
	if s.now == nil {
		s.now = time.Now
	}
	labels := prometheus.Labels{"component": string(cfg.Component)}
	s.replicas = prometheus.NewGauge(prometheus.GaugeOpts{Name: "phoenix_scale_replicas", Help: "Replicas in the component's pool.", ConstLabels: labels})
	s.desired = prometheus.NewGauge(prometheus.GaugeOpts{Name: "phoenix_scale_desired_replicas", Help: "Replicas the scaling policy asks for.", ConstLabels: labels})
	s.actions = prometheus.NewCounter(prometheus.CounterOpts{Name: "phoenix_scale_actions_total", Help: "Decisions that changed the replica count.", ConstLabels: labels})
	s.failures = prometheus.NewCounter(prometheus.CounterOpts{Name: "phoenix_scale_failures_total", Help: "Decisions the actor could not carry out (retried at the next decision).", ConstLabels: labels})
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{s.replicas, s.desired, s.actions, s.failures} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("scaler: register metrics: %w", err)
			}
		}
	}
	return s, nil
}

// Last is the latest decision.
func (s *Scaler) Last() Decision {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// Run measures and decides until ctx ends. A failed measurement skips its
// decisions (the policy keeps the count); a decision the actor cannot carry
// out is logged and retried at the next one.
func (s *Scaler) Run(ctx context.Context) error {
	if r := s.cfg.Registerer; r != nil {
		// A component's scaler is made again after a later switch: leave
		// its metric names free.
		defer func() {
			for _, c := range []prometheus.Collector{s.replicas, s.desired, s.actions, s.failures} {
				r.Unregister(c)
			}
		}()
	}
	tick := time.NewTicker(s.cfg.Sync)
	defer tick.Stop()
	var (
		demand   float64
		measured bool
		lastMeas time.Time
	)
	for {
		now := s.now()
		if lastMeas.IsZero() || now.Sub(lastMeas) >= s.cfg.Measure-s.cfg.Sync/2 {
			lastMeas = now
			d, err := s.cfg.Demand.Demand(ctx)
			switch {
			case err == nil:
				demand, measured = d, true
				if o, ok := s.cfg.Policy.(Observer); ok {
					o.Observe(now, d)
				}
			case !errors.Is(err, errNoRate):
				s.log.Warn("demand not measured", "err", err)
				measured = false
			}
		}
		if measured {
			s.step(ctx, now, demand)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// step makes one decision and carries it out.
func (s *Scaler) step(ctx context.Context, now time.Time, demand float64) {
	snap := s.cfg.Actor.Snapshot(Snapshot{Now: now}, map[string]float64{s.cfg.Metric: demand})
	d := s.cfg.Policy.Decide(snap)
	s.mu.Lock()
	s.last = d
	s.mu.Unlock()
	s.desired.Set(float64(d.Replicas))
	if d.Replicas != snap.Replicas {
		s.actions.Inc()
		s.log.Info("scaling", "from", snap.Replicas, "to", d.Replicas, "demand", demand, "reason", d.Reason, "why", d.Message)
		if err := s.cfg.Actor.Apply(ctx, d.Replicas); err != nil && ctx.Err() == nil {
			s.failures.Inc()
			s.log.Warn("scaling not carried out", "to", d.Replicas, "err", err)
		}
	}
	s.replicas.Set(float64(s.cfg.Actor.Replicas()))
}
