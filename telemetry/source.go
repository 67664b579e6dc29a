package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/phoenixsre/phoenix"
)

// Defaults of SourceConfig.
const (
	DefaultSourceStep     = 15 * time.Second
	DefaultSourceInterval = 15 * time.Second
	DefaultSourceTimeout  = 10 * time.Second
)

// Placeholders of a SourceConfig query: $selector becomes the label
// matchers of the components asked for, $component the component label's
// name.
const (
	placeholderSelector  = "$selector"
	placeholderComponent = "$component"
)

// DefaultSourceQueries are the PromQL queries of the standard signals over
// the metric names of the Prometheus Go client and common HTTP middlewares,
// one series per component.
func DefaultSourceQueries() map[phoenix.Signal]string {
	return map[phoenix.Signal]string{
		phoenix.SignalMemory:  `sum by ($component) (process_resident_memory_bytes{$selector})`,
		phoenix.SignalCPU:     `sum by ($component) (rate(process_cpu_seconds_total{$selector}[1m]))`,
		phoenix.SignalRate:    `sum by ($component) (rate(http_requests_total{$selector}[1m]))`,
		phoenix.SignalErrors:  `sum by ($component) (rate(http_request_errors_total{$selector}[1m])) / sum by ($component) (rate(http_requests_total{$selector}[1m]))`,
		phoenix.SignalLatency: `histogram_quantile(0.99, sum by ($component, le) (rate(http_request_duration_seconds_bucket{$selector}[1m])))`,
	}
}

// SourceConfig configures reading an existing Prometheus, Mimir or Thanos
// through the Prometheus HTTP query API instead of storing samples.
type SourceConfig struct {
	// URL is the API's base, such as http://prometheus:9090 (Mimir:
	// http://mimir/prometheus); required.
	URL string
	// ComponentLabel is the label naming components in that Prometheus;
	// default "component".
	ComponentLabel string
	// Environment is what the components read are reported in; default
	// phoenix.Primary.
	Environment phoenix.Environment
	// Queries is the PromQL per signal, with the placeholders $selector
	// and $component; each must return one series per component (with the
	// component label). Default DefaultSourceQueries.
	Queries map[phoenix.Signal]string
	// Step is the resolution of history reads; Interval is how often Run
	// reads the latest values; Timeout bounds one query.
	Step     time.Duration
	Interval time.Duration
	Timeout  time.Duration
	// Headers are added to every request, such as X-Scope-OrgID for Mimir
	// or an Authorization.
	Headers map[string]string
	// Client makes the requests; nil means a plain http.Client.
	Client *http.Client
	// OnSample receives, from Run, the latest values of each component.
	OnSample func(Sample)
	// Logger receives query failures; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Validate reports the fields that cannot be used as given.
func (c SourceConfig) Validate() error {
	var errs []error
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("source url %q: give the absolute http(s) URL of the query API, such as http://prometheus:9090", c.URL))
	}
	if c.ComponentLabel != "" && !labelNameOK(c.ComponentLabel) {
		errs = append(errs, fmt.Errorf("source component_label %q: not a label name", c.ComponentLabel))
	}
	for sig, q := range c.Queries {
		if !strings.Contains(q, placeholderSelector) {
			errs = append(errs, fmt.Errorf("source query of %s: it must contain %s, where the component matchers go", sig, placeholderSelector))
		}
	}
	if c.Step < 0 || c.Interval < 0 || c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("source step %s, interval %s, timeout %s: must be positive (or 0 for the defaults)", c.Step, c.Interval, c.Timeout))
	}
	return errors.Join(errs...)
}

// PrometheusSource reads components' signals from an external Prometheus
// with client_golang's API client: history with Points, the latest values
// with Run.
type PrometheusSource struct {
	cfg SourceConfig
	api promv1.API

	mu    sync.Mutex
	comps []phoenix.ComponentID
}

// NewPrometheusSource returns a source; it makes no request yet.
func NewPrometheusSource(cfg SourceConfig) (*PrometheusSource, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ComponentLabel == "" {
		cfg.ComponentLabel = "component"
	}
	if cfg.Environment == "" {
		cfg.Environment = phoenix.Primary
	}
	if cfg.Queries == nil {
		cfg.Queries = DefaultSourceQueries()
	}
	if cfg.Step == 0 {
		cfg.Step = DefaultSourceStep
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultSourceInterval
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultSourceTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{}
	}
	if len(cfg.Headers) > 0 {
		c := *client
		c.Transport = headerTransport{next: transportOr(c.Transport), headers: cfg.Headers}
		client = &c
	}
	ac, err := api.NewClient(api.Config{Address: cfg.URL, Client: client})
	if err != nil {
		return nil, fmt.Errorf("source url %s: %w", cfg.URL, err)
	}
	return &PrometheusSource{cfg: cfg, api: promv1.NewAPI(ac)}, nil
}

// transportOr is rt, or the default transport when rt is nil.
func transportOr(rt http.RoundTripper) http.RoundTripper {
	if rt == nil {
		return http.DefaultTransport
	}
	return rt
}

type headerTransport struct {
	next    http.RoundTripper
	headers map[string]string
}

func (t headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range t.headers {
		r.Header.Set(k, v)
	}
	return t.next.RoundTrip(r)
}

// SetTargets sets the components Run reads; it takes the same targets as
// the Scraper (URLs are ignored).
func (s *PrometheusSource) SetTargets(ts []Target) {
	comps := make([]phoenix.ComponentID, 0, len(ts))
	for _, t := range ts {
		if !slices.Contains(comps, t.Component) {
			comps = append(comps, t.Component)
		}
	}
	s.mu.Lock()
	s.comps = comps
	s.mu.Unlock()
}

// query is the PromQL of sig with matchers for comps.
func (s *PrometheusSource) query(sig phoenix.Signal, comps ...phoenix.ComponentID) (string, error) {
	q, ok := s.cfg.Queries[sig]
	if !ok {
		return "", fmt.Errorf("no query for signal %s", sig)
	}
	var sel string
	if len(comps) == 1 {
		sel = fmt.Sprintf("%s=%q", s.cfg.ComponentLabel, string(comps[0]))
	} else {
		names := make([]string, len(comps))
		for i, c := range comps {
			names[i] = string(c) // component names hold no regexp metacharacter but '.'
		}
		sel = fmt.Sprintf("%s=~%q", s.cfg.ComponentLabel, strings.ReplaceAll(strings.Join(names, "|"), ".", `\.`))
	}
	return strings.NewReplacer(placeholderSelector, sel, placeholderComponent, s.cfg.ComponentLabel).Replace(q), nil
}

// Points reads a signal of a component between from and to at the
// configured step. env must be the source's environment.
func (s *PrometheusSource) Points(ctx context.Context, c phoenix.ComponentID, env phoenix.Environment, sig phoenix.Signal, from, to time.Time) ([]Point, error) {
	if env != s.cfg.Environment {
		return nil, fmt.Errorf("source %s serves environment %s, not %s", s.cfg.URL, s.cfg.Environment, env)
	}
	q, err := s.query(sig, c)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	v, warnings, _, err := s.api.QueryRange(ctx, q, promv1.Range{Start: from, End: to, Step: s.cfg.Step})
	if err != nil {
		return nil, fmt.Errorf("query %s of %s at %s: %w", sig, c, s.cfg.URL, err)
	}
	if len(warnings) > 0 {
		s.cfg.Logger.Debug("source query warnings", "query", q, "warnings", warnings)
	}
	m, ok := v.(model.Matrix)
	if !ok {
		return nil, fmt.Errorf("query %s of %s: got a %s, want a range vector", sig, c, v.Type())
	}
	if len(m) > 1 {
		return nil, fmt.Errorf("query %s of %s: %d series, want one per component: aggregate by %s", sig, c, len(m), s.cfg.ComponentLabel)
	}
	var out []Point
	for _, ss := range m {
		for _, p := range ss.Values {
			if v := float64(p.Value); !math.IsNaN(v) && !math.IsInf(v, 0) {
				out = append(out, Point{T: p.Timestamp.Time(), V: v})
			}
		}
	}
	return out, nil
}

// Latest reads every signal's current value of the components set by
// SetTargets, one query per signal for all of them.
func (s *PrometheusSource) Latest(ctx context.Context) ([]Sample, error) {
	s.mu.Lock()
	comps := s.comps
	s.mu.Unlock()
	if len(comps) == 0 {
		return nil, nil
	}
	now := s.cfg.Now()
	byComp := make(map[phoenix.ComponentID]map[phoenix.Signal]float64)
	var errs []error
	for sig := range s.cfg.Queries {
		if err := s.latest(ctx, sig, comps, now, byComp); err != nil {
			errs = append(errs, err)
		}
	}
	out := make([]Sample, 0, len(byComp))
	for _, c := range comps {
		if vals := byComp[c]; len(vals) > 0 {
			out = append(out, Sample{Target: Target{Component: c, Environment: s.cfg.Environment}, Time: now, Values: vals})
		}
	}
	return out, errors.Join(errs...)
}

func (s *PrometheusSource) latest(ctx context.Context, sig phoenix.Signal, comps []phoenix.ComponentID, now time.Time, into map[phoenix.ComponentID]map[phoenix.Signal]float64) error {
	q, err := s.query(sig, comps...)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	v, _, _, err := s.api.Query(ctx, q, now)
	if err != nil {
		return fmt.Errorf("query %s at %s: %w", sig, s.cfg.URL, err)
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return fmt.Errorf("query %s: got a %s, want an instant vector", sig, v.Type())
	}
	for _, smp := range vec {
		c := phoenix.ComponentID(smp.Metric[model.LabelName(s.cfg.ComponentLabel)])
		val := float64(smp.Value)
		if !slices.Contains(comps, c) || math.IsNaN(val) || math.IsInf(val, 0) {
			continue
		}
		if into[c] == nil {
			into[c] = make(map[phoenix.Signal]float64)
		}
		into[c][sig] = val
	}
	return nil
}

// Run reads the latest values every Interval and gives them to OnSample,
// until ctx ends. A failed read is logged and retried at the next tick.
func (s *PrometheusSource) Run(ctx context.Context) error {
	tick := time.NewTicker(s.cfg.Interval)
	defer tick.Stop()
	for {
		samples, err := s.Latest(ctx)
		if err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("external source read failed", "url", s.cfg.URL, "err", err)
		}
		if s.cfg.OnSample != nil {
			for _, smp := range samples {
				s.cfg.OnSample(smp)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
