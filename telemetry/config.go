package telemetry

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/phoenixsre/phoenix"
	"github.com/prometheus/client_golang/prometheus"
)

// Target is one component instance to scrape.
type Target struct {
	Component   phoenix.ComponentID
	Environment phoenix.Environment
	// URL is the full address of the metrics endpoint, such as
	// "http://127.0.0.1:9100/metrics".
	URL string
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
}

// Defaults of Config.
const (
	DefaultInterval     = time.Second
	DefaultTimeout      = 800 * time.Millisecond
	DefaultMaxBodyBytes = 10 << 20
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
