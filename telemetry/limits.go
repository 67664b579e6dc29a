package telemetry

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promhistogram "github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"golang.org/x/time/rate"
)

// Defaults of LimitsConfig.
const (
	DefaultMaxSeriesPerTenant = 500_000
	DefaultSeriesIdle         = time.Hour
	DefaultLimitRetryAfter    = time.Minute
	// DefaultTenantHeader is the header push receivers read the tenant
	// from, as Cortex, Mimir and Thanos do.
	DefaultTenantHeader = "X-Scope-OrgID"
	// LabelTenant is added to the series of a tenant other than the
	// default one, so that tenants writing the same series stay apart.
	LabelTenant = "tenant"
)

// ErrSeriesLimit marks a sample refused because its series would take the
// tenant past its active series limit. It is wrapped in a *RetryableError.
var ErrSeriesLimit = errors.New("series limit reached")

// ErrRateLimit marks a request refused because the tenant is over its
// samples-per-second rate. It is wrapped in a *RetryableError.
var ErrRateLimit = errors.New("ingestion rate limit reached")

// RetryableError is a refusal that the same request may overcome later: the
// receivers answer it with 429 Too Many Requests (gRPC RESOURCE_EXHAUSTED)
// and a Retry-After of After.
type RetryableError struct {
	Err   error
	After time.Duration
}

func (e *RetryableError) Error() string {
	return fmt.Sprintf("%v (retry after %s)", e.Err, e.After.Round(time.Second))
}

func (e *RetryableError) Unwrap() error { return e.Err }

// retryAfterSeconds is the Retry-After header value for d: whole seconds,
// rounded up, at least 1.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

type tenantKey struct{}

// WithTenant returns ctx carrying the tenant id that a Limiter charges
// appends to. The empty id is the default tenant.
func WithTenant(ctx context.Context, tenant string) context.Context {
	return context.WithValue(ctx, tenantKey{}, tenant)
}

// TenantFrom returns the tenant of ctx; "" (the default tenant) if none.
func TenantFrom(ctx context.Context) string {
	t, _ := ctx.Value(tenantKey{}).(string)
	return t
}

var tenantPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// ValidateTenant reports whether id can name a tenant.
func ValidateTenant(id string) error {
	if id != "" && !tenantPattern.MatchString(id) {
		return fmt.Errorf("tenant %.80q: use 1-64 letters, digits, '_', '.' or '-'", id)
	}
	return nil
}

// LimitsConfig bounds what each tenant may write through a Limiter. Zero
// values take the defaults.
type LimitsConfig struct {
	// MaxSeries is the number of active series a tenant may have; a sample
	// of a new series beyond it is refused. Default
	// DefaultMaxSeriesPerTenant; negative means no limit.
	MaxSeries int
	// SeriesIdle is how long a series stays active after its last sample;
	// default DefaultSeriesIdle.
	SeriesIdle time.Duration
	// LimitRetryAfter is the Retry-After given when the series limit
	// refuses samples: the time in which idle series may free room.
	// Default DefaultLimitRetryAfter.
	LimitRetryAfter time.Duration
	// SamplesPerSecond is a tenant's sustained ingestion rate; 0 means no
	// rate limit. Burst is how many samples it may send at once beyond the
	// rate; default 10 seconds' worth.
	SamplesPerSecond float64
	Burst            int
	// Registerer receives the limiter's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Validate reports the fields that cannot be used as given.
func (c LimitsConfig) Validate() error {
	var errs []error
	if c.SeriesIdle < 0 {
		errs = append(errs, fmt.Errorf("limits series idle %s: must be positive (or 0 for %s)", c.SeriesIdle, DefaultSeriesIdle))
	}
	if c.LimitRetryAfter < 0 {
		errs = append(errs, fmt.Errorf("limits retry after %s: must be positive (or 0 for %s)", c.LimitRetryAfter, DefaultLimitRetryAfter))
	}
	if c.SamplesPerSecond < 0 || math.IsNaN(c.SamplesPerSecond) || math.IsInf(c.SamplesPerSecond, 0) {
		errs = append(errs, fmt.Errorf("limits samples per second %v: must be positive (or 0 for no rate limit)", c.SamplesPerSecond))
	}
	if c.Burst < 0 {
		errs = append(errs, fmt.Errorf("limits burst %d: must be positive (or 0 for 10 s of the rate)", c.Burst))
	}
	return errors.Join(errs...)
}

// Limiter is the admission step between the push receivers and the store:
// it charges every append to the tenant of its context, refuses the samples
// of new series beyond the tenant's active series limit, and rates tenants'
// requests through Admit. It writes what it accepts into the next
// storage.AppendableV2, adding a tenant label for tenants other than the
// default one.
type Limiter struct {
	cfg  LimitsConfig
	next storage.AppendableV2

	mu      sync.Mutex
	tenants map[string]*tenantState

	refused *prometheus.CounterVec
	active  *prometheus.GaugeVec
}

var _ storage.AppendableV2 = (*Limiter)(nil)

// seriesShards spreads a tenant's series set over locks, so concurrent
// requests rarely wait for each other.
const seriesShards = 32

type tenantState struct {
	rate      *rate.Limiter // nil: no rate limit
	active    atomic.Int64
	lastSweep atomic.Int64 // unix nanoseconds
	shards    [seriesShards]seriesShard
}

type seriesShard struct {
	mu   sync.Mutex
	seen map[uint64]int64 // label hash -> last append, unix seconds
}

// NewLimiter returns a Limiter writing into next.
func NewLimiter(cfg LimitsConfig, next storage.AppendableV2) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxSeries == 0 {
		cfg.MaxSeries = DefaultMaxSeriesPerTenant
	}
	if cfg.SeriesIdle == 0 {
		cfg.SeriesIdle = DefaultSeriesIdle
	}
	if cfg.LimitRetryAfter == 0 {
		cfg.LimitRetryAfter = DefaultLimitRetryAfter
	}
	if cfg.Burst == 0 {
		cfg.Burst = max(1, int(10*cfg.SamplesPerSecond))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	l := &Limiter{
		cfg: cfg, next: next, tenants: make(map[string]*tenantState),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "phoenix_telemetry_refused_samples_total",
			Help: "Samples refused by the ingestion limits, by tenant and reason (series_limit, rate_limit).",
		}, []string{"tenant", "reason"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "phoenix_telemetry_active_series",
			Help: "Series with a sample within the idle window, by tenant.",
		}, []string{"tenant"}),
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{l.refused, l.active} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register limiter metrics: %w", err)
			}
		}
	}
	return l, nil
}

func (l *Limiter) tenant(id string) *tenantState {
	l.mu.Lock()
	defer l.mu.Unlock()
	ts, ok := l.tenants[id]
	if !ok {
		ts = &tenantState{}
		if l.cfg.SamplesPerSecond > 0 {
			ts.rate = rate.NewLimiter(rate.Limit(l.cfg.SamplesPerSecond), l.cfg.Burst)
		}
		for i := range ts.shards {
			ts.shards[i].seen = make(map[uint64]int64)
		}
		ts.lastSweep.Store(l.cfg.Now().UnixNano())
		l.tenants[id] = ts
	}
	return ts
}

// Admit charges n samples to the tenant of ctx against its rate. It
// returns nil, a *RetryableError wrapping ErrRateLimit with the wait, or a
// plain error when n alone exceeds what the tenant may ever send at once.
func (l *Limiter) Admit(ctx context.Context, n int) error {
	if l.cfg.SamplesPerSecond <= 0 || n <= 0 {
		return nil
	}
	id := TenantFrom(ctx)
	ts := l.tenant(id)
	now := l.cfg.Now()
	r := ts.rate.ReserveN(now, n)
	if !r.OK() {
		l.refused.WithLabelValues(id, "rate_limit").Add(float64(n))
		return fmt.Errorf("%d samples in one request exceed the tenant's burst of %d: send smaller batches", n, l.cfg.Burst)
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		l.refused.WithLabelValues(id, "rate_limit").Add(float64(n))
		return &RetryableError{Err: fmt.Errorf("tenant %q: %w of %g samples/s", id, ErrRateLimit, l.cfg.SamplesPerSecond), After: d}
	}
	return nil
}

// AppenderV2 returns an appender charging the tenant of ctx.
func (l *Limiter) AppenderV2(ctx context.Context) storage.AppenderV2 {
	id := TenantFrom(ctx)
	ts := l.tenant(id)
	now := l.cfg.Now()
	l.maybeSweep(id, ts, now)
	a := &limitAppender{l: l, ts: ts, tenant: id, now: now.Unix(), next: l.next.AppenderV2(ctx)}
	if id != "" {
		a.builder = labels.NewBuilder(labels.EmptyLabels())
	}
	return a
}

// maybeSweep forgets the tenant's idle series, at most every quarter of the
// idle window. The sweep runs in the appending goroutine: it is a pass over
// a map, a few milliseconds for a million series, once in a long while.
func (l *Limiter) maybeSweep(id string, ts *tenantState, now time.Time) {
	last := ts.lastSweep.Load()
	if now.UnixNano()-last < int64(l.cfg.SeriesIdle/4) || !ts.lastSweep.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	cutoff := now.Add(-l.cfg.SeriesIdle).Unix()
	for i := range ts.shards {
		sh := &ts.shards[i]
		sh.mu.Lock()
		for h, seen := range sh.seen {
			if seen < cutoff {
				delete(sh.seen, h)
				ts.active.Add(-1)
			}
		}
		sh.mu.Unlock()
	}
	l.active.WithLabelValues(id).Set(float64(ts.active.Load()))
}

// limitAppender checks each series against the tenant's set, then appends.
type limitAppender struct {
	l       *Limiter
	ts      *tenantState
	tenant  string
	now     int64
	next    storage.AppenderV2
	builder *labels.Builder // non-nil for a non-default tenant
	refused int
}

func (a *limitAppender) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *promhistogram.Histogram, fh *promhistogram.FloatHistogram, opts storage.AOptions) (storage.SeriesRef, error) {
	if a.builder != nil {
		a.builder.Reset(ls)
		a.builder.Set(LabelTenant, a.tenant)
		ls = a.builder.Labels()
	}
	if err := a.admitSeries(ls.Hash()); err != nil {
		return 0, err
	}
	return a.next.Append(ref, ls, st, t, v, h, fh, opts)
}

// admitSeries marks the series active, or refuses it when it is new and
// the tenant is at its limit.
func (a *limitAppender) admitSeries(hash uint64) error {
	sh := &a.ts.shards[hash%seriesShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.seen[hash]; ok {
		sh.seen[hash] = a.now
		return nil
	}
	if limit := a.l.cfg.MaxSeries; limit >= 0 && a.ts.active.Load() >= int64(limit) {
		a.refused++
		return &RetryableError{
			Err:   fmt.Errorf("tenant %q: %w: %d active series", a.tenant, ErrSeriesLimit, limit),
			After: a.l.cfg.LimitRetryAfter,
		}
	}
	sh.seen[hash] = a.now
	a.ts.active.Add(1)
	return nil
}

func (a *limitAppender) Commit() error {
	a.record()
	return a.next.Commit()
}

func (a *limitAppender) Rollback() error {
	a.record()
	return a.next.Rollback()
}

func (a *limitAppender) record() {
	if a.refused > 0 {
		a.l.refused.WithLabelValues(a.tenant, "series_limit").Add(float64(a.refused))
	}
	a.l.active.WithLabelValues(a.tenant).Set(float64(a.ts.active.Load()))
}
