package telemetry

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/phoenixsre/phoenix"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/storage"
)

// Target is one component instance to scrape.
type Target struct {
	Component   phoenix.ComponentID
	Environment phoenix.Environment
	// URL is the full address of the metrics endpoint, such as
	// "http://127.0.0.1:9100/metrics".
	URL string
	// Interval and Timeout override Config's for this target; zero means
	// Config's.
	Interval time.Duration
	Timeout  time.Duration
}

// SignalMap names the metric families each signal is computed from. An empty
// name means the signal is not collected. Families with several label sets are
// summed over them (gauges, counters and histogram buckets alike).
type SignalMap struct {
	Memory   string // gauge, bytes
	CPU      string // counter of CPU seconds; its rate is cores in use
	Disk     string // gauge, bytes
	Latency  string // histogram, seconds; p99 over the scrape interval
	Requests string // counter; its rate is phoenix.SignalRate
	Errors   string // counter; errors/requests over the interval is phoenix.SignalErrors
	// IO is a counter of bytes read and written (disk or network); its
	// rate is SignalIO. No default: the Go client's process collector has
	// no such counter; node_exporter and cAdvisor do.
	IO string
}

// SignalIO is the I/O signal, in bytes per second. It is not (yet) one of
// the root package's standard signals; the engine takes it like any other.
const SignalIO phoenix.Signal = "io"

// ExtraSignal is a metric a user names beyond the standard signals; it is
// reported as its own signal.
type ExtraSignal struct {
	// Signal is the name the values are reported under; it must differ
	// from the standard signals.
	Signal phoenix.Signal
	// Metric is the metric family: a gauge summed over its label sets, or,
	// with Rate, a counter whose per-second rate is reported.
	Metric string
	Rate   bool
}

// standardSignals are the signals a SignalMap produces.
var standardSignals = []phoenix.Signal{phoenix.SignalCPU, phoenix.SignalMemory, phoenix.SignalDisk,
	phoenix.SignalLatency, phoenix.SignalErrors, phoenix.SignalRate, SignalIO}

// validateExtras reports extra signals without a metric, named like a
// standard signal or named twice.
func validateExtras(field string, extras []ExtraSignal) error {
	var errs []error
	seen := make(map[phoenix.Signal]bool)
	for i, e := range extras {
		switch {
		case e.Signal == "" || e.Metric == "":
			errs = append(errs, fmt.Errorf("%s[%d]: give both a signal name and the metric it comes from", field, i))
		case slices.Contains(standardSignals, e.Signal):
			errs = append(errs, fmt.Errorf("%s[%d]: %q is a standard signal: set it in the signal map instead", field, i, e.Signal))
		case seen[e.Signal]:
			errs = append(errs, fmt.Errorf("%s[%d]: signal %q is named twice", field, i, e.Signal))
		}
		seen[e.Signal] = true
	}
	return errors.Join(errs...)
}

// DefaultSignalMap is the map used when Config.Signals is the zero value: the
// names the Prometheus Go client and most HTTP middlewares expose.
func DefaultSignalMap() SignalMap {
	return SignalMap{
		Memory:   "process_resident_memory_bytes",
		CPU:      "process_cpu_seconds_total",
		Latency:  "http_request_duration_seconds",
		Requests: "http_requests_total",
		Errors:   "http_request_errors_total",
	}
}

// Config tunes a Scraper. Zero values take the documented defaults.
type Config struct {
	// Interval between two scrapes of one target; default 1s.
	Interval time.Duration
	// Timeout bounds one scrape, from request to parsed body; default 800ms.
	Timeout time.Duration
	// Signals maps metric names to signals; the zero value means
	// DefaultSignalMap. To collect nothing of a default, set the whole map.
	Signals SignalMap
	// MaxBodyBytes rejects larger responses; default 10 MiB.
	MaxBodyBytes int64
	// Client does the requests; nil means a plain &http.Client{} (the
	// per-scrape timeout comes from the request context).
	Client *http.Client
	// Logger receives scrape failures at debug level and state changes at
	// info level; nil discards.
	Logger *slog.Logger
	// Registerer receives the scraper's own metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Now stamps samples and measures the interval rates are computed over;
	// nil means time.Now.
	Now func() time.Time
	// OnSample, if set, is called with every sample that holds at least one
	// value, from the target's scrape goroutine, after the sample was appended
	// to the History. It must return quickly: it delays that target's next
	// scrape.
	OnSample func(Sample)
	// Extra are further metrics reported as their own signals.
	Extra []ExtraSignal
	// SeriesLimit fails a scrape whose body holds more series than this,
	// as Prometheus's sample_limit does; default DefaultSeriesLimit,
	// negative for no limit.
	SeriesLimit int
	// Storage, if set, receives every scraped series as raw samples
	// stamped with the scrape time, labelled with the target's component
	// and environment (LabelComponent, LabelEnvironment). Give it the
	// Store itself, not a Mapper: the scraper computes its targets'
	// signals already.
	Storage storage.AppendableV2
	// Static targets are scraped beside those given to SetTargets, which
	// take precedence for the same component and environment.
	Static []Target
}

// Defaults of Config.
const (
	DefaultInterval     = time.Second
	DefaultTimeout      = 800 * time.Millisecond
	DefaultMaxBodyBytes = 10 << 20
	DefaultSeriesLimit  = 50_000
)

// Validate reports the first field that cannot be used as given. Zero values
// are valid (they mean the default).
func (c Config) Validate() error {
	var errs []error
	if c.Interval < 0 {
		errs = append(errs, fmt.Errorf("telemetry interval %s: must be positive (or 0 for %s)", c.Interval, DefaultInterval))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("telemetry timeout %s: must be positive (or 0 for %s)", c.Timeout, DefaultTimeout))
	}
	if c.MaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("telemetry max body bytes %d: must be positive (or 0 for %d)", c.MaxBodyBytes, DefaultMaxBodyBytes))
	}
	for i, t := range c.Static {
		if err := t.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("telemetry static[%d]: %w", i, err))
		}
	}
	errs = append(errs, validateExtras("telemetry extra", c.Extra))
	return errors.Join(errs...)
}

// withDefaults returns c with every zero (or invalid) field replaced by its
// default, so a Scraper never runs with a zero interval.
func (c Config) withDefaults() Config {
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Signals == (SignalMap{}) {
		c.Signals = DefaultSignalMap()
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.SeriesLimit == 0 {
		c.SeriesLimit = DefaultSeriesLimit
	}
	if c.Client == nil {
		c.Client = &http.Client{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}
