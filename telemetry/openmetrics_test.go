package telemetry

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

func TestOpenMetricsToText(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"counter renamed, created and help dropped",
			"# HELP req Requests.\n# TYPE req counter\nreq_total{code=\"200\"} 3\nreq_created{code=\"200\"} 1.7e9\n# EOF\n",
			"# TYPE req_total counter\nreq_total{code=\"200\"} 3\n"},
		{"exemplar and timestamp cut",
			"# TYPE h histogram\nh_bucket{le=\"0.1\"} 2 # {trace_id=\"a#b\"} 0.05 1.7e9\nh_bucket{le=\"+Inf\"} 3 1700000000.5\nh_count 3\nh_sum 0.2\n# EOF\n",
			"# TYPE h histogram\nh_bucket{le=\"0.1\"} 2\nh_bucket{le=\"+Inf\"} 3\nh_count 3\nh_sum 0.2\n"},
		{"quoted braces and hashes in label values",
			"# TYPE g gauge\ng{path=\"/a}#{\\\"x\"} 7\n# EOF\n",
			"# TYPE g gauge\ng{path=\"/a}#{\\\"x\"} 7\n"},
		{"unit dropped, unknown is untyped",
			"# TYPE m unknown\n# UNIT m seconds\nm 1\n# EOF\n",
			"# TYPE m untyped\nm 1\n"},
		{"info and stateset left untyped",
			"# TYPE build info\nbuild_info{v=\"1\"} 1\n# TYPE s stateset\ns{s=\"a\"} 1\n# EOF\n",
			"build_info{v=\"1\"} 1\ns{s=\"a\"} 1\n"},
		{"everything after EOF ignored",
			"# TYPE g gauge\ng 1\n# EOF\ng 2\n",
			"# TYPE g gauge\ng 1\n"},
		{"unterminated label set passed on whole",
			"g{a=\"1 2\n",
			"g{a=\"1 2\n"},
		{"quoted UTF-8 name left untyped",
			"# TYPE \"my.metric\" counter\n{\"my.metric_total\"} 1\n# EOF\n",
			"{\"my.metric_total\"} 1\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(openMetricsToText([]byte(tc.in))); got != tc.want {
				t.Errorf("openMetricsToText:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// The rewrite plus the text parser must read what the Prometheus Go client
// writes in OpenMetrics exactly as expfmt's own (slow) OpenMetrics decoder
// does.
func TestOpenMetricsMatchesReferenceDecoder(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "http_requests_total", Help: "Requests."}, []string{"code"})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "shop_disk_used_bytes", Help: "Disk.", ConstLabels: prometheus.Labels{"vol": "a}\"#"}})
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "http_request_duration_seconds", Help: "Latency.", Buckets: []float64{0.01, 0.1, 1}}, []string{"path"})
	s := prometheus.NewSummary(prometheus.SummaryOpts{Name: "rpc_seconds", Help: "RPC.", Objectives: map[float64]float64{0.5: 0.05, 0.99: 0.001}})
	reg.MustRegister(c, g, h, s)
	c.WithLabelValues("200").Add(90)
	c.WithLabelValues("500").(prometheus.ExemplarAdder).AddWithExemplar(10, prometheus.Labels{"trace_id": "abc"})
	g.Set(12345)
	for i := range 100 {
		h.WithLabelValues("/api").(prometheus.ExemplarObserver).ObserveWithExemplar(float64(i)/100, prometheus.Labels{"trace_id": fmt.Sprint(i)})
		s.Observe(float64(i))
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	for _, f := range fams {
		if _, err := expfmt.MetricFamilyToOpenMetrics(&body, f, expfmt.WithCreatedLines()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := expfmt.FinalizeOpenMetrics(&body); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(body.String(), "# {trace_id=") || !strings.Contains(body.String(), "_created") {
		t.Fatalf("test body lacks exemplars or _created lines:\n%s", body.String())
	}
	const ctype = "application/openmetrics-text; version=1.0.0; charset=utf-8"
	want, err := decodeFamilies(bytes.NewReader(body.Bytes()), expfmt.Format(ctype))
	if err != nil {
		t.Fatalf("reference decoder: %v", err)
	}
	got, err := parseFamilies(body.Bytes(), ctype)
	if err != nil {
		t.Fatalf("parseFamilies: %v\n%s", err, body.String())
	}
	if n := len(flatten(want)); n != 12 {
		t.Fatalf("reference decoded %d values, want 12 (2 counters, 1 gauge, 4 buckets and a sum, 2 quantiles with count and sum)", n)
	}
	if diff := cmp.Diff(flatten(want), flatten(got)); diff != "" {
		t.Errorf("families (-reference +ours):\n%s", diff)
	}
}

// flatten reduces families to "name{labels} part" -> value, ignoring what
// only one decoder keeps (help, unit, created timestamps, exemplars).
func flatten(fams map[string]*dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			k := name + "{" + labelKey(m) + "}"
			switch {
			case m.GetHistogram() != nil:
				hb, _ := classicBuckets(m.GetHistogram())
				for i, le := range hb.bounds {
					out[fmt.Sprintf("%s le=%g", k, le)] = hb.counts[i]
				}
				out[k+" sum"] = m.GetHistogram().GetSampleSum()
			case m.GetSummary() != nil:
				qs := m.GetSummary().GetQuantile()
				sort.Slice(qs, func(i, j int) bool { return qs[i].GetQuantile() < qs[j].GetQuantile() })
				for _, q := range qs {
					out[fmt.Sprintf("%s q=%g", k, q.GetQuantile())] = q.GetValue()
				}
				out[k+" count"] = float64(m.GetSummary().GetSampleCount())
				out[k+" sum"] = m.GetSummary().GetSampleSum()
			default:
				v, _ := scalar(m)
				out[k+" "+f.GetType().String()] = v
			}
		}
	}
	for k, v := range out {
		if math.IsNaN(v) {
			out[k] = -1
		}
	}
	return out
}

// decodeFamilies reads a body with expfmt's own decoder, the reference.
func decodeFamilies(r io.Reader, format expfmt.Format) (map[string]*dto.MetricFamily, error) {
	dec := expfmt.NewDecoder(r, format)
	fams := make(map[string]*dto.MetricFamily)
	for {
		mf := &dto.MetricFamily{}
		err := dec.Decode(mf)
		if errors.Is(err, io.EOF) {
			return fams, nil
		}
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", strings.SplitN(string(format), ";", 2)[0], err)
		}
		if prev, ok := fams[mf.GetName()]; ok {
			prev.Metric = append(prev.Metric, mf.Metric...)
			continue
		}
		fams[mf.GetName()] = mf
	}
}
