package telemetry

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/phoenixsre/phoenix"
)

func TestHistogramQuantile(t *testing.T) {
	inf := math.Inf(1)
	b := func(pairs ...float64) []Bucket {
		var out []Bucket
		for i := 0; i+1 < len(pairs); i += 2 {
			out = append(out, Bucket{UpperBound: pairs[i], Count: pairs[i+1]})
		}
		return out
	}
	cases := []struct {
		name    string
		q       float64
		buckets []Bucket
		want    float64
		ok      bool
	}{
		// The cases of PromQL's own histogram_quantile tests (testdata/histograms.test):
		// buckets 0.1:50 0.2:70 +Inf:100 plus intermediate ones.
		{"median in second bucket", 0.5, b(0.1, 10, 0.2, 30, 0.3, 50, 0.4, 70, 0.5, 90, inf, 100), 0.3, true},
		{"q=0.9 interpolates", 0.9, b(0.1, 10, 0.2, 30, 0.3, 50, 0.4, 70, 0.5, 90, inf, 100), 0.5, true},
		{"q=0.95 in +Inf bucket gives highest finite bound", 0.95, b(0.1, 10, 0.2, 30, 0.3, 50, 0.4, 70, 0.5, 90, inf, 100), 0.5, true},
		{"q=0.25", 0.25, b(0.1, 10, 0.2, 30, 0.3, 50, 0.4, 70, 0.5, 90, inf, 100), 0.175, true},
		{"first bucket starts at zero", 0.5, b(1, 10, inf, 10), 0.5, true},
		{"negative first bound returned as is", 0.3, b(-1, 10, 0, 20, inf, 30), -1, true},
		{"unsorted input", 0.5, b(inf, 100, 0.2, 70, 0.1, 50), 0.1, true},
		{"equal bounds coalesce", 0.5, b(0.1, 25, 0.1, 25, 0.2, 70, inf, 100), 0.1, true},
		{"non-monotonic counts fixed", 0.75, b(0.1, 50, 0.2, 40, inf, 100), 0.2, true},
		{"p99 of 100 at 50ms", 0.99, b(0.025, 0, 0.05, 100, 0.1, 100, inf, 100), 0.04975, true},
		{"q=0", 0, b(0.1, 10, inf, 20), 0, true},
		{"q=1", 1, b(0.1, 10, 0.2, 20, inf, 20), 0.2, true},
		{"no observations", 0.5, b(0.1, 0, inf, 0), 0, false},
		{"no +Inf bucket", 0.5, b(0.1, 10, 0.2, 20), 0, false},
		{"single bucket", 0.5, b(inf, 10), 0, false},
		{"q above 1", 1.5, b(0.1, 10, inf, 20), 0, false},
		{"q negative", -0.1, b(0.1, 10, inf, 20), 0, false},
		{"q NaN", math.NaN(), b(0.1, 10, inf, 20), 0, false},
		{"infinite count", 0.5, b(0.1, 10, inf, inf), 0, false},
		{"NaN bucket dropped", 0.5, b(math.NaN(), 5, 0.1, 10, inf, 20), 0.1, true},
		{"empty", 0.5, nil, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := HistogramQuantile(tc.q, tc.buckets)
			if ok != tc.ok || math.Abs(got-tc.want) > 1e-12 {
				t.Errorf("HistogramQuantile(%v) = %v, %v; want %v, %v", tc.q, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// parseText is a test shorthand: a text exposition body to a reading.
func parseText(t *testing.T, body string) *reading {
	t.Helper()
	fams, err := parseFamilies([]byte(body), "text/plain; version=0.0.4")
	if err != nil {
		t.Fatalf("parse %q: %v", body, err)
	}
	return extract(fams, demoSignals())
}

func TestSignalValues(t *testing.T) {
	const hist = `# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{path="/a",le="0.1"} %A1
http_request_duration_seconds_bucket{path="/a",le="1"} %A2
http_request_duration_seconds_bucket{path="/a",le="+Inf"} %A2
http_request_duration_seconds_count{path="/a"} %A2
http_request_duration_seconds_sum{path="/a"} 0
`
	histo := func(below, total string) string {
		return strings.NewReplacer("%A1", below, "%A2", total).Replace(hist)
	}
	cases := []struct {
		name      string
		prev, cur string // "" prev: first scrape
		dt        time.Duration
		want      map[phoenix.Signal]float64
	}{
		{
			name: "first scrape gives gauges only",
			cur:  "process_resident_memory_bytes 5e6\nshop_disk_used_bytes{vol=\"a\"} 1\nshop_disk_used_bytes{vol=\"b\"} 2\nhttp_requests_total 10\n",
			want: map[phoenix.Signal]float64{phoenix.SignalMemory: 5e6, phoenix.SignalDisk: 3},
		},
		{
			name: "rates over two seconds, summed over label sets",
			prev: "process_cpu_seconds_total 10\nhttp_requests_total{code=\"200\"} 100\nhttp_request_errors_total 0\n",
			cur:  "process_cpu_seconds_total 11\nhttp_requests_total{code=\"200\"} 130\nhttp_requests_total{code=\"500\"} 10\nhttp_request_errors_total 10\n",
			dt:   2 * time.Second,
			want: map[phoenix.Signal]float64{phoenix.SignalCPU: 0.5, phoenix.SignalRate: 20, phoenix.SignalErrors: 0.25},
		},
		{
			name: "errors family absent means no errors yet",
			prev: "http_requests_total 100\n",
			cur:  "http_requests_total 150\n",
			dt:   time.Second,
			want: map[phoenix.Signal]float64{phoenix.SignalRate: 50, phoenix.SignalErrors: 0},
		},
		{
			name: "no requests in the interval: rate 0, no error ratio",
			prev: "http_requests_total 100\nhttp_request_errors_total 3\n",
			cur:  "http_requests_total 100\nhttp_request_errors_total 3\n",
			dt:   time.Second,
			want: map[phoenix.Signal]float64{phoenix.SignalRate: 0},
		},
		{
			name: "requests family absent: neither rate nor errors",
			prev: "process_cpu_seconds_total 1\n",
			cur:  "process_cpu_seconds_total 1\nhttp_request_errors_total 3\n",
			dt:   time.Second,
			want: map[phoenix.Signal]float64{phoenix.SignalCPU: 0},
		},
		{
			name: "counter reset skips the interval",
			prev: "process_cpu_seconds_total 100\nhttp_requests_total{code=\"200\"} 100\nhttp_requests_total{code=\"500\"} 5\n",
			cur:  "process_cpu_seconds_total 0.5\nhttp_requests_total{code=\"200\"} 120\nhttp_requests_total{code=\"500\"} 1\n",
			dt:   time.Second,
			want: map[phoenix.Signal]float64{},
		},
		{
			name: "errors above requests clamp to 1",
			prev: "http_requests_total 10\nhttp_request_errors_total 0\n",
			cur:  "http_requests_total 11\nhttp_request_errors_total 5\n",
			dt:   time.Second,
			want: map[phoenix.Signal]float64{phoenix.SignalRate: 1, phoenix.SignalErrors: 1},
		},
		{
			name: "zero interval gives gauges only",
			prev: "process_resident_memory_bytes 1\nhttp_requests_total 10\n",
			cur:  "process_resident_memory_bytes 2\nhttp_requests_total 20\n",
			dt:   0,
			want: map[phoenix.Signal]float64{phoenix.SignalMemory: 2},
		},
		{
			name: "latency p99 of the interval's observations",
			prev: histo("10", "10"),
			cur:  histo("10", "110"),
			dt:   time.Second,
			want: map[phoenix.Signal]float64{phoenix.SignalLatency: 0.1 + 0.9*(99-0)/100},
		},
		{
			name: "no observations: no latency",
			prev: histo("10", "10"),
			cur:  histo("10", "10"),
			dt:   time.Second,
			want: map[phoenix.Signal]float64{},
		},
		{
			name: "histogram reset: no latency",
			prev: histo("10", "50"),
			cur:  histo("1", "2"),
			dt:   time.Second,
			want: map[phoenix.Signal]float64{},
		},
		{
			name: "new histogram label set counts from zero",
			prev: "# TYPE http_request_duration_seconds histogram\n",
			cur:  histo("100", "100"),
			dt:   time.Second,
			want: map[phoenix.Signal]float64{phoenix.SignalLatency: 0.099},
		},
		{
			name: "non-finite gauge dropped",
			cur:  "process_resident_memory_bytes NaN\nshop_disk_used_bytes +Inf\n",
			want: map[phoenix.Signal]float64{},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var prev *reading
			if tc.prev != "" {
				prev = parseText(t, tc.prev)
			}
			got := signalValues(prev, parseText(t, tc.cur), tc.dt)
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b float64) bool { return math.Abs(a-b) < 1e-9 })); diff != "" {
				t.Errorf("values (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHistogramLayoutChangeSkipsInterval(t *testing.T) {
	prev := &reading{latency: map[string]histogram{"": {bounds: []float64{0.1, math.Inf(1)}, counts: []float64{1, 2}}}}
	cur := &reading{latency: map[string]histogram{"": {bounds: []float64{0.2, math.Inf(1)}, counts: []float64{5, 9}}}}
	if v, ok := signalValues(prev, cur, time.Second)[phoenix.SignalLatency]; ok {
		t.Errorf("latency across a bucket layout change = %v, want none", v)
	}
}
