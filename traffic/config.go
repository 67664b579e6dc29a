package traffic

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/phoenixsre/phoenix"
)

// Protocol is what a proxy forwards: HTTP requests or TCP connections.
type Protocol string

// The protocols a proxy speaks. An HTTP proxy retries and holds requests; a
// TCP proxy holds and re-dials connections that have not reached a backend,
// and drains the ones that have (a byte stream cannot be moved).
const (
	HTTP Protocol = "http"
	TCP  Protocol = "tcp"
)

// Config is a proxy's configuration. Zero fields take the defaults listed
// beside them; negative durations and counts are errors.
type Config struct {
	Component phoenix.ComponentID // required; labels metrics and logs
	Protocol  Protocol            // HTTP (default) or TCP; backends' URLs use the matching scheme (http/https or tcp)

	Listen         string        // address to bind, default "127.0.0.1:0"
	HealthPath     string        // HTTP: probed on every backend, under its URL's path; default "/healthz". TCP checks connect.
	HealthInterval time.Duration // time between health checks, default 200ms
	HealthTimeout  time.Duration // a check slower than this fails, default 150ms; must not exceed HealthInterval
	// HealthFastInterval is the time between checks while a backend's
	// health is changing: a check failed but it is not yet unhealthy, or
	// passed but it is not yet healthy again (HAProxy's fastinter). Default
	// HealthInterval/4; at most HealthInterval.
	HealthFastInterval time.Duration
	UnhealthyAfter     int           // consecutive failed checks before a backend is unhealthy, default 3
	HealthyAfter       int           // consecutive good checks before it is healthy again, default 2
	HoldTimeout        time.Duration // longest a request waits for recovery or a switch, default 10s
	DrainTimeout       time.Duration // longest Switch and Run's stop wait for in-flight requests, default 5s
	DialTimeout        time.Duration // connecting to a backend, default 2s; a cut-off backend fails this fast
	// ClientTimeout is the longest a client may leave the proxy unable to
	// write to it (HAProxy's timeout client, on the sending side): a client
	// that takes no byte of its response for this long is disconnected, so
	// that it does not hold a backend connection forever. Default 1m.
	ClientTimeout time.Duration
	MaxRetryBody  int64 // request bodies up to this many bytes are buffered so they can be retried, default 1 MiB

	Outlier  OutlierConfig  // passive outlier detection on the active set
	FailBack FailbackPolicy // whether and when traffic returns to the backends a switch left

	Logger     *slog.Logger          // nil discards
	Registerer prometheus.Registerer // nil: no metrics are registered
	Now        func() time.Time      // stamps status, ejections and fail-back timing; nil means time.Now

	// OnHealth is called on every health transition of an active, standby
	// or fallback backend (not on every check), one call at a time, from the
	// health-check goroutine: it must not block for long.
	OnHealth func(b Backend, healthy bool, reason string)

	// OnConnection, if set, is told of every client connection the proxy
	// accepts, for passive dependency discovery. Calls are made in order
	// from one goroutine fed by a bounded queue: the accept path never
	// waits for it, and connections are dropped from the queue (and counted
	// in phoenix_traffic_connection_events_dropped_total) if it falls behind.
	OnConnection func(component phoenix.ComponentID, remote netip.AddrPort)

	// OnRoute, if set, is called when Run starts and after every change of
	// the backends serving traffic (a switch, a fail back, a backend joining,
	// leaving or ejected), with the set now serving and the cause. Calls are serialized and each
	// reports the state at the time of the call, so the last call always
	// shows the current set. It must be quick: the xDS server uses it.
	OnRoute func(RouteChange)

	// FailBackPrepare is called by an automatic fail back (FailBack.Auto)
	// inside the switch, as prepare is in Switch; nil means nothing to do.
	FailBackPrepare func(ctx context.Context) error
}

// RouteChange tells OnRoute what serves a component's traffic now.
type RouteChange struct {
	Component phoenix.ComponentID
	Protocol  Protocol
	Active    []Backend // the backends that receive new requests, in the order added
	Cause     string    // "start", "switch", "failback", "join", "remove", "eject"
}

// Defaults, exported so that callers can show them in their own help.
const (
	DefaultListen         = "127.0.0.1:0"
	DefaultHealthPath     = "/healthz"
	DefaultHealthInterval = 200 * time.Millisecond
	DefaultHealthTimeout  = 150 * time.Millisecond
	DefaultUnhealthyAfter = 3
	DefaultHealthyAfter   = 2
	DefaultHoldTimeout    = 10 * time.Second
	DefaultDrainTimeout   = 5 * time.Second
	DefaultDialTimeout    = 2 * time.Second
	DefaultClientTimeout  = time.Minute
	DefaultMaxRetryBody   = 1 << 20
)

// withDefaults returns c with its zero fields set to the defaults.
func (c Config) withDefaults() Config {
	setDefault(&c.Protocol, HTTP)
	setDefault(&c.Listen, DefaultListen)
	setDefault(&c.HealthPath, DefaultHealthPath)
	setDefault(&c.HealthInterval, DefaultHealthInterval)
	setDefault(&c.HealthTimeout, DefaultHealthTimeout)
	setDefault(&c.HealthFastInterval, c.HealthInterval/4)
	setDefault(&c.UnhealthyAfter, DefaultUnhealthyAfter)
	setDefault(&c.HealthyAfter, DefaultHealthyAfter)
	setDefault(&c.HoldTimeout, DefaultHoldTimeout)
	setDefault(&c.DrainTimeout, DefaultDrainTimeout)
	setDefault(&c.DialTimeout, DefaultDialTimeout)
	setDefault(&c.ClientTimeout, DefaultClientTimeout)
	setDefault(&c.MaxRetryBody, DefaultMaxRetryBody)
	c.Outlier = c.Outlier.withDefaults()
	c.FailBack = c.FailBack.withDefaults()
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func setDefault[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}

// validate reports every problem in c at once, each naming its field.
func (c Config) validate() error {
	var errs []error
	if err := c.Component.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("Component: %w", err))
	}
	if c.Protocol != HTTP && c.Protocol != TCP {
		errs = append(errs, fmt.Errorf("Protocol %q: write %q or %q", c.Protocol, HTTP, TCP))
	}
	if !strings.HasPrefix(c.HealthPath, "/") || strings.ContainsAny(c.HealthPath, "?#") {
		errs = append(errs, fmt.Errorf("HealthPath %q: write an absolute path without query, such as /healthz", c.HealthPath))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"HealthInterval", c.HealthInterval}, {"HealthTimeout", c.HealthTimeout}, {"HealthFastInterval", c.HealthFastInterval},
		{"HoldTimeout", c.HoldTimeout}, {"DrainTimeout", c.DrainTimeout}, {"DialTimeout", c.DialTimeout},
		{"ClientTimeout", c.ClientTimeout},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %s: must be positive (zero means the default)", d.name, d.v))
		}
	}
	if c.HealthTimeout > c.HealthInterval && c.HealthInterval > 0 {
		errs = append(errs, fmt.Errorf("HealthTimeout %s exceeds HealthInterval %s: checks would overlap; lower the timeout", c.HealthTimeout, c.HealthInterval))
	}
	if c.HealthFastInterval > c.HealthInterval && c.HealthInterval > 0 {
		errs = append(errs, fmt.Errorf("HealthFastInterval %s exceeds HealthInterval %s: it is the shorter interval used while health changes", c.HealthFastInterval, c.HealthInterval))
	}
	if c.UnhealthyAfter < 0 {
		errs = append(errs, fmt.Errorf("UnhealthyAfter %d: must be at least 1", c.UnhealthyAfter))
	}
	if c.HealthyAfter < 0 {
		errs = append(errs, fmt.Errorf("HealthyAfter %d: must be at least 1", c.HealthyAfter))
	}
	if c.MaxRetryBody < 0 {
		errs = append(errs, fmt.Errorf("MaxRetryBody %d: must be positive (zero means %d bytes)", c.MaxRetryBody, DefaultMaxRetryBody))
	}
	if err := c.Outlier.validate(); err != nil {
		errs = append(errs, fmt.Errorf("Outlier.%w", err))
	}
	if err := c.FailBack.validate(); err != nil {
		errs = append(errs, fmt.Errorf("FailBack.%w", err))
	}
	return errors.Join(errs...)
}
