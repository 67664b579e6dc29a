package traffic

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestOutlierVerdict(t *testing.T) {
	c := OutlierConfig{}.withDefaults()
	tests := []struct {
		name          string
		cfg           OutlierConfig
		consec        int64
		reqs, errs    uint64
		wantSubstring string // "" means not an outlier
	}{
		{"healthy", c, 0, 100, 0, ""},
		{"a few errors in a row", c, 4, 100, 4, ""},
		{"consecutive errors", c, 5, 100, 5, "5 consecutive"},
		{"error rate", c, 0, 40, 20, "20 of 40 requests failed"},
		{"error rate below limit", c, 0, 40, 19, ""},
		{"too few requests for the rate", c, 0, 19, 19, ""},
		{"disabled", OutlierConfig{Disabled: true}.withDefaults(), 50, 100, 100, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.cfg.verdict(tc.consec, tc.reqs, tc.errs)
			if (tc.wantSubstring == "") != (got == "") || !strings.Contains(got, tc.wantSubstring) {
				t.Errorf("verdict = %q, want %q", got, tc.wantSubstring)
			}
		})
	}
}

func TestOutlierEjectionRules(t *testing.T) {
	c := OutlierConfig{EjectionTime: 10 * time.Second, MaxEjectionTime: 35 * time.Second}.withDefaults()
	for n, want := range map[int]time.Duration{0: 10 * time.Second, 1: 10 * time.Second, 2: 20 * time.Second, 3: 30 * time.Second, 4: 35 * time.Second, 1000: 35 * time.Second} {
		if got := c.ejectionTime(n); got != want {
			t.Errorf("ejectionTime(%d) = %s, want %s", n, got, want)
		}
	}
	tests := []struct {
		serving, ejected, percent int
		want                      bool
	}{
		{1, 0, 50, false}, // never the last one
		{2, 0, 50, true},
		{2, 1, 50, false},
		{2, 0, 10, true}, // one may always go while another serves
		{4, 1, 50, true},
		{4, 2, 50, false},
		{10, 8, 100, true},
		{10, 9, 100, false},
	}
	for _, tc := range tests {
		c := OutlierConfig{MaxEjectedPercent: tc.percent}.withDefaults()
		if got := c.mayEject(tc.serving, tc.ejected); got != tc.want {
			t.Errorf("mayEject(serving %d, ejected %d, %d%%) = %v, want %v", tc.serving, tc.ejected, tc.percent, got, tc.want)
		}
	}
}

func TestOutlierConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  OutlierConfig
		want string
	}{
		{OutlierConfig{ErrorRate: 1.5}, "ErrorRate 1.5"},
		{OutlierConfig{ConsecutiveErrors: -1}, "ConsecutiveErrors -1"},
		{OutlierConfig{MaxEjectedPercent: 101}, "MaxEjectedPercent 101"},
		{OutlierConfig{EjectionTime: time.Hour, MaxEjectionTime: time.Minute}, "EjectionTime 1h0m0s exceeds MaxEjectionTime"},
	} {
		err := Config{Component: "o", Outlier: tc.cfg}.withDefaults().validate()
		if err == nil || !strings.Contains(err.Error(), "Outlier."+tc.want) {
			t.Errorf("validate(%+v) = %v, want an error containing %q", tc.cfg, err, "Outlier."+tc.want)
		}
	}
}

// TestOutlierEjection: a replica that answers 500 while passing its health
// checks is ejected from a pool after ConsecutiveErrors failures, gets no
// request while ejected, and serves again after the ejection ends. The last
// serving backend is only flagged.
func TestOutlierEjection(t *testing.T) {
	b1 := startBackend(t, "orders-1")
	b2 := startBackend(t, "orders-2")
	p := startProxy(t, Config{Outlier: OutlierConfig{ConsecutiveErrors: 3, EjectionTime: time.Second, MaxEjectionTime: time.Second}}, b1.backend())
	if err := p.AddBackend(b2.backend()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "orders-2 to join", func() bool { return p.Status().Pool[1].Joined })
	base := "http://" + p.Addr().String()
	get := func() (string, int) {
		resp, err := http.Get(base + "/who")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		readAll(t, resp)
		return resp.Header.Get("X-Served-By"), resp.StatusCode
	}

	b2.put(t, "/admin/fail/500")
	failures := 0
	for i := 0; i < 200 && p.Status().Pool[1].EjectedUntil.IsZero(); i++ {
		if _, code := get(); code == http.StatusInternalServerError {
			failures++
		}
	}
	s := p.Status()
	if s.Pool[1].EjectedUntil.IsZero() {
		t.Fatalf("orders-2 not ejected after %d failures: %+v", failures, s.Pool[1])
	}
	if failures != 3 {
		t.Errorf("%d requests failed before the ejection, want exactly ConsecutiveErrors (3)", failures)
	}
	b2.put(t, "/admin/fail/0")
	for range 30 {
		if !p.Status().Pool[1].EjectedUntil.IsZero() {
			if by, _ := get(); by != b1.name {
				t.Fatalf("request served by %s while it is ejected", by)
			}
		}
	}
	waitFor(t, 5*time.Second, "the ejection to end", func() bool { return p.Status().Pool[1].EjectedUntil.IsZero() })
	waitFor(t, 5*time.Second, "orders-2 to serve again", func() bool { by, _ := get(); return by == b2.name })

	// Alone, orders-1 is flagged and keeps serving.
	if err := p.RemoveBackend(t.Context(), b2.name); err != nil {
		t.Fatal(err)
	}
	b1.put(t, "/admin/fail/503")
	for range 3 {
		get()
	}
	s = p.Status()
	if !s.Active.EjectedUntil.IsZero() || !strings.Contains(s.Active.Outlier, "3 consecutive") {
		t.Errorf("last backend: ejected_until=%v outlier=%q, want flagged and not ejected", s.Active.EjectedUntil, s.Active.Outlier)
	}
	if by, code := get(); by != b1.name || code != http.StatusServiceUnavailable {
		t.Errorf("flagged last backend: served by %q with %d, want it still to serve", by, code)
	}
}

// FuzzOutlierRules: whatever the counts, the rules never eject the last
// serving backend, never eject more than allowed, and ejections last between
// EjectionTime and MaxEjectionTime.
func FuzzOutlierRules(f *testing.F) {
	f.Add(uint8(5), 0.5, uint16(20), int64(5), uint64(100), uint64(5), uint8(2), uint8(0), uint8(50), uint16(3))
	f.Add(uint8(1), 1.0, uint16(1), int64(0), uint64(1), uint64(1), uint8(1), uint8(0), uint8(100), uint16(0))
	f.Fuzz(func(t *testing.T, consecutive uint8, rate float64, minReqs uint16, consec int64, reqs, errs uint64, serving, ejected, percent uint8, n uint16) {
		c := OutlierConfig{ConsecutiveErrors: int(consecutive), ErrorRate: rate, MinRequests: int(minReqs), MaxEjectedPercent: int(percent) % 101}.withDefaults()
		if c.validate() != nil {
			return
		}
		if errs > reqs {
			errs = reqs
		}
		_ = c.verdict(consec, reqs, errs) // must not panic
		s, e := int(serving), int(min(ejected, serving))
		if c.mayEject(s, e) && (s-e <= 1 || e+1 > max(1, s*c.MaxEjectedPercent/100)) {
			t.Fatalf("mayEject(%d, %d) at %d%% allowed an ejection it must not", s, e, c.MaxEjectedPercent)
		}
		if d := c.ejectionTime(int(n)); d < min(c.EjectionTime, c.MaxEjectionTime) || d > c.MaxEjectionTime {
			t.Fatalf("ejectionTime(%d) = %s outside [%s, %s]", n, d, c.EjectionTime, c.MaxEjectionTime)
		}
	})
}
