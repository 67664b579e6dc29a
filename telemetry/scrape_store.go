package telemetry

import (
	"fmt"
	"math"
	"strconv"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// seriesCount is the number of series fams expand to once stored: one per
// gauge, counter or untyped metric; per histogram its buckets (with +Inf),
// _sum and _count; per summary its quantiles, _sum and _count.
func seriesCount(fams map[string]*dto.MetricFamily) int {
	n := 0
	for _, mf := range fams {
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetHistogram() != nil:
				n += len(m.GetHistogram().GetBucket()) + 2
				if !hasInfBucket(m.GetHistogram()) {
					n++
				}
			case m.GetSummary() != nil:
				n += len(m.GetSummary().GetQuantile()) + 2
			default:
				n++
			}
		}
	}
	return n
}

func hasInfBucket(h *dto.Histogram) bool {
	bs := h.GetBucket()
	return len(bs) > 0 && math.IsInf(bs[len(bs)-1].GetUpperBound(), 1)
}

// familyWriter turns scraped families into raw samples of one target, the
// way Prometheus stores a scrape: histograms as _bucket{le}, _sum and
// _count series, summaries as {quantile}, _sum and _count; the target's
// component and environment labels added, a scraped label of the same name
// kept as exported_<name> (Prometheus's honor_labels: false).
type familyWriter struct {
	app  storage.AppenderV2
	t    Target
	ms   int64
	b    labels.ScratchBuilder
	errs []error
}

func appendFamilies(app storage.AppenderV2, t Target, fams map[string]*dto.MetricFamily, ms int64) error {
	w := &familyWriter{app: app, t: t, ms: ms, b: labels.NewScratchBuilder(8)}
	for name, mf := range fams {
		for _, m := range mf.GetMetric() {
			w.metric(name, m)
		}
	}
	if len(w.errs) > 0 {
		return fmt.Errorf("%d samples not stored, first: %w", len(w.errs), w.errs[0])
	}
	return nil
}

func (w *familyWriter) metric(name string, m *dto.Metric) {
	switch {
	case m.GetHistogram() != nil:
		h := m.GetHistogram()
		for _, b := range h.GetBucket() {
			n := float64(b.GetCumulativeCount())
			if b.CumulativeCountFloat != nil {
				n = b.GetCumulativeCountFloat()
			}
			w.sample(name, "_bucket", m, labels.BucketLabel, formatBound(b.GetUpperBound()), n)
		}
		count := float64(h.GetSampleCount())
		if h.SampleCountFloat != nil {
			count = h.GetSampleCountFloat()
		}
		if !hasInfBucket(h) {
			w.sample(name, "_bucket", m, labels.BucketLabel, "+Inf", count)
		}
		w.sample(name, "_sum", m, "", "", h.GetSampleSum())
		w.sample(name, "_count", m, "", "", count)
	case m.GetSummary() != nil:
		s := m.GetSummary()
		for _, q := range s.GetQuantile() {
			w.sample(name, "", m, "quantile", formatBound(q.GetQuantile()), q.GetValue())
		}
		w.sample(name, "_sum", m, "", "", s.GetSampleSum())
		w.sample(name, "_count", m, "", "", float64(s.GetSampleCount()))
	default:
		if v, ok := rawScalar(m); ok {
			w.sample(name, "", m, "", "", v)
		}
	}
}

// rawScalar is the value of a gauge, counter or untyped metric, NaN
// included (a stored NaN is a legitimate sample).
func rawScalar(m *dto.Metric) (float64, bool) {
	switch {
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue(), true
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue(), true
	case m.GetUntyped() != nil:
		return m.GetUntyped().GetValue(), true
	}
	return 0, false
}

// sample appends one series of family: its name is family+suffix, and
// extraName (le or quantile), if set, is added with extraValue.
func (w *familyWriter) sample(family, suffix string, m *dto.Metric, extraName, extraValue string, v float64) {
	w.b.Reset()
	w.b.Add(labels.MetricName, family+suffix)
	w.b.Add(LabelComponent, string(w.t.Component))
	w.b.Add(LabelEnvironment, string(w.t.Environment))
	for _, l := range m.GetLabel() {
		n := l.GetName()
		if n == LabelComponent || n == LabelEnvironment {
			n = "exported_" + n
		}
		if n == extraName {
			continue // a scraped le or quantile label the parser kept: ours wins
		}
		w.b.Add(n, l.GetValue())
	}
	if extraName != "" {
		w.b.Add(extraName, extraValue)
	}
	w.b.Sort()
	if _, err := w.app.Append(0, w.b.Labels(), 0, w.ms, v, nil, nil, storage.AOptions{MetricFamilyName: family}); err != nil {
		w.errs = append(w.errs, fmt.Errorf("%s%s: %w", family, suffix, err))
	}
}

// formatBound writes a bucket bound or quantile as Prometheus does.
func formatBound(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}
