package telemetry

import (
	"bytes"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"
)

// benchBody is what a typical Go service exposes: the Go and process
// collectors plus request metrics over a few label sets.
func benchBody(b *testing.B, format expfmt.Format) []byte {
	b.Helper()
	app := newTargetApp()
	app.reg.MustRegister(collectors.NewGoCollector())
	for _, code := range []string{"200", "404", "500"} {
		app.requests.WithLabelValues(code).Add(1000)
	}
	for _, path := range []string{"/", "/cart", "/orders", "/pay"} {
		app.latency.WithLabelValues(path).Observe(0.05)
	}
	fams, err := app.reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, format)
	for _, f := range fams {
		if err := enc.Encode(f); err != nil {
			b.Fatal(err)
		}
	}
	if c, ok := enc.(expfmt.Closer); ok {
		_ = c.Close()
	}
	return buf.Bytes()
}

// BenchmarkScrapeParse measures the per-scrape work after the fetch: parse,
// extract the signals, compute them against the previous reading.
func BenchmarkScrapeParse(b *testing.B) {
	for _, tc := range []struct {
		name   string
		format expfmt.Format
	}{
		{"text", expfmt.NewFormat(expfmt.TypeTextPlain)},
		{"openmetrics", expfmt.NewFormat(expfmt.TypeOpenMetrics)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			body := benchBody(b, tc.format)
			sm := demoSignals()
			fams, err := parseFamilies(body, string(tc.format))
			if err != nil {
				b.Fatal(err)
			}
			prev := extract(fams, sm)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				fams, err := parseFamilies(body, string(tc.format))
				if err != nil {
					b.Fatal(err)
				}
				if v := signalValues(prev, extract(fams, sm), time.Second); len(v) == 0 {
					b.Fatal("no values")
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "scrapes/s")
		})
	}
}
