package telemetry

import (
	"context"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phoenixsre/phoenix"
)

// A reading from a plausible previous scrape, so the fuzzer also exercises
// the rate, ratio and quantile paths.
const fuzzBase = `# TYPE http_requests_total counter
http_requests_total{code="200"} 10
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.1"} 1
http_request_duration_seconds_bucket{le="+Inf"} 2
http_request_duration_seconds_sum 0.3
http_request_duration_seconds_count 2
process_cpu_seconds_total 1
`

var fuzzContentTypes = []string{
	"text/plain; version=0.0.4; charset=utf-8",
	"application/openmetrics-text; version=1.0.0; charset=utf-8",
	"",
	"application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited",
	"text/html",
}

// FuzzParse feeds arbitrary bodies through the scrape parsing path: decode
// by content type, extract the signal families, compute values against a
// previous reading and against itself. It must never panic and never yield
// a non-finite value.
func FuzzParse(f *testing.F) {
	f.Add([]byte(fuzzBase), uint8(0))
	f.Add([]byte("process_resident_memory_bytes 1.5e+08\nshop_disk_used_bytes{vol=\"a\"} NaN\n"), uint8(0))
	f.Add([]byte("# TYPE http_requests counter\nhttp_requests_total 5\nhttp_requests_created 1.7e9\n# EOF\n"), uint8(1))
	f.Add([]byte("# TYPE http_request_duration_seconds histogram\nhttp_request_duration_seconds_bucket{le=\"0.5\"} 3\nhttp_request_duration_seconds_bucket{le=\"+Inf\"} 1\nhttp_request_duration_seconds_count 1\n# EOF\n"), uint8(1))
	f.Add([]byte("<html>nope</html>"), uint8(2))
	f.Add([]byte("\x0a\x05hello"), uint8(3))
	f.Add([]byte(""), uint8(4))
	sm := demoSignals()
	store, err := OpenStore(StoreConfig{Dir: f.TempDir()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = store.Close() })
	orders := Target{Component: "orders", Environment: phoenix.Primary}
	var ts atomic.Int64
	ts.Store(time.Now().UnixMilli())
	f.Fuzz(func(t *testing.T, body []byte, ct uint8) {
		fams, err := parseFamilies(body, fuzzContentTypes[int(ct)%len(fuzzContentTypes)])
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		// Storing the scrape may refuse samples, never panic.
		if n := seriesCount(fams); n < 0 {
			t.Fatalf("series count %d", n)
		}
		app := store.AppenderV2(context.Background())
		_ = appendFamilies(app, orders, fams, ts.Add(1))
		if err := app.Commit(); err != nil {
			t.Fatalf("commit: %v", err)
		}
		cur := extract(fams, sm, ExtraSignal{Signal: "q", Metric: "queue_depth"}, ExtraSignal{Signal: "g", Metric: "gc_total", Rate: true})
		baseFams, err := parseFamilies([]byte(fuzzBase), "")
		if err != nil {
			t.Fatal(err)
		}
		base := extract(baseFams, sm)
		for _, vals := range []map[phoenix.Signal]float64{
			signalValues(nil, cur, time.Second),
			signalValues(base, cur, time.Second),
			signalValues(cur, base, time.Second),
			signalValues(cur, cur, time.Millisecond),
		} {
			for s, v := range vals {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatalf("%s = %v from body %q", s, v, body)
				}
				if s == phoenix.SignalErrors && (v < 0 || v > 1) {
					t.Fatalf("errors = %v outside 0..1", v)
				}
			}
		}
	})
}

func TestFuzzSeedsParse(t *testing.T) {
	fams, err := parseFamilies([]byte(fuzzBase), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(fams) != 3 || !strings.HasPrefix(fams["http_requests_total"].GetName(), "http_requests") {
		t.Errorf("fuzz base parsed to %d families: %v", len(fams), fams)
	}
}
