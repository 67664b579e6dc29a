package daemon

import (
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/config"
	"github.com/phoenixsre/phoenix/telemetry"
)

// collector is the Telemetry Collector as the daemon assembles it: the
// store every sample lands in, the scraper (or, for installations that
// already run Prometheus, the external source that replaces it), the
// receivers for pushed metrics, and the learned baselines.
type collector struct {
	store     *telemetry.Store
	scraper   *telemetry.Scraper
	source    *telemetry.PrometheusSource
	baselines *telemetry.Baselines
	// remoteWrite and otlp take pushed metrics; both feed the store and,
	// through the label mapping, the engine.
	remoteWrite http.Handler
	otlp        *telemetry.OTLPReceiver
}

func newCollector(cfg config.Config, log *slog.Logger, reg prometheus.Registerer, now func() time.Time, observe func(telemetry.Sample)) (*collector, error) {
	t := cfg.Telemetry
	c := &collector{}
	var err error
	if c.baselines, err = telemetry.NewBaselines(telemetry.BaselineConfig{}); err != nil {
		return nil, err
	}
	onSample := func(s telemetry.Sample) {
		observe(s)
		c.baselines.Observe(s)
	}
	if c.store, err = telemetry.OpenStore(telemetry.StoreConfig{
		Dir: filepath.Join(cfg.StateDir, "tsdb"), Retention: t.Store.Retention.D(), WALCompression: t.Store.WALCompression,
		Logger: log.With("part", "tsdb"), Registerer: reg,
	}); err != nil {
		return nil, fmt.Errorf("telemetry store: %w", err)
	}
	m := t.Metrics
	signals := telemetry.SignalMap{Memory: m.Memory, CPU: m.CPU, Disk: m.Disk, Latency: m.Latency, Requests: m.Requests, Errors: m.Errors}
	if t.Source.URL != "" {
		if c.source, err = telemetry.NewPrometheusSource(telemetry.SourceConfig{
			URL: t.Source.URL, ComponentLabel: t.Source.ComponentLabel, Environment: phoenix.Primary,
			Interval: t.Source.Interval.D(), Timeout: t.Source.Timeout.D(), Headers: t.Source.Headers,
			OnSample: onSample, Logger: log.With("part", "source"), Now: now,
		}); err != nil {
			c.store.Close()
			return nil, fmt.Errorf("telemetry.source: %w", err)
		}
	} else {
		// The scraper writes the store itself (raw series and signals), so
		// it is not given the mapper: its signals would be counted twice.
		c.scraper = telemetry.NewScraper(telemetry.Config{
			Interval: t.ScrapeInterval.D(), Timeout: t.ScrapeTimeout.D(), Signals: signals,
			SeriesLimit: t.SeriesLimit, Storage: c.store,
			Logger: log.With("part", "telemetry"), Registerer: reg, Now: now, OnSample: onSample,
		}, c.store)
	}
	names := make([]phoenix.ComponentID, len(cfg.Components))
	for i, comp := range cfg.Components {
		names[i] = comp.Name
	}
	mapper, err := telemetry.NewMapper(telemetry.MappingConfig{
		ComponentLabels: t.Mapping.ComponentLabels, EnvironmentLabel: t.Mapping.EnvironmentLabel,
		DefaultEnvironment: phoenix.Primary, Signals: signals, Components: names,
		OnSample: onSample, Logger: log.With("part", "mapping"), Registerer: reg,
	}, c.store)
	if err != nil {
		c.store.Close()
		return nil, err
	}
	lim, err := telemetry.NewLimiter(telemetry.LimitsConfig{
		MaxSeries: t.Limits.MaxSeriesPerTenant, SamplesPerSecond: t.Limits.SamplesPerSecond, Burst: t.Limits.Burst,
		Registerer: reg, Now: now,
	}, mapper)
	if err != nil {
		c.store.Close()
		return nil, err
	}
	if c.remoteWrite, err = telemetry.NewRemoteWriteHandler(telemetry.RemoteWriteConfig{Logger: log.With("part", "remote-write"), Registerer: reg, Now: now}, lim); err != nil {
		c.store.Close()
		return nil, err
	}
	if c.otlp, err = telemetry.NewOTLPReceiver(telemetry.OTLPConfig{Logger: log.With("part", "otlp-metrics"), Registerer: reg, Now: now}, lim); err != nil {
		c.store.Close()
		return nil, err
	}
	return c, nil
}

// targeter is what the control loop steers: the scraper, or the source.
func (c *collector) targeter() interface{ SetTargets([]telemetry.Target) } {
	if c.source != nil {
		return c.source
	}
	return c.scraper
}

// silence is how long the component's current target has not been scraped
// successfully; zero when unknown (an external source, no success yet).
func (c *collector) silence(comp phoenix.ComponentID, now time.Time) time.Duration {
	if c.scraper == nil {
		return 0
	}
	for _, h := range c.scraper.Health() {
		if h.Target.Component == comp && !h.LastSuccess.IsZero() {
			return now.Sub(h.LastSuccess)
		}
	}
	return 0
}
