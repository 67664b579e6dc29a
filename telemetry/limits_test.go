package telemetry

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// fakeClock is a settable clock for limits and baselines.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// appendSeries appends one sample of each named series as tenant and
// commits; it returns how many were refused by the limit.
func appendSeries(t *testing.T, l *Limiter, tenant string, ts int64, names ...string) int {
	t.Helper()
	app := l.AppenderV2(WithTenant(context.Background(), tenant))
	refused := 0
	for _, n := range names {
		_, err := app.Append(0, labels.FromStrings(labels.MetricName, n), 0, ts, 1, nil, nil, storage.AOptions{})
		var re *RetryableError
		switch {
		case err == nil:
		case errors.As(err, &re) && errors.Is(err, ErrSeriesLimit):
			refused++
			if re.After != time.Minute {
				t.Errorf("retry after %s, want the configured 1m", re.After)
			}
		default:
			t.Fatalf("append %s: %v", n, err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	return refused
}

func TestLimiterSeriesLimitPerTenant(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	store := openTestStore(t, StoreConfig{})
	l, err := NewLimiter(LimitsConfig{MaxSeries: 3, SeriesIdle: time.Hour, LimitRetryAfter: time.Minute, Now: clock.Now}, store)
	if err != nil {
		t.Fatal(err)
	}
	ms := clock.Now().UnixMilli()
	steps := []struct {
		tenant  string
		series  []string
		refused int
		advance time.Duration
	}{
		{"", []string{"a", "b", "c", "d"}, 1, 0},       // the fourth is over the limit
		{"", []string{"a", "b", "c"}, 0, 0},            // known series always pass
		{"team-1", []string{"a", "b", "c", "x"}, 1, 0}, // another tenant has its own limit
		{"", []string{"e"}, 1, 30 * time.Minute},       // still full
		{"", []string{"a"}, 0, 45 * time.Minute},       // a stays active; b and c go idle
		{"", []string{"e", "f", "g"}, 1, 0},            // room for two
	}
	for i, s := range steps {
		clock.Add(s.advance)
		if got := appendSeries(t, l, s.tenant, ms+int64(i), s.series...); got != s.refused {
			t.Errorf("step %d (%s %v): %d refused, want %d", i, s.tenant, s.series, got, s.refused)
		}
	}
	// A non-default tenant's series carry its label.
	got := seriesPoints(t, store, labels.MustNewMatcher(labels.MatchEqual, LabelTenant, "team-1"))
	if len(got) != 3 {
		t.Errorf("team-1 series stored: %v, want a, b and c with tenant=\"team-1\"", got)
	}
}

func TestLimiterRate(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	l, err := NewLimiter(LimitsConfig{SamplesPerSecond: 100, Burst: 200, Now: clock.Now}, openTestStore(t, StoreConfig{}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := WithTenant(context.Background(), "a")
	if err := l.Admit(ctx, 200); err != nil {
		t.Fatalf("a full burst: %v", err)
	}
	err = l.Admit(ctx, 50)
	var re *RetryableError
	if !errors.As(err, &re) || !errors.Is(err, ErrRateLimit) || re.After != 500*time.Millisecond {
		t.Fatalf("over the rate: %v, want a rate limit with retry after 500ms", err)
	}
	if err := l.Admit(WithTenant(context.Background(), "b"), 200); err != nil {
		t.Errorf("another tenant is limited by the first: %v", err)
	}
	clock.Add(500 * time.Millisecond)
	if err := l.Admit(ctx, 50); err != nil {
		t.Errorf("after the wait: %v", err)
	}
	if err := l.Admit(ctx, 201); err == nil || !strings.Contains(err.Error(), "burst of 200") || errors.As(err, &re) {
		t.Errorf("more than a burst at once: %v, want a non-retryable error naming the burst", err)
	}
}

func TestLimitsConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  LimitsConfig
		want string
	}{
		{LimitsConfig{}, ""},
		{LimitsConfig{SeriesIdle: -1}, "series idle"},
		{LimitsConfig{SamplesPerSecond: -1}, "samples per second"},
		{LimitsConfig{Burst: -1}, "burst"},
		{LimitsConfig{LimitRetryAfter: -1}, "retry after"},
	} {
		err := tc.cfg.Validate()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
	for _, id := range []string{"", "team-1", "a.b_c"} {
		if err := ValidateTenant(id); err != nil {
			t.Errorf("ValidateTenant(%q) = %v", id, err)
		}
	}
	for _, id := range []string{"a b", strings.Repeat("x", 65), "a/b", "é"} {
		if err := ValidateTenant(id); err == nil {
			t.Errorf("ValidateTenant(%q) accepted", id)
		}
	}
}
