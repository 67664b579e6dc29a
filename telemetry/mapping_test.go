package telemetry

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"

	"github.com/phoenixsre/phoenix"
)

// raw is one pushed sample: a series in Prometheus's text notation
// (name{a="b",...}), a time in seconds and a value.
type raw struct {
	series string
	t      float64
	v      float64
}

func parseSeries(t *testing.T, s string) labels.Labels {
	t.Helper()
	name, rest, _ := strings.Cut(s, "{")
	b := labels.NewScratchBuilder(4)
	b.Add(labels.MetricName, name)
	rest = strings.TrimSuffix(rest, "}")
	for _, pair := range strings.Split(rest, ",") {
		if pair == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		if !ok {
			t.Fatalf("bad series %q", s)
		}
		b.Add(k, strings.Trim(v, `"`))
	}
	b.Sort()
	return b.Labels()
}

// push appends one batch through a and commits it.
func push(t *testing.T, a storage.AppendableV2, batch ...raw) {
	t.Helper()
	app := a.AppenderV2(context.Background())
	for _, r := range batch {
		if _, err := app.Append(0, parseSeries(t, r.series), 0, int64(r.t*1000), r.v, nil, nil, storage.AOptions{}); err != nil {
			t.Fatalf("append %v: %v", r, err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
}

var base = float64(time.Now().Add(-time.Hour).Unix())

func TestMapperSignals(t *testing.T) {
	const lat = "http_request_duration_seconds_bucket"
	cases := []struct {
		name    string
		cfg     MappingConfig
		batches [][]raw
		want    []Sample // the samples of the last batch
	}{
		{
			name: "gauges summed over series, component from the component label",
			batches: [][]raw{{
				{`process_resident_memory_bytes{component="orders",instance="a"}`, base, 100},
				{`process_resident_memory_bytes{component="orders",instance="b"}`, base, 50},
				{`process_resident_memory_bytes{component="cart",job="x"}`, base, 7},
			}},
			want: []Sample{
				{Target: Target{Component: "cart", Environment: phoenix.Primary}, Time: time.Unix(int64(base), 0), Values: map[phoenix.Signal]float64{phoenix.SignalMemory: 7}},
				{Target: Target{Component: "orders", Environment: phoenix.Primary}, Time: time.Unix(int64(base), 0), Values: map[phoenix.Signal]float64{phoenix.SignalMemory: 150}},
			},
		},
		{
			name: "counter rates per series, a reset counts from zero, errors over requests",
			batches: [][]raw{
				{
					{`process_cpu_seconds_total{job="orders"}`, base, 10},
					{`http_requests_total{job="orders",code="200"}`, base, 100},
					{`http_requests_total{job="orders",code="500"}`, base, 30},
					{`http_request_errors_total{job="orders"}`, base, 10},
				},
				{
					{`process_cpu_seconds_total{job="orders"}`, base + 10, 15},
					{`http_requests_total{job="orders",code="200"}`, base + 10, 160},
					{`http_requests_total{job="orders",code="500"}`, base + 10, 20}, // reset: 20 new
					{`http_request_errors_total{job="orders"}`, base + 10, 18},
				},
			},
			want: []Sample{{Target: Target{Component: "orders", Environment: phoenix.Primary}, Time: time.Unix(int64(base)+10, 0),
				Values: map[phoenix.Signal]float64{phoenix.SignalCPU: 0.5, phoenix.SignalRate: 8, phoenix.SignalErrors: 0.1}}},
		},
		{
			name: "no errors family: error ratio 0",
			batches: [][]raw{
				{{`http_requests_total{service="cart"}`, base, 1}},
				{{`http_requests_total{service="cart"}`, base + 2, 5}},
			},
			want: []Sample{{Target: Target{Component: "cart", Environment: phoenix.Primary}, Time: time.Unix(int64(base)+2, 0),
				Values: map[phoenix.Signal]float64{phoenix.SignalRate: 2, phoenix.SignalErrors: 0}}},
		},
		{
			name: "latency: p99 of bucket increases summed by bound",
			batches: [][]raw{
				{
					{lat + `{component="orders",path="/a",le="0.1"}`, base, 10},
					{lat + `{component="orders",path="/a",le="1"}`, base, 10},
					{lat + `{component="orders",path="/a",le="+Inf"}`, base, 10},
				},
				{
					{lat + `{component="orders",path="/a",le="0.1"}`, base + 1, 10},
					{lat + `{component="orders",path="/a",le="1"}`, base + 1, 110},
					{lat + `{component="orders",path="/a",le="+Inf"}`, base + 1, 110},
				},
			},
			want: []Sample{{Target: Target{Component: "orders", Environment: phoenix.Primary}, Time: time.Unix(int64(base)+1, 0),
				Values: map[phoenix.Signal]float64{phoenix.SignalLatency: 0.1 + 0.9*0.99}}},
		},
		{
			name: "environment label, and the first component label wins",
			batches: [][]raw{{
				{`process_resident_memory_bytes{component="orders",job="node",environment="secondary"}`, base, 3},
			}},
			want: []Sample{{Target: Target{Component: "orders", Environment: phoenix.Secondary}, Time: time.Unix(int64(base), 0),
				Values: map[phoenix.Signal]float64{phoenix.SignalMemory: 3}}},
		},
		{
			name: "invalid component names and unknown metrics are not mapped",
			batches: [][]raw{{
				{`process_resident_memory_bytes{job="Not A Name"}`, base, 3},
				{`process_resident_memory_bytes{instance="x"}`, base, 3},
				{`go_goroutines{component="orders"}`, base, 3},
			}},
		},
		{
			name: "allow-list",
			cfg:  MappingConfig{Components: []phoenix.ComponentID{"orders"}},
			batches: [][]raw{{
				{`process_resident_memory_bytes{component="orders"}`, base, 1},
				{`process_resident_memory_bytes{component="cart"}`, base, 2},
			}},
			want: []Sample{{Target: Target{Component: "orders", Environment: phoenix.Primary}, Time: time.Unix(int64(base), 0),
				Values: map[phoenix.Signal]float64{phoenix.SignalMemory: 1}}},
		},
		{
			name: "custom labels, I/O and extra signals",
			cfg: MappingConfig{
				ComponentLabels: []string{"app"}, EnvironmentLabel: "env",
				Signals: SignalMap{IO: "disk_io_bytes_total"},
				Extra:   []ExtraSignal{{Signal: "queue", Metric: "queue_depth"}, {Signal: "gc", Metric: "gc_total", Rate: true}},
			},
			batches: [][]raw{
				{{`disk_io_bytes_total{app="db",env="secondary"}`, base, 0}, {`gc_total{app="db",env="secondary"}`, base, 0}},
				{
					{`disk_io_bytes_total{app="db",env="secondary"}`, base + 4, 4096},
					{`gc_total{app="db",env="secondary"}`, base + 4, 2},
					{`queue_depth{app="db",env="secondary"}`, base + 4, 12},
				},
			},
			want: []Sample{{Target: Target{Component: "db", Environment: phoenix.Secondary}, Time: time.Unix(int64(base)+4, 0),
				Values: map[phoenix.Signal]float64{SignalIO: 1024, "gc": 0.5, "queue": 12}}},
		},
		{
			name: "a staleness marker ends a series at once",
			batches: [][]raw{
				{
					{`process_resident_memory_bytes{component="orders",instance="a"}`, base, 100},
					{`process_resident_memory_bytes{component="orders",instance="b"}`, base, 5},
				},
				{{`process_resident_memory_bytes{component="orders",instance="a"}`, base + 1, math.Float64frombits(value.StaleNaN)}},
			},
			want: []Sample{{Target: Target{Component: "orders", Environment: phoenix.Primary}, Time: time.Unix(int64(base)+1, 0),
				Values: map[phoenix.Signal]float64{phoenix.SignalMemory: 5}}},
		},
		{
			name: "stale series leave the sum",
			cfg:  MappingConfig{Stale: time.Minute},
			batches: [][]raw{
				{{`process_resident_memory_bytes{component="orders",instance="old"}`, base, 100}},
				{{`process_resident_memory_bytes{component="orders",instance="new"}`, base + 120, 5}},
			},
			want: []Sample{{Target: Target{Component: "orders", Environment: phoenix.Primary}, Time: time.Unix(int64(base)+120, 0),
				Values: map[phoenix.Signal]float64{phoenix.SignalMemory: 5}}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			store := openTestStore(t, StoreConfig{})
			rec := &recorder{}
			tc.cfg.OnSample = rec.add
			m, err := NewMapper(tc.cfg, store)
			if err != nil {
				t.Fatal(err)
			}
			var n int
			for _, b := range tc.batches {
				n = len(rec.all())
				push(t, m, b...)
			}
			got := rec.all()[n:]
			sortSamples(got)
			opt := cmp.Comparer(func(a, b float64) bool { return math.Abs(a-b) < 1e-9 })
			if diff := cmp.Diff(tc.want, got, opt, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
				t.Errorf("samples (-want +got):\n%s", diff)
			}
			// Every sample went through to the store, mapped or not.
			total := 0
			for _, b := range tc.batches {
				total += len(b)
			}
			stored := 0
			for _, pts := range seriesPoints(t, store, labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, ".+")) {
				stored += len(pts)
			}
			if stored != total {
				t.Errorf("store has %d samples, want all %d", stored, total)
			}
		})
	}
}

func sortSamples(ss []Sample) {
	for i := 1; i < len(ss); i++ {
		for j := i; j > 0 && ss[j].Target.Component < ss[j-1].Target.Component; j-- {
			ss[j], ss[j-1] = ss[j-1], ss[j]
		}
	}
}

func TestMapperRollbackMapsNothing(t *testing.T) {
	rec := &recorder{}
	m, err := NewMapper(MappingConfig{OnSample: rec.add}, openTestStore(t, StoreConfig{}))
	if err != nil {
		t.Fatal(err)
	}
	app := m.AppenderV2(context.Background())
	if _, err := app.Append(0, parseSeries(t, `process_resident_memory_bytes{component="orders"}`), 0, int64(base*1000), 1, nil, nil, storage.AOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := app.Rollback(); err != nil {
		t.Fatal(err)
	}
	if got := rec.all(); len(got) != 0 || len(m.Components()) != 0 {
		t.Errorf("a rolled back append produced %v, components %v", got, m.Components())
	}
}

func TestMappingConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  MappingConfig
		want string
	}{
		{MappingConfig{}, ""},
		{MappingConfig{ComponentLabels: []string{"__name__"}}, "not a label name"},
		{MappingConfig{EnvironmentLabel: "a-b"}, "not a label name"},
		{MappingConfig{Components: []phoenix.ComponentID{"Bad"}}, "component name"},
		{MappingConfig{Extra: []ExtraSignal{{Signal: "memory", Metric: "x"}}}, "standard signal"},
		{MappingConfig{Extra: []ExtraSignal{{Signal: "q"}}}, "give both"},
		{MappingConfig{Extra: []ExtraSignal{{Signal: "q", Metric: "a"}, {Signal: "q", Metric: "b"}}}, "named twice"},
		{MappingConfig{Stale: -1}, "stale"},
	} {
		err := tc.cfg.Validate()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
