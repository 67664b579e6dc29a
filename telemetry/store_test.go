package telemetry

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/phoenixsre/phoenix"
)

// openTestStore opens a store in a temporary directory, closed at the end
// of the test.
func openTestStore(t *testing.T, cfg StoreConfig) *Store {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	s, err := OpenStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// seriesPoints reads every float sample of the series matching ms.
func seriesPoints(t *testing.T, s *Store, ms ...*labels.Matcher) map[string][]Point {
	t.Helper()
	out := make(map[string][]Point)
	err := s.Select(context.Background(), time.UnixMilli(0), time.Now().Add(time.Hour), ms, func(ls labels.Labels, ts int64, v float64) {
		out[ls.String()] = append(out[ls.String()], Point{T: time.UnixMilli(ts), V: v})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestStoreSignalsSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(StoreConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	orders := Target{Component: "orders", Environment: phoenix.Primary}
	t0 := time.Now().Truncate(time.Millisecond)
	for i := range 5 {
		vals := map[phoenix.Signal]float64{phoenix.SignalMemory: float64(100 + i), phoenix.SignalLatency: 0.01 * float64(i)}
		if err := s.Append(orders, t0.Add(time.Duration(i)*time.Second), vals); err != nil {
			t.Fatal(err)
		}
	}
	// A value older than the newest is refused, with the reason.
	err = s.Append(orders, t0, map[phoenix.Signal]float64{phoenix.SignalMemory: 1})
	if err == nil || !strings.Contains(err.Error(), "out of order") {
		t.Errorf("out-of-order append = %v, want an out of order error", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTestStore(t, StoreConfig{Dir: dir})
	got, err := s.Points(context.Background(), "orders", phoenix.Primary, phoenix.SignalMemory, t0, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 {
		t.Fatalf("after reopen: %d memory points, want 5: %v", len(got), got)
	}
	for i, p := range got {
		if !p.T.Equal(t0.Add(time.Duration(i)*time.Second)) || p.V != float64(100+i) {
			t.Errorf("point %d = %v, want %v at %s", i, p, 100+i, t0.Add(time.Duration(i)*time.Second))
		}
	}
	if got, _ := s.Points(context.Background(), "orders", phoenix.Secondary, phoenix.SignalMemory, t0, t0.Add(time.Minute)); len(got) != 0 {
		t.Errorf("secondary environment has %d points, want none", len(got))
	}
}

func TestStoreCompactsAndEnforcesRetention(t *testing.T) {
	const block = time.Hour
	s := openTestStore(t, StoreConfig{BlockDuration: block, Retention: 4 * time.Hour})
	// Ten hours of one series, a point a minute, in one go: the head spans
	// far more than a block, so compaction cuts blocks and retention drops
	// the oldest.
	t0 := time.Now().Add(-10 * time.Hour).Truncate(time.Hour)
	ls := labels.FromStrings(labels.MetricName, "queue_depth", LabelComponent, "orders")
	app := s.AppenderV2(context.Background())
	for i := range 10 * 60 {
		if _, err := app.Append(0, ls, 0, t0.Add(time.Duration(i)*time.Minute).UnixMilli(), float64(i), nil, nil, storage.AOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	blocks := s.db.Blocks()
	if len(blocks) == 0 {
		t.Fatal("no block after compaction")
	}
	newest := blocks[len(blocks)-1].Meta().MaxTime
	for _, b := range blocks {
		if m := b.Meta(); m.MaxTime-m.MinTime > 4*time.Hour.Milliseconds() || m.MaxTime < newest-5*time.Hour.Milliseconds() {
			t.Errorf("block %s spans %s..%s: past retention or larger than allowed", m.ULID, time.UnixMilli(m.MinTime), time.UnixMilli(m.MaxTime))
		}
	}
	pts := seriesPoints(t, s, labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, "queue_depth"))[ls.String()]
	if len(pts) == 0 || !pts[0].T.After(t0.Add(4*time.Hour)) {
		t.Errorf("oldest point kept is %v, want one within the retention (after %s)", pts[:min(1, len(pts))], t0.Add(4*time.Hour))
	}
	if last := pts[len(pts)-1]; last.V != 599 {
		t.Errorf("newest point %v, want 599", last)
	}
}

func TestStoreConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  StoreConfig
		want string
	}{
		{StoreConfig{Dir: "x"}, ""},
		{StoreConfig{}, "dir is empty"},
		{StoreConfig{Dir: "x", Retention: -time.Hour}, "retention -1h0m0s: must be positive"},
		{StoreConfig{Dir: "x", BlockDuration: time.Second}, "at least 1m"},
	} {
		err := tc.cfg.Validate()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
