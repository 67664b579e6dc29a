package telemetry

import (
	"bytes"
	"fmt"
	"math"
	"mime"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/phoenixsre/phoenix"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// acceptHeader asks for the classic text format, which every exporter
// speaks; an exporter that insists on OpenMetrics 1.0 is read too.
const acceptHeader = "text/plain;version=0.0.4;q=1,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1"

// reading is what one scrape yields before it can be compared with the
// previous one: gauges as values, counters and histograms as cumulative
// counts per label set, keyed by the label set.
type reading struct {
	gauges map[phoenix.Signal]float64
	// counters holds a map per counter signal whose family was exposed (a
	// nil map means absent). The errors counter is present and empty when
	// its family is absent but the requests family is not: client libraries
	// expose a labelled counter only after its first increment.
	counters map[phoenix.Signal]map[string]float64
	// latency is nil when the histogram family was absent.
	latency map[string]histogram
}

// histogram is one label set's cumulative buckets, sorted by upper bound,
// the last bound always +Inf.
type histogram struct {
	bounds []float64
	counts []float64
}

// parseFamilies decodes a metrics body according to its Content-Type: the
// text parser for text/plain (and for a missing type, as some small
// exporters send none), the same parser after openMetricsToText for
// OpenMetrics. It never panics: a panic inside the parser becomes an error,
// so one hostile target cannot take the daemon down.
func parseFamilies(body []byte, contentType string) (fams map[string]*dto.MetricFamily, err error) {
	defer func() {
		if r := recover(); r != nil {
			fams, err = nil, fmt.Errorf("metrics parser failed on this body: %v", r)
		}
	}()
	format := expfmt.FmtUnknown
	if contentType != "" {
		format = expfmt.ResponseFormat(http.Header{"Content-Type": {contentType}})
	}
	what := "text exposition"
	switch format.FormatType() {
	case expfmt.TypeProtoDelim:
		// expfmt's protobuf decoder allocates whatever length a message
		// claims before reading it: a few hostile bytes exhaust memory.
		return nil, fmt.Errorf("content type %q: protobuf exposition is not read, serve text/plain", contentType)
	case expfmt.TypeOpenMetrics:
		body, what = openMetricsToText(body), "OpenMetrics"
	default:
		if mt, _, perr := mime.ParseMediaType(contentType); contentType != "" && (perr != nil || !isTextLike(mt)) {
			return nil, fmt.Errorf("content type %q is not a metrics format (want text/plain or application/openmetrics-text)", contentType)
		}
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err = p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", what, err)
	}
	return fams, nil
}

// isTextLike accepts the media types under which plain text exposition is
// commonly served.
func isTextLike(mediaType string) bool {
	return mediaType == "text/plain" || mediaType == "application/octet-stream"
}

// extract picks the families named in m and extra out of fams.
func extract(fams map[string]*dto.MetricFamily, m SignalMap, extra ...ExtraSignal) *reading {
	r := &reading{
		gauges:   make(map[phoenix.Signal]float64),
		counters: make(map[phoenix.Signal]map[string]float64),
	}
	gauges := map[phoenix.Signal]string{phoenix.SignalMemory: m.Memory, phoenix.SignalDisk: m.Disk}
	counters := map[phoenix.Signal]string{phoenix.SignalCPU: m.CPU, phoenix.SignalRate: m.Requests, phoenix.SignalErrors: m.Errors, SignalIO: m.IO}
	for _, e := range extra {
		if e.Rate {
			counters[e.Signal] = e.Metric
		} else {
			gauges[e.Signal] = e.Metric
		}
	}
	for s, name := range gauges {
		if v, ok := gaugeSum(fams[name]); name != "" && ok {
			r.gauges[s] = v
		}
	}
	for s, name := range counters {
		if name == "" {
			continue
		}
		if mf, ok := fams[name]; ok {
			r.counters[s] = counterSeries(mf)
		}
	}
	if _, ok := r.counters[phoenix.SignalErrors]; !ok && m.Errors != "" && r.counters[phoenix.SignalRate] != nil {
		r.counters[phoenix.SignalErrors] = map[string]float64{}
	}
	if mf, ok := fams[m.Latency]; ok && m.Latency != "" {
		r.latency = histogramSeries(mf)
	}
	return r
}

// scalar is the value of a gauge, counter or untyped metric.
func scalar(m *dto.Metric) (float64, bool) {
	var v float64
	switch {
	case m.GetGauge() != nil:
		v = m.GetGauge().GetValue()
	case m.GetCounter() != nil:
		v = m.GetCounter().GetValue()
	case m.GetUntyped() != nil:
		v = m.GetUntyped().GetValue()
	default:
		return 0, false
	}
	return v, !math.IsNaN(v) && !math.IsInf(v, 0)
}

// gaugeSum adds up every label set of a gauge family; false if the family
// is absent or any value is not finite.
func gaugeSum(mf *dto.MetricFamily) (float64, bool) {
	if mf == nil || len(mf.GetMetric()) == 0 {
		return 0, false
	}
	var sum float64
	for _, m := range mf.GetMetric() {
		v, ok := scalar(m)
		if !ok {
			return 0, false
		}
		sum += v
	}
	return sum, !math.IsInf(sum, 0)
}

// counterSeries maps each label set of a counter family to its value.
// Negative or non-finite values (impossible for a counter) are left out.
func counterSeries(mf *dto.MetricFamily) map[string]float64 {
	out := make(map[string]float64, len(mf.GetMetric()))
	for _, m := range mf.GetMetric() {
		if v, ok := scalar(m); ok && v >= 0 {
			out[labelKey(m)] += v
		}
	}
	return out
}

// histogramSeries maps each label set of a histogram family to its
// cumulative buckets. Label sets with non-finite or negative counts are left
// out.
func histogramSeries(mf *dto.MetricFamily) map[string]histogram {
	out := make(map[string]histogram, len(mf.GetMetric()))
	for _, m := range mf.GetMetric() {
		if h, ok := classicBuckets(m.GetHistogram()); ok {
			out[labelKey(m)] = h
		}
	}
	return out
}

func classicBuckets(h *dto.Histogram) (histogram, bool) {
	if h == nil {
		return histogram{}, false
	}
	type bucket struct{ le, n float64 }
	bs := make([]bucket, 0, len(h.GetBucket())+1)
	for _, b := range h.GetBucket() {
		n := float64(b.GetCumulativeCount())
		if b.CumulativeCountFloat != nil {
			n = b.GetCumulativeCountFloat()
		}
		bs = append(bs, bucket{le: b.GetUpperBound(), n: n})
	}
	total := float64(h.GetSampleCount())
	if h.SampleCountFloat != nil {
		total = h.GetSampleCountFloat()
	}
	sort.SliceStable(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	if len(bs) == 0 || !math.IsInf(bs[len(bs)-1].le, 1) {
		bs = append(bs, bucket{le: math.Inf(1), n: total})
	}
	var out histogram
	for _, b := range bs {
		if math.IsNaN(b.le) || math.IsNaN(b.n) || math.IsInf(b.n, 0) || b.n < 0 {
			return histogram{}, false
		}
		if k := len(out.bounds); k > 0 && out.bounds[k-1] == b.le {
			out.counts[k-1] += b.n // duplicate bound: coalesce, as PromQL does
			continue
		}
		out.bounds = append(out.bounds, b.le)
		out.counts = append(out.counts, b.n)
	}
	return out, true
}

// labelKey identifies a label set independently of label order.
func labelKey(m *dto.Metric) string {
	ls := m.GetLabel()
	if len(ls) == 0 {
		return ""
	}
	pairs := make([]string, 0, len(ls))
	for _, l := range ls {
		pairs = append(pairs, l.GetName()+"\xff"+l.GetValue())
	}
	slices.Sort(pairs)
	return strings.Join(pairs, "\xfe")
}
