package shop

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRamp(t *testing.T) {
	cases := []struct {
		perSecond, limit float64
		elapsed          time.Duration
		want             float64
	}{
		{100, 300, 0, 0},
		{100, 300, -time.Second, 0},
		{100, 300, 1500 * time.Millisecond, 150},
		{100, 300, 10 * time.Second, 300},
		{0.2, 0.5, 2 * time.Second, 0.4},
		{0.2, 0.5, time.Minute, 0.5},
	}
	for _, c := range cases {
		if got := ramp(c.perSecond, c.limit, c.elapsed); got < c.want-1e-9 || got > c.want+1e-9 {
			t.Errorf("ramp(%v, %v, %v) = %v, want %v", c.perSecond, c.limit, c.elapsed, got, c.want)
		}
	}
}

// fakeClock is a settable clock for the fault driver.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newTestFaults(dir string) (*faults, *fakeClock) {
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	return &faults{
		log: slog.New(slog.DiscardHandler), now: clock.Now, random: func() float64 { return 0.5 },
		dataDir: dir, rss: func() (int64, error) { return 0, nil }, kill: func() {},
	}, clock
}

func TestFaultDriverFollowsTheClock(t *testing.T) {
	dir := t.TempDir()
	f, clock := newTestFaults(dir)
	mustApply := func(spec faultSpec) {
		t.Helper()
		if err := f.apply(spec); err != nil {
			t.Fatal(err)
		}
	}
	mustApply(faultSpec{Kind: faultLeak, BytesPerSecond: 10 << 20})
	mustApply(faultSpec{Kind: faultDisk, BytesPerSecond: 3 << 20})
	clock.Advance(1500 * time.Millisecond)
	f.step()
	levels := map[string]float64{}
	for _, s := range f.status() {
		levels[s.Kind] = s.Level
	}
	if levels[faultLeak] != 15<<20 || levels[faultDisk] != 4.5*(1<<20) {
		t.Errorf("after 1.5s levels = %v, want leak 15 MiB and disk 4.5 MiB", levels)
	}
	if got := diskUsed(dir); got != 4.5*(1<<20) {
		t.Errorf("filler files hold %d bytes, want 4.5 MiB", got)
	}
	// A long stall is caught up at most maxStep per tick.
	clock.Advance(time.Hour)
	f.step()
	if got := f.status()[0].Level; got != 15<<20+maxStep {
		t.Errorf("after a stall the leak is %v, want %v", got, 15<<20+maxStep)
	}
	mustApply(faultSpec{Kind: faultClear})
	if len(f.status()) != 0 || f.chunks != nil {
		t.Errorf("clear left %v and %d chunks", f.status(), len(f.chunks))
	}
	if _, err := os.Stat(filepath.Join(dir, "fill")); !os.IsNotExist(err) {
		t.Errorf("clear left the filler directory: %v", err)
	}
}

func TestMemoryLimitCallsKill(t *testing.T) {
	f, _ := newTestFaults("")
	killed := 0
	f.kill = func() { killed++ }
	f.memoryLimit = 100
	for _, rss := range []int64{50, 100, 101} {
		f.rss = func() (int64, error) { return rss, nil }
		f.checkMemory()
	}
	if killed != 1 {
		t.Errorf("kill called %d times, want once (only above the limit)", killed)
	}
}

func TestInjectLatencyAndErrors(t *testing.T) {
	f, clock := newTestFaults("")
	srv := httptest.NewServer(f.inject(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("fine"))
	})))
	defer srv.Close()
	get := func() (int, string) { return do(t, http.MethodGet, srv.URL, "") }

	if err := f.apply(faultSpec{Kind: faultErrors, PerSecond: 0.2, Max: 0.8}); err != nil {
		t.Fatal(err)
	}
	// f.random always says 0.5: below p fails, at or above passes.
	clock.Advance(2 * time.Second) // p = 0.4
	if code, body := get(); code != 200 || body != "fine" {
		t.Errorf("at p=0.4 = %d %q, want 200", code, body)
	}
	clock.Advance(2 * time.Second) // p = 0.8
	if code, body := get(); code != 500 || !strings.Contains(body, "injected fault") {
		t.Errorf("at p=0.8 = %d %q, want the injected 500", code, body)
	}
	if delay, p := f.levels(); delay != 0 || p != 0.8 {
		t.Errorf("levels = %v, %v", delay, p)
	}
	if err := f.apply(faultSpec{Kind: faultLatency, MsPerSecond: 40, MaxMs: 100}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	if delay, _ := f.levels(); delay != 40*time.Millisecond {
		t.Errorf("latency after 1s = %v, want 40ms", delay)
	}
	clock.Advance(time.Hour)
	if delay, _ := f.levels(); delay != 100*time.Millisecond {
		t.Errorf("latency after an hour = %v, want the 100ms ceiling", delay)
	}
}
